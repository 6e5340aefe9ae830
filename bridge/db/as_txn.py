from __future__ import annotations

from typing import ClassVar

from attrs import define
from mautrix.util.async_db import Database


@define
class ASTransaction:
    """An appservice transaction id the homeserver pushed and the bridge recorded."""

    db: ClassVar[Database]

    txn_id: str
    body_hash: str
    received_at: int

    @classmethod
    async def seen(cls, txn_id: str) -> bool:
        return bool(await cls.db.fetchval("SELECT 1 FROM as_txn WHERE txn_id=$1", txn_id))

    @classmethod
    async def prune(cls, older_than_ms: int) -> None:
        await cls.db.execute("DELETE FROM as_txn WHERE received_at < $1", older_than_ms)
