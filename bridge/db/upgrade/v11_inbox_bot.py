"""The bot that owns a conversation of the team inbox while it answers first (NULL: the
humans have it)."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from . import upgrade_table


@upgrade_table.register(description="Team inbox: the bot answering first")  # type: ignore[call-arg,arg-type]
async def upgrade_v11(conn: Connection, scheme: Scheme) -> None:
    await conn.execute("ALTER TABLE inbox_conversation ADD COLUMN bot TEXT")
