from __future__ import annotations

from typing import ClassVar

from attrs import define
from mautrix.util.async_db import Database

from .keys import digest


@define
class RemoteDedup:
    """A remote delivery already recorded (see ``QueueItem.record_remote``), so a webhook
    retried by the remote side is bridged once. ``dedup_key`` holds the digest of the key."""

    db: ClassVar[Database]

    account: str
    dedup_key: str
    received_at: int

    @classmethod
    async def seen(cls, account: str, dedup_key: str) -> bool:
        q = "SELECT 1 FROM remote_dedup WHERE account=$1 AND dedup_key=$2"
        return bool(await cls.db.fetchval(q, account, digest(dedup_key)))

    @classmethod
    async def prune(cls, older_than_ms: int) -> None:
        await cls.db.execute("DELETE FROM remote_dedup WHERE received_at < $1", older_than_ms)
