"""A team's room, its space and the queue view notice in its room (with the text it shows,
so the view is edited only when that changed)."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from . import upgrade_table


@upgrade_table.register(description="Team inbox: team rooms and spaces")  # type: ignore[call-arg,arg-type]
async def upgrade_v9(conn: Connection, scheme: Scheme) -> None:
    for column in ("room_id", "space_id", "queue_event_id", "queue_text"):
        await conn.execute(f"ALTER TABLE inbox_team ADD COLUMN {column} TEXT")
