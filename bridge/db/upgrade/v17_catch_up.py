"""Catching up from room timelines after the homeserver lost events it never pushed.

* ``matrix_seen``: every Matrix event id the bridge recorded, pushed or read back from a
  timeline, so an event is queued once however it reaches the bridge (pruned with the other
  dedup keys).
* ``room_timeline``: per room, when the bridge first and last saw or sent something there
  (``first_at``, ``active_at``), the last event it recorded from the room, and up to when
  its timeline has been read back and checked (``checked_at``).
* ``queue.position``: where an item stands in its conversation's order when that is not its
  id: events found by a catch-up take the place of the catch-up item, ahead of the events
  pushed after it (NULL: the id).
* ``catch_up_since``: when the bridge began recording event ids (this migration): a room is
  never read back further, as events before were handled without a record of their ids."""

from __future__ import annotations

import time

from mautrix.util.async_db import Connection

from . import upgrade_table


@upgrade_table.register(description="Catch-up from room timelines")  # type: ignore[call-arg,arg-type]
async def upgrade_v17(conn: Connection) -> None:
    await conn.execute(
        """CREATE TABLE matrix_seen (
            event_id  TEXT PRIMARY KEY,
            seen_at   BIGINT NOT NULL
        )"""
    )
    await conn.execute("CREATE INDEX matrix_seen_at_idx ON matrix_seen (seen_at)")
    await conn.execute(
        """CREATE TABLE room_timeline (
            room_id     TEXT PRIMARY KEY,
            first_at    BIGINT NOT NULL,
            active_at   BIGINT NOT NULL,
            event_id    TEXT,
            event_ts    BIGINT,
            checked_at  BIGINT
        )"""
    )
    await conn.execute("CREATE INDEX room_timeline_active_idx ON room_timeline (active_at)")
    await conn.execute("ALTER TABLE queue ADD COLUMN position BIGINT")
    await conn.execute("CREATE TABLE catch_up_since (since BIGINT NOT NULL)")
    await conn.execute("INSERT INTO catch_up_since (since) VALUES ($1)", int(time.time() * 1000))
