from __future__ import annotations

import json
from typing import Any, ClassVar

from attrs import define, field
from mautrix.util.async_db import Database

from .cache import RowCache
from .keys import digest

Record = Any

CACHE_SIZE = 10_000
"""Portals whose rows are kept in memory (the most recently used)."""
_cache = RowCache(CACHE_SIZE)

_COLUMNS = "account, chat, room_id, name, topic, is_group, metadata, created_at"


@define
class Portal:
    """A remote chat of a channel account and the Matrix room it is bridged to."""

    db: ClassVar[Database]

    account: str
    chat: str
    room_id: str | None
    name: str | None = None
    topic: str | None = None
    is_group: bool = False
    metadata: dict[str, Any] = field(factory=dict)
    created_at: int = 0

    @classmethod
    def _from_row(cls, row: Record | None) -> Portal | None:
        if row is None:
            return None
        data = dict(row)
        data["metadata"] = json.loads(data["metadata"])
        data["is_group"] = bool(data["is_group"])
        return cls(**data)

    @classmethod
    def _cache(cls) -> RowCache:
        return _cache.bind(cls.db, "room_id")

    @classmethod
    def forget_cached(cls) -> None:
        """Drop every cached row: the next look-ups go to the database."""
        cls._cache().clear()

    @classmethod
    async def _fetch_one(cls, where: str, *args: Any) -> Portal | None:
        cache = cls._cache()
        writes = cache.writes
        row = await cls.db.fetchrow(f"SELECT {_COLUMNS} FROM portal WHERE {where}", *args)
        if row is None:
            return None
        values = dict(row)
        cache.fill((values["account"], values["chat"]), values, writes)
        return cls._from_row(values)

    @classmethod
    async def get(cls, account: str, chat: str) -> Portal | None:
        cached = cls._cache().get((account, chat))
        if cached is not None:
            return cls._from_row(cached)
        return await cls._fetch_one("account=$1 AND chat_key=$2", account, digest(chat))

    @classmethod
    async def get_by_room(cls, room_id: str) -> Portal | None:
        cached = cls._cache().get_secondary(room_id)
        if cached is not None:
            return cls._from_row(cached)
        return await cls._fetch_one("room_id=$1", room_id)

    @classmethod
    async def all(cls, account: str | None = None) -> list[Portal]:
        if account is None:
            rows = await cls.db.fetch(f"SELECT {_COLUMNS} FROM portal ORDER BY account, chat")
        else:
            q = f"SELECT {_COLUMNS} FROM portal WHERE account=$1 ORDER BY chat"
            rows = await cls.db.fetch(q, account)
        return [p for p in (cls._from_row(r) for r in rows) if p]

    @classmethod
    async def with_prefix(cls, account: str, prefix: str) -> list[Portal]:
        """The portals of ``account`` whose chat id starts with ``prefix`` (a mail address's
        threads are ``<address>/<message id>``)."""
        q = f"SELECT {_COLUMNS} FROM portal WHERE account=$1 AND substr(chat, 1, $3)=$2"
        rows = await cls.db.fetch(q, account, prefix, len(prefix))
        return [p for p in (cls._from_row(r) for r in rows) if p]

    @classmethod
    async def page_by_room(cls, after: str, limit: int) -> list[tuple[Portal, str]]:
        """Up to ``limit`` portals with a room whose room id sorts after ``after``, in room id
        order, each with its metadata as stored (for ``set_metadata``)."""
        q = (
            f"SELECT {_COLUMNS} FROM portal WHERE room_id IS NOT NULL AND room_id > $1 "
            "ORDER BY room_id LIMIT $2"
        )
        rows = await cls.db.fetch(q, after, limit)
        return [(p, r["metadata"]) for r in rows if (p := cls._from_row(r))]

    @classmethod
    async def count(cls) -> int:
        return int(await cls.db.fetchval("SELECT COUNT(*) FROM portal") or 0)

    def _values(self) -> tuple[Any, ...]:
        return (
            self.account,
            self.chat,
            self.room_id,
            self.name,
            self.topic,
            self.is_group,
            json.dumps(self.metadata),
            self.created_at,
        )

    async def _write(self, query: str, *args: Any) -> None:
        try:
            await self.db.execute(query, *args)
        finally:
            self._cache().invalidate((self.account, self.chat))

    async def insert(self) -> None:
        q = (
            f"INSERT INTO portal ({_COLUMNS}, chat_key) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )
        await self._write(q, *self._values(), digest(self.chat))

    async def save(self) -> None:
        q = (
            "UPDATE portal SET room_id=$3, name=$4, topic=$5, is_group=$6, metadata=$7, "
            "created_at=$8 WHERE account=$1 AND chat_key=$9 AND chat=$2"
        )
        await self._write(q, *self._values(), digest(self.chat))

    async def set_metadata(self, old: str, metadata: dict[str, Any]) -> bool:
        """Replace the metadata, unless it is no longer ``old`` (as stored): a writer that
        changed the row meanwhile keeps its change. True if replaced."""
        q = (
            "UPDATE portal SET metadata=$4 WHERE account=$1 AND chat_key=$2 AND chat=$3 "
            "AND metadata=$5 RETURNING room_id"
        )
        new = json.dumps(metadata)
        try:
            row = await self.db.fetchrow(q, self.account, digest(self.chat), self.chat, new, old)
        finally:
            self._cache().invalidate((self.account, self.chat))
        if row is None:
            return False
        self.metadata = metadata
        return True

    async def delete(self) -> None:
        q = "DELETE FROM portal WHERE account=$1 AND chat_key=$2"
        await self._write(q, self.account, digest(self.chat))
