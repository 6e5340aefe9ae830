"""The updates MAX sends a bot, built as the Bot API documents them (``update_type``,
``timestamp`` in milliseconds, ``message`` with ``sender``, ``recipient`` and ``body``)."""

from __future__ import annotations

import itertools
import secrets
from typing import Any

from .records import Json

_seq = itertools.count(1)


def new_mid() -> str:
    return "mid." + secrets.token_hex(12)


def user(user_id: int, name: str, *, is_bot: bool = False, username: str | None = None) -> Json:
    first, _, last = name.partition(" ")
    raw: Json = {"user_id": user_id, "first_name": first, "name": name, "is_bot": is_bot}
    if last:
        raw["last_name"] = last
    if username:
        raw["username"] = username
    raw["last_activity_time"] = 0
    return raw


def message(
    sender: Json | None,
    chat_id: int,
    *,
    at_ms: int,
    text: str | None = None,
    mid: str | None = None,
    chat_type: str = "dialog",
    markup: list[Json] | None = None,
    attachments: list[Json] | None = None,
    reply_to: Json | None = None,
) -> Json:
    body: Json = {"mid": mid or new_mid(), "seq": next(_seq), "text": text}
    if markup:
        body["markup"] = markup
    if attachments:
        body["attachments"] = attachments
    raw: Json = {
        "recipient": {"chat_id": chat_id, "chat_type": chat_type},
        "timestamp": at_ms,
        "body": body,
    }
    if sender is not None:
        raw["sender"] = sender
    if chat_type == "dialog" and sender is not None:
        raw["recipient"]["user_id"] = sender["user_id"]
    if reply_to is not None:
        raw["link"] = {
            "type": "reply",
            "sender": reply_to.get("sender"),
            "chat_id": chat_id,
            "message": reply_to["body"],
        }
    return raw


def update(kind: str, at_ms: int, **fields: Any) -> Json:
    return {"update_type": kind, "timestamp": at_ms, **fields}
