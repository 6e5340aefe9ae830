"""Broadcasts (``features.broadcast``): one row per broadcast (its content, state and
progress notice) and one per recipient (the durable record of what reached whom)."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from . import upgrade_table


@upgrade_table.register(description="Broadcasts and their recipients")  # type: ignore[call-arg,arg-type]
async def upgrade_v13(conn: Connection, scheme: Scheme) -> None:
    serial = "BIGSERIAL" if scheme in (Scheme.POSTGRES, Scheme.COCKROACH) else "INTEGER"
    await conn.execute(
        f"""CREATE TABLE broadcast (
            id            {serial} PRIMARY KEY,
            list          TEXT NOT NULL,
            room_id       TEXT NOT NULL,
            state         TEXT NOT NULL,
            content       TEXT NOT NULL,
            created_by    TEXT NOT NULL,
            created_at    BIGINT NOT NULL,
            scheduled_at  BIGINT,
            started_at    BIGINT,
            finished_at   BIGINT,
            snapshot_done BOOLEAN NOT NULL DEFAULT false,
            progress_event TEXT,
            in_flight     INTEGER NOT NULL DEFAULT 0,
            in_flight_keyed INTEGER NOT NULL DEFAULT 0,
            CHECK (state IN ('draft', 'discarded', 'scheduled', 'running', 'paused',
                             'cancelled', 'done'))
        )"""
    )
    await conn.execute("CREATE INDEX broadcast_list_idx ON broadcast (list, state)")
    await conn.execute(
        """CREATE TABLE broadcast_recipient (
            broadcast   BIGINT NOT NULL,
            contact     BIGINT NOT NULL,
            account     TEXT NOT NULL,
            chat        TEXT NOT NULL,
            status      TEXT NOT NULL,
            message_id  TEXT,
            reason      TEXT,
            attempts    INTEGER NOT NULL DEFAULT 0,
            updated     BIGINT NOT NULL,
            PRIMARY KEY (broadcast, contact, account),
            CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'read', 'failed',
                              'skipped'))
        )"""
    )
    await conn.execute(
        "CREATE INDEX broadcast_recipient_status_idx ON broadcast_recipient (broadcast, status)"
    )
    await conn.execute(
        "CREATE INDEX broadcast_recipient_message_idx ON broadcast_recipient (account, message_id)"
    )
