"""``room_timeline``: how far the bridge has seen each room's timeline, for the catch-up
(``core/catchup.py``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from attrs import define
from mautrix.util.async_db import Connection, Database, Scheme

from .queue import QueueItem

_COLUMNS = "room_id, first_at, active_at, event_id, event_ts, checked_at"


@define
class RoomTimeline:
    db: ClassVar[Database]

    room_id: str
    first_at: int
    """When the bridge first saw or sent an event in the room (ms): what the room held before
    was never the bridge's to handle (a room staff made before inviting the bot)."""
    active_at: int
    """When the bridge last saw or sent an event in the room (ms)."""
    event_id: str | None
    """The last event the bridge recorded from the room."""
    event_ts: int | None
    """That event's ``origin_server_ts``."""
    checked_at: int | None
    """Everything the room's timeline held before this moment (ms) has been read back and is
    recorded (None: never read back)."""

    @classmethod
    async def touch(cls, rooms: Iterable[tuple[str, int, str | None, int | None]]) -> None:
        """Record ``(room, active at, last event id, its timestamp)`` for many rooms at once;
        an event id of None keeps the one recorded before."""
        rows = list(rooms)
        if not rows:
            return
        greatest = "MAX" if cls.db.scheme == Scheme.SQLITE else "GREATEST"
        await cls.db.executemany(
            "INSERT INTO room_timeline (room_id, first_at, active_at, event_id, event_ts) "
            "VALUES ($1, $2, $2, $3, $4) ON CONFLICT (room_id) DO UPDATE SET "
            f"active_at={greatest}(room_timeline.active_at, excluded.active_at), "
            "event_id=COALESCE(excluded.event_id, room_timeline.event_id), "
            "event_ts=COALESCE(excluded.event_ts, room_timeline.event_ts)",
            rows,
        )

    @classmethod
    async def active(cls, since: int, *, unchecked: bool = False) -> list[RoomTimeline]:
        """The rooms active at or after ``since`` (ms), least recently checked first; with
        ``unchecked``, only those active after their last check."""
        q = f"SELECT {_COLUMNS} FROM room_timeline WHERE active_at >= $1"
        if unchecked:
            q += " AND (checked_at IS NULL OR active_at > checked_at)"
        rows = await cls.db.fetch(q + " ORDER BY active_at DESC", since)
        return [cls(**dict(r)) for r in rows]

    @classmethod
    async def recording_since(cls) -> int:
        """When the bridge began recording event ids (ms): rooms are not read back further."""
        return int(await cls.db.fetchval("SELECT since FROM catch_up_since") or 0)

    @classmethod
    async def get(cls, room_id: str) -> RoomTimeline | None:
        row = await cls.db.fetchrow(
            f"SELECT {_COLUMNS} FROM room_timeline WHERE room_id=$1",
            room_id,
        )
        return None if row is None else cls(**dict(row))

    @classmethod
    async def caught_up(
        cls,
        barrier: QueueItem,
        room_id: str,
        found: list[tuple[dict[str, Any], int, QueueItem]],
        told: list[str],
        checked_at: int,
    ) -> list[QueueItem]:
        """In one transaction: queue what a catch-up found (``QueueItem.insert_found``; its
        ``barrier`` is done then), record ``told`` as seen, and remember that the room is checked
        up to ``checked_at``."""
        conn: Connection
        async with cls.db.acquire() as conn, conn.transaction():
            items = await QueueItem.insert_found(conn, barrier, found, told, checked_at)
            await conn.execute(
                "INSERT INTO room_timeline (room_id, first_at, active_at, checked_at) "
                "VALUES ($1, $2, $2, $2) "
                "ON CONFLICT (room_id) DO UPDATE SET checked_at=excluded.checked_at",
                room_id,
                checked_at,
            )
        return items
