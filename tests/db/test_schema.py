"""The migration: the same tables and columns on SQLite and PostgreSQL, and safe to rerun."""

from __future__ import annotations

from pathlib import Path

from mautrix.util.async_db import Database, Scheme

import bridge.db
from bridge.db import Portal
from tests.db.support import Databases
from tests.infra.postgres import PostgresServer

BRIDGE_TABLES = {
    "channel_account", "portal", "ghost", "message", "reaction", "as_txn", "queue",
    "remote_dedup", "matrix_seen", "room_timeline",
}  # fmt: skip
BRIDGE_INDEXES = {
    "message_event_idx", "reaction_event_idx", "queue_key_idx", "matrix_seen_at_idx",
    "room_timeline_active_idx",
}  # fmt: skip


async def columns(db: Database) -> dict[str, list[str]]:
    """Column names per table, in declaration order."""
    if db.scheme == Scheme.SQLITE:
        tables = await db.fetch(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        )
        result = {}
        for row in tables:
            info = await db.fetch(f"PRAGMA table_info({row['name']})")
            result[row["name"]] = [c["name"] for c in sorted(info, key=lambda c: c["cid"])]
        return result
    rows = await db.fetch(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema='public' ORDER BY table_name, ordinal_position"
    )
    result = {}
    for row in rows:
        result.setdefault(row["table_name"], []).append(row["column_name"])
    return result


async def indexes(db: Database) -> set[str]:
    if db.scheme == Scheme.SQLITE:
        rows = await db.fetch(
            "SELECT name FROM sqlite_master WHERE type='index' AND name NOT LIKE 'sqlite_%'"
        )
        return {r["name"] for r in rows}
    rows = await db.fetch("SELECT indexname FROM pg_indexes WHERE schemaname='public'")
    return {r["indexname"] for r in rows}


async def test_migration_creates_the_same_tables_on_both(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    sqlite = Databases("sqlite", tmp_path, None)
    pg = Databases("postgres", tmp_path, postgres)
    try:
        sqlite_cols = await columns(await sqlite.open())
        pg_cols = await columns(await pg.open())
        assert BRIDGE_TABLES <= set(sqlite_cols)
        assert set(sqlite_cols) == set(pg_cols)
        for table in sqlite_cols:
            assert sqlite_cols[table] == pg_cols[table], table
        assert sqlite_cols["queue"] == [
            "id", "queue_key", "kind", "payload", "created_at", "attempts", "position",
        ]  # fmt: skip
        sqlite_idx = await indexes(sqlite._open[0])
        pg_idx = await indexes(pg._open[0])
        assert BRIDGE_INDEXES <= sqlite_idx
        assert BRIDGE_INDEXES <= pg_idx
    finally:
        await sqlite.dispose()
        await pg.dispose()


async def test_upgrade_runs_once_and_restarting_keeps_the_data(databases: Databases) -> None:
    db = await databases.open()
    assert await db.fetchval("SELECT version FROM version") == len(
        bridge.db.upgrade_table.upgrades
    )
    await Portal("acc", "chat", "!room:example.com", created_at=1).insert()
    await databases.close(db)

    db = await databases.open()  # the upgrade table is consulted again: nothing to do
    assert await db.fetchval("SELECT COUNT(*) FROM version") == 1
    assert await db.fetchval("SELECT version FROM version") == len(
        bridge.db.upgrade_table.upgrades
    )
    portal = await Portal.get("acc", "chat")
    assert portal is not None and portal.room_id == "!room:example.com"
    await databases.close(db)

    db = await databases.open()
    assert await Portal.count() == 1
