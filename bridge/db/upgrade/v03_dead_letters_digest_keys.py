"""Dead letters (queue items the bridge gave up on, kept with their error until retried), and
fixed-size keys: remote ids are remote input of any length, and PostgreSQL refuses an index
entry over about 2.7 KB, so every index on them is moved to a SHA-256 digest of them (the ids
stay in their columns)."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from ..keys import digest
from . import upgrade_table


@upgrade_table.register(description="Dead letters, fixed-size keys")  # type: ignore[call-arg,arg-type]
async def upgrade_v3(conn: Connection, scheme: Scheme) -> None:
    pg = scheme in (Scheme.POSTGRES, Scheme.COCKROACH)
    serial = "BIGSERIAL" if pg else "INTEGER"
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

    rows = await conn.fetch("SELECT account, dedup_key FROM remote_dedup")
    if rows:
        await conn.executemany(
            "UPDATE remote_dedup SET dedup_key=$1 WHERE account=$2 AND dedup_key=$3",
            [(digest(r["dedup_key"]), r["account"], r["dedup_key"]) for r in rows],
        )

    async def rekey(table: str, keys: dict[str, tuple[str, ...]], old: str, new: str) -> None:
        """Add the digest columns ``keys`` (name: columns digested) to ``table``, fill them,
        and key the table by ``new`` instead of ``old`` (columns, comma-separated)."""
        for name in keys:
            await conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} TEXT NOT NULL DEFAULT ''")
        old_columns = [c.strip() for c in old.split(",")]
        sources = sorted({c for cols in keys.values() for c in cols} | set(old_columns))
        rows = await conn.fetch(f"SELECT {', '.join(sources)} FROM {table}")
        if rows:
            sets = ", ".join(f"{name}=${i + 1}" for i, name in enumerate(keys))
            where = " AND ".join(f"{c}=${len(keys) + i + 1}" for i, c in enumerate(old_columns))
            await conn.executemany(
                f"UPDATE {table} SET {sets} WHERE {where}",
                [
                    (
                        *(digest(*(r[c] for c in cols)) for cols in keys.values()),
                        *(r[c] for c in old_columns),
                    )
                    for r in rows
                ],
            )
        if pg:
            await conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
            await conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({new})")
        else:
            # SQLite has no size limit on index entries and cannot change a primary key in
            # place: the old key stays, the new one gets a unique index (for ON CONFLICT).
            await conn.execute(f"CREATE UNIQUE INDEX {table}_key_idx ON {table} ({new})")

    await rekey("portal", {"chat_key": ("chat",)}, "account, chat", "account, chat_key")
    await rekey(
        "ghost", {"user_key": ("remote_user",)}, "account, remote_user", "account, user_key"
    )
    await rekey(
        "message",
        {"chat_key": ("chat",), "message_key": ("message_id",)},
        "account, chat, message_id, part",
        "account, chat_key, message_key, part",
    )
    await conn.execute("DROP INDEX message_remote_idx")
    await conn.execute("CREATE INDEX message_remote_idx ON message (account, message_key)")
    await rekey(
        "reaction",
        {"target_key": ("chat", "message_id", "sender"), "emoji_key": ("emoji",)},
        "account, chat, message_id, sender, emoji",
        "account, target_key, emoji_key",
    )
