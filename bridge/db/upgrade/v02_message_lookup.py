"""Find a conversation by any remote message id of the account (mail threading)."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from . import upgrade_table


@upgrade_table.register(description="Index messages by remote id")  # type: ignore[call-arg,arg-type]
async def upgrade_v2(conn: Connection) -> None:
    await conn.execute("CREATE INDEX message_remote_idx ON message (account, message_id)")
