from __future__ import annotations

import json
from typing import Any, ClassVar

from attrs import define
from mautrix.util.async_db import Database


@define
class ChannelAccount:
    """A configured channel account and the data its connector persists (offsets, UIDs)."""

    db: ClassVar[Database]

    id: str
    type: str
    data: dict[str, Any]

    @classmethod
    async def get(cls, account_id: str) -> ChannelAccount | None:
        row = await cls.db.fetchrow(
            "SELECT id, type, data FROM channel_account WHERE id=$1", account_id
        )
        return cls(row["id"], row["type"], json.loads(row["data"])) if row else None

    @classmethod
    async def ensure(cls, account_id: str, type: str) -> ChannelAccount:
        existing = await cls.get(account_id)
        if existing:
            return existing
        await cls.db.execute(
            "INSERT INTO channel_account (id, type, data) VALUES ($1, $2, '{}') "
            "ON CONFLICT (id) DO NOTHING",
            account_id,
            type,
        )
        return cls(account_id, type, {})

    async def save(self) -> None:
        await self.db.execute(
            "UPDATE channel_account SET type=$2, data=$3 WHERE id=$1",
            self.id,
            self.type,
            json.dumps(self.data),
        )
