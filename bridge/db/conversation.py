"""A conversation's state, in tables of its own: the ``conversation`` row (one per remote chat
of a channel account) and ``conversation_data``, one row per named value a connector or a
feature keeps for the conversation. Every write touches only the columns or the one value it
changes, so two writers never lose each other's updates."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, ClassVar

from attrs import define
from mautrix.util.async_db import Database

from .keys import digest

Record = Any

FIRST_CACHE_SIZE = 10_000
"""Conversations whose first customer message is kept in memory: once set it never changes,
so the hot path asks the database only once per conversation."""
_first: OrderedDict[tuple[object, str, str], str] = OrderedDict()

BUSINESS_STARTED = ""
"""``first_message`` of a conversation the business started (a template): no customer
message of it is a first contact."""


@define
class Conversation:
    db: ClassVar[Database]

    account: str
    chat: str
    created_at: int
    first_message: str | None
    """The message id of the customer's first message, ``BUSINESS_STARTED``, or None while
    no message of the customer came yet."""

    @classmethod
    async def get(cls, account: str, chat: str) -> Conversation | None:
        row = await cls.db.fetchrow(
            "SELECT account, chat, created_at, first_message FROM conversation "
            "WHERE account=$1 AND chat_key=$2",
            account,
            digest(chat),
        )
        return None if row is None else cls(**dict(row))

    @classmethod
    async def ensure(
        cls, account: str, chat: str, created_at: int, first_message: str | None = None
    ) -> None:
        await cls.db.execute(
            "INSERT INTO conversation (account, chat_key, chat, created_at, first_message) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account, chat_key) DO NOTHING",
            account, digest(chat), chat, created_at, first_message,
        )  # fmt: skip

    @classmethod
    async def first_message_of(
        cls, account: str, chat: str, message_id: str, now: int
    ) -> str | None:
        """The conversation's first customer message, ``message_id`` if none was recorded
        before (it is recorded now); stable when asked again for the same message."""
        key = (cls.db, account, chat)
        cached = _first.get(key)
        if cached is not None:
            _first.move_to_end(key)
            return cached
        first = await cls._first_message_of(account, chat, message_id, now)
        if first is not None:
            _first[key] = first
            if len(_first) > FIRST_CACHE_SIZE:
                _first.popitem(last=False)
        return first

    @classmethod
    async def _first_message_of(
        cls, account: str, chat: str, message_id: str, now: int
    ) -> str | None:
        found = await cls.get(account, chat)
        if found is None:
            await cls.ensure(account, chat, now, message_id)
        elif found.first_message is None:
            await cls.db.execute(
                "UPDATE conversation SET first_message=$3 "
                "WHERE account=$1 AND chat_key=$2 AND first_message IS NULL",
                account, digest(chat), message_id,
            )  # fmt: skip
        else:
            return found.first_message
        again = await cls.get(account, chat)
        return again.first_message if again else None

    @classmethod
    async def data(cls, account: str, chat: str) -> dict[str, Any]:
        rows = await cls.db.fetch(
            "SELECT name, value FROM conversation_data WHERE account=$1 AND chat_key=$2",
            account,
            digest(chat),
        )
        return {row["name"]: json.loads(row["value"]) for row in rows}

    @classmethod
    async def put_data(cls, account: str, chat: str, values: dict[str, Any]) -> None:
        """Set each of ``values`` on its own (other names are left as they are)."""
        key = digest(chat)
        for name, value in values.items():
            await cls.db.execute(
                "INSERT INTO conversation_data (account, chat_key, name, value) "
                "VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (account, chat_key, name) DO UPDATE SET value=excluded.value",
                account, key, name, json.dumps(value),
            )  # fmt: skip
