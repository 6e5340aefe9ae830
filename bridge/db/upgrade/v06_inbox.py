"""The team inbox: a conversation's team, status and assignee, each staff member's
away/available switch and each team's round-robin position. Existing conversations get no
row here: their team comes from the configuration, so routing adds the row the next time
the conversation is active."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from . import upgrade_table


@upgrade_table.register(description="Team inbox: status, assignment, availability")  # type: ignore[call-arg,arg-type]
async def upgrade_v6(conn: Connection, scheme: Scheme) -> None:
    await conn.execute(
        """CREATE TABLE inbox_conversation (
            account           TEXT NOT NULL,
            chat_key          TEXT NOT NULL,
            chat              TEXT NOT NULL,
            team              TEXT NOT NULL,
            status            TEXT NOT NULL DEFAULT 'open',
            assignee          TEXT,
            last_assignee     TEXT,
            waiting_since     BIGINT,
            snoozed_until     BIGINT,
            created_at        BIGINT NOT NULL,
            updated_at        BIGINT NOT NULL,
            first_response_at BIGINT,
            resolved_at       BIGINT,
            PRIMARY KEY (account, chat_key),
            CHECK (status IN ('open', 'pending', 'snoozed', 'resolved'))
        )"""
    )
    # The queue view and automatic assignment: a team's open unassigned ones, longest waiting
    # first. A member's own list and the open counts that limits are checked against.
    await conn.execute(
        "CREATE INDEX inbox_queue_idx "
        "ON inbox_conversation (team, status, assignee, waiting_since)"
    )
    await conn.execute("CREATE INDEX inbox_assignee_idx ON inbox_conversation (assignee, status)")
    await conn.execute(
        "CREATE INDEX inbox_snooze_idx ON inbox_conversation (snoozed_until) "
        "WHERE status='snoozed'"
    )
    await conn.execute(
        """CREATE TABLE inbox_agent (
            mxid        TEXT PRIMARY KEY,
            available   BOOLEAN NOT NULL DEFAULT true,
            updated_at  BIGINT NOT NULL
        )"""
    )
    await conn.execute(
        """CREATE TABLE inbox_team (
            team       TEXT PRIMARY KEY,
            rr_cursor  TEXT
        )"""
    )
