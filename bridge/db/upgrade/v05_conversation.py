"""Conversation state in tables of its own instead of a JSON blob on the portal row: what
connectors kept under ``portal.metadata`` (the deep-link payload, when the customer last
wrote, a mail thread's contact) moves to ``conversation_data``, one row per value."""

from __future__ import annotations

import json

from mautrix.util.async_db import Connection, Scheme

from . import upgrade_table

PORTAL_KEYS = ("linked", "avatar_url")
"""What stays on the portal: facts about the room, not the conversation."""


@upgrade_table.register(description="Conversation state tables")  # type: ignore[call-arg,arg-type]
async def upgrade_v5(conn: Connection, scheme: Scheme) -> None:
    await conn.execute(
        """CREATE TABLE conversation (
            account       TEXT NOT NULL,
            chat_key      TEXT NOT NULL,
            chat          TEXT NOT NULL,
            created_at    BIGINT NOT NULL,
            first_message TEXT,
            PRIMARY KEY (account, chat_key)
        )"""
    )
    await conn.execute(
        """CREATE TABLE conversation_data (
            account   TEXT NOT NULL,
            chat_key  TEXT NOT NULL,
            name      TEXT NOT NULL,
            value     TEXT NOT NULL,
            PRIMARY KEY (account, chat_key, name)
        )"""
    )
    rows = await conn.fetch("SELECT account, chat, chat_key, metadata, created_at FROM portal")
    for row in rows:
        # An existing conversation had its first contact before: never a welcome again.
        await conn.execute(
            "INSERT INTO conversation (account, chat_key, chat, created_at, first_message) "
            "VALUES ($1, $2, $3, $4, '')",
            row["account"], row["chat_key"], row["chat"], row["created_at"],
        )  # fmt: skip
        metadata = json.loads(row["metadata"] or "{}")
        if not isinstance(metadata, dict):
            continue
        for name, value in metadata.items():
            if name in PORTAL_KEYS:
                continue
            await conn.execute(
                "INSERT INTO conversation_data (account, chat_key, name, value) "
                "VALUES ($1, $2, $3, $4)",
                row["account"], row["chat_key"], name, json.dumps(value),
            )  # fmt: skip
        kept = {k: v for k, v in metadata.items() if k in PORTAL_KEYS}
        await conn.execute(
            "UPDATE portal SET metadata=$3 WHERE account=$1 AND chat_key=$2",
            row["account"], row["chat_key"], json.dumps(kept),
        )  # fmt: skip
