"""Which conversations a team's queue view shows, line by line (a JSON list of ``[account,
chat]``), so that ``claim <n>`` in the team room takes the conversation of the line read."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from . import upgrade_table


@upgrade_table.register(description="Team inbox: the queue view's lines")  # type: ignore[call-arg,arg-type]
async def upgrade_v10(conn: Connection, scheme: Scheme) -> None:
    await conn.execute("ALTER TABLE inbox_team ADD COLUMN queue_shown TEXT")
