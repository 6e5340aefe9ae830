"""End-to-bridge encryption: encrypted events waiting for their room key.

An event the bridge could not decrypt because its key had not arrived is kept here with the
notice that told the room, until the key arrives (the event is then queued again and the notice
updated). The crypto store's own tables are mautrix's, created and upgraded by its versioned
migrations (``crypto_version``) in the same database at start when encryption is allowed."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from . import upgrade_table


@upgrade_table.register(description="Encrypted events waiting for their key")  # type: ignore[call-arg,arg-type]
async def upgrade_v16(conn: Connection) -> None:
    await conn.execute(
        """CREATE TABLE crypto_waiting (
            event_id    TEXT PRIMARY KEY,
            room_id     TEXT NOT NULL,
            session_id  TEXT NOT NULL,
            payload     TEXT NOT NULL,
            notice_id   TEXT,
            created_at  BIGINT NOT NULL
        )"""
    )
    await conn.execute("CREATE INDEX crypto_waiting_session_idx ON crypto_waiting (session_id)")
