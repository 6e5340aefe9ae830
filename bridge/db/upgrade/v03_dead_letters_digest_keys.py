"""Dead letters: queue items the bridge gave up on, kept with their error until retried."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from . import upgrade_table


@upgrade_table.register(description="Dead letters")  # type: ignore[call-arg,arg-type]
async def upgrade_v3(conn: Connection, scheme: Scheme) -> None:
    serial = "BIGSERIAL" if scheme in (Scheme.POSTGRES, Scheme.COCKROACH) else "INTEGER"
    await conn.execute(
        f"""CREATE TABLE dead_letter (
            id          {serial} PRIMARY KEY,
            queue_key   TEXT NOT NULL,
            kind        TEXT NOT NULL,
            payload     TEXT NOT NULL,
            created_at  BIGINT NOT NULL,
            attempts    INTEGER NOT NULL,
            error       TEXT NOT NULL,
            failed_at   BIGINT NOT NULL,
            room_id     TEXT,
            announced   BOOLEAN NOT NULL DEFAULT false
        )"""
    )
