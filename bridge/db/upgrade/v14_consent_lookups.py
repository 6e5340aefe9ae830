"""Indexes for the consent ledger's lookups: a cause on an account (``ConsentEvent.of_cause``,
which the unique ``(account, list, cause_key)`` index serves only with the list), and the open
requests the expiry job pages through (partial: only ``requested`` rows, which SQLite and
PostgreSQL both support)."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from . import upgrade_table


@upgrade_table.register(description="Consent ledger lookup indexes")  # type: ignore[call-arg,arg-type]
async def upgrade_v14(conn: Connection) -> None:
    await conn.execute(
        "CREATE INDEX consent_event_account_cause_idx ON consent_event (account, cause_key)"
    )
    await conn.execute(
        "CREATE INDEX consent_event_requested_idx ON consent_event (id) WHERE step = 'requested'"
    )
