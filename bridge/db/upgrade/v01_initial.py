"""The first schema: channel accounts, portals, ghosts, messages, reactions and the durable
queues (appservice transactions seen, pending work, remote deliveries seen)."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from . import upgrade_table


@upgrade_table.register(description="Initial revision")  # type: ignore[call-arg,arg-type]
async def upgrade_v1(conn: Connection, scheme: Scheme) -> None:
    serial = "BIGSERIAL" if scheme in (Scheme.POSTGRES, Scheme.COCKROACH) else "INTEGER"
    await conn.execute(
        """CREATE TABLE channel_account (
            id         TEXT PRIMARY KEY,
            type       TEXT NOT NULL,
            data       TEXT NOT NULL DEFAULT '{}'
        )"""
    )
    await conn.execute(
        """CREATE TABLE portal (
            account    TEXT NOT NULL,
            chat       TEXT NOT NULL,
            room_id    TEXT UNIQUE,
            name       TEXT,
            topic      TEXT,
            is_group   BOOLEAN NOT NULL DEFAULT false,
            metadata   TEXT NOT NULL DEFAULT '{}',
            created_at BIGINT NOT NULL,
            PRIMARY KEY (account, chat)
        )"""
    )
    await conn.execute(
        """CREATE TABLE ghost (
            account     TEXT NOT NULL,
            remote_user TEXT NOT NULL,
            mxid        TEXT NOT NULL UNIQUE,
            displayname TEXT,
            avatar_url  TEXT,
            metadata    TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (account, remote_user)
        )"""
    )
    await conn.execute(
        """CREATE TABLE message (
            account    TEXT NOT NULL,
            chat       TEXT NOT NULL,
            message_id TEXT NOT NULL,
            part       INTEGER NOT NULL DEFAULT 0,
            event_id   TEXT NOT NULL,
            room_id    TEXT NOT NULL,
            sender     TEXT,
            sender_mxid TEXT NOT NULL,
            timestamp  BIGINT NOT NULL,
            metadata   TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (account, chat, message_id, part)
        )"""
    )
    await conn.execute("CREATE INDEX message_event_idx ON message (room_id, event_id)")
    await conn.execute(
        """CREATE TABLE reaction (
            account    TEXT NOT NULL,
            chat       TEXT NOT NULL,
            message_id TEXT NOT NULL,
            sender     TEXT NOT NULL,
            emoji      TEXT NOT NULL,
            event_id   TEXT NOT NULL,
            room_id    TEXT NOT NULL,
            PRIMARY KEY (account, chat, message_id, sender, emoji)
        )"""
    )
    await conn.execute("CREATE INDEX reaction_event_idx ON reaction (room_id, event_id)")
    await conn.execute(
        # Keyed by id and content: Synapse on SQLite restarts its transaction ids at 1 after
        # a restart, so an id alone does not identify a transaction.
        """CREATE TABLE as_txn (
            txn_id      TEXT NOT NULL,
            body_hash   TEXT NOT NULL,
            received_at BIGINT NOT NULL,
            PRIMARY KEY (txn_id, body_hash)
        )"""
    )
    await conn.execute(
        f"""CREATE TABLE queue (
            id          {serial} PRIMARY KEY,
            queue_key   TEXT NOT NULL,
            kind        TEXT NOT NULL,
            payload     TEXT NOT NULL,
            created_at  BIGINT NOT NULL,
            attempts    INTEGER NOT NULL DEFAULT 0
        )"""
    )
    await conn.execute("CREATE INDEX queue_key_idx ON queue (queue_key, id)")
    await conn.execute(
        """CREATE TABLE remote_dedup (
            account     TEXT NOT NULL,
            dedup_key   TEXT NOT NULL,
            received_at BIGINT NOT NULL,
            PRIMARY KEY (account, dedup_key)
        )"""
    )
