from __future__ import annotations

import json
from typing import Any, ClassVar

from attrs import define, field
from mautrix.util.async_db import Database

from .cache import RowCache
from .keys import digest

Record = Any

CACHE_SIZE = 10_000
"""Ghosts whose rows are kept in memory (the most recently used)."""
_cache = RowCache(CACHE_SIZE)

_COLUMNS = "account, remote_user, mxid, displayname, avatar_url, metadata"


@define
class Ghost:
    """A remote user and the Matrix user that stands for them."""

    db: ClassVar[Database]

    account: str
    remote_user: str
    mxid: str
    displayname: str | None = None
    avatar_url: str | None = None
    metadata: dict[str, Any] = field(factory=dict)

    @classmethod
    def _from_row(cls, row: Record | None) -> Ghost | None:
        if row is None:
            return None
        data = dict(row)
        data["metadata"] = json.loads(data["metadata"])
        return cls(**data)

    @classmethod
    def _cache(cls) -> RowCache:
        return _cache.bind(cls.db)

    @classmethod
    async def get(cls, account: str, remote_user: str) -> Ghost | None:
        cache = cls._cache()
        cached = cache.get((account, remote_user))
        if cached is not None:
            return cls._from_row(cached)
        writes = cache.writes
        q = f"SELECT {_COLUMNS} FROM ghost WHERE account=$1 AND user_key=$2"
        row = await cls.db.fetchrow(q, account, digest(remote_user))
        if row is None:
            return None
        values = dict(row)
        cache.fill((account, remote_user), values, writes)
        return cls._from_row(values)

    @classmethod
    async def get_by_mxid(cls, mxid: str) -> Ghost | None:
        q = f"SELECT {_COLUMNS} FROM ghost WHERE mxid=$1"
        return cls._from_row(await cls.db.fetchrow(q, mxid))

    def _values(self) -> tuple[Any, ...]:
        return (
            self.account,
            self.remote_user,
            self.mxid,
            self.displayname,
            self.avatar_url,
            json.dumps(self.metadata),
        )

    async def _write(self, query: str) -> None:
        try:
            await self.db.execute(query, *self._values(), digest(self.remote_user))
        finally:
            self._cache().invalidate((self.account, self.remote_user))

    async def insert(self) -> None:
        await self._write(
            f"INSERT INTO ghost ({_COLUMNS}, user_key) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )

    async def save(self) -> None:
        await self._write(
            "UPDATE ghost SET mxid=$3, displayname=$4, avatar_url=$5, metadata=$6 "
            "WHERE account=$1 AND user_key=$7 AND remote_user=$2"
        )

    async def delete(self) -> None:
        try:
            await self.db.execute(
                "DELETE FROM ghost WHERE account=$1 AND user_key=$2",
                self.account, digest(self.remote_user),
            )  # fmt: skip
        finally:
            self._cache().invalidate((self.account, self.remote_user))
