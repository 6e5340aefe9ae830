"""Team inbox service figures: each response and resolution time (``inbox_response``), the
spans a conversation spent pending, snoozed or resolved (``inbox_pause``, which business-time
figures leave out), and which wait of a conversation its team was told about already."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from . import upgrade_table


@upgrade_table.register(description="Team inbox: service figures and timers")  # type: ignore[call-arg,arg-type]
async def upgrade_v8(conn: Connection, scheme: Scheme) -> None:
    await conn.execute(
        """CREATE TABLE inbox_response (
            account           TEXT NOT NULL,
            chat_key          TEXT NOT NULL,
            team              TEXT NOT NULL,
            kind              TEXT NOT NULL,
            waited_from       BIGINT NOT NULL,
            answered_at       BIGINT NOT NULL,
            seconds           BIGINT NOT NULL,
            business_seconds  BIGINT NOT NULL,
            PRIMARY KEY (account, chat_key, kind, waited_from),
            CHECK (kind IN ('first', 'next', 'resolution'))
        )"""
    )
    await conn.execute(
        "CREATE INDEX inbox_response_team_idx ON inbox_response (team, answered_at)"
    )
    await conn.execute(
        """CREATE TABLE inbox_pause (
            account     TEXT NOT NULL,
            chat_key    TEXT NOT NULL,
            status      TEXT NOT NULL,
            started_at  BIGINT NOT NULL,
            ended_at    BIGINT,
            PRIMARY KEY (account, chat_key, started_at)
        )"""
    )
    # The waiting_since whose waiting limit the team was told about (once per wait).
    await conn.execute("ALTER TABLE inbox_conversation ADD COLUMN waiting_announced BIGINT")
