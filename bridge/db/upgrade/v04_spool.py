"""The spool: large payloads of queued events (a mail pushed over LMTP) stored once, outside
the queue row, until their event is bridged."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from . import upgrade_table


@upgrade_table.register(description="Spool for large queued payloads")  # type: ignore[call-arg,arg-type]
async def upgrade_v4(conn: Connection, scheme: Scheme) -> None:
    blob = "BYTEA" if scheme in (Scheme.POSTGRES, Scheme.COCKROACH) else "BLOB"
    await conn.execute(
        f"""CREATE TABLE spool (
            key         TEXT PRIMARY KEY,
            account     TEXT NOT NULL,
            data        {blob} NOT NULL,
            created_at  BIGINT NOT NULL,
            claimed     BOOLEAN NOT NULL DEFAULT false
        )"""
    )
