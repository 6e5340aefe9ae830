"""Asking a webhook bot about a customer's message, over the webhook connector's signed
protocol (``bridge.connectors.webhook.protocol``): a JSON POST signed in ``X-Bridge-Signature``
with the bot's secret, carrying an ``Idempotency-Key`` that is the same for the same customer
message, so the bot recognises the repeat of a retried hook.

The bot answers in its HTTP response::

    {"reply": "text for the customer", "handover": false | true | {"team": "billing",
                                                                   "note": "for the staff"}}

Both keys are optional; an empty body says nothing. A bot that does not answer within its
``timeout``, answers other than 2xx, or with a body that is too long (read bounded) or not such
an object has failed (``BotFailed``, with a reason fit for the staff)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from ...connectors.http import read_limited
from ...connectors.sanitize import clean_text
from ...connectors.webhook.protocol import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, encode, sign
from .config import BotConfig

MAX_ANSWER = 64 * 1024
"""Longest answer body read from a bot, in bytes."""
MAX_REPLY = 4000
MAX_NOTE = 1000


class BotFailed(Exception):
    """The bot gave no usable answer; the message says why."""


@dataclass(frozen=True)
class BotAnswer:
    reply: str | None = None
    """Text for the customer; None: nothing."""
    handover: bool = False
    team: str | None = None
    """The team the bot hands the conversation to; None: the conversation's own."""
    note: str | None = None
    """A summary for the staff."""


def idempotency_key(account: str, chat: str, dedup_key: str) -> str:
    """The same for the same customer message of a conversation, whatever the channel's ids
    (message ids of some channels repeat across chats)."""
    key = "\x00".join((account, chat, dedup_key))
    return "inbox-bot-" + hashlib.sha256(key.encode()).hexdigest()[:40]


async def ask_bot(bot: BotConfig, payload: dict[str, Any], key: str) -> BotAnswer:
    """POST ``payload`` to ``bot`` and read its answer; raises ``BotFailed``."""
    assert bot.url is not None
    data = encode(payload)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(bot.secret, data),
        IDEMPOTENCY_HEADER: key,
    }
    timeout = aiohttp.ClientTimeout(total=bot.timeout)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(bot.url, data=data, headers=headers, allow_redirects=False) as resp,
        ):
            status = resp.status
            body, over = await read_limited(resp.content, MAX_ANSWER)
    except TimeoutError as e:
        raise BotFailed(f"no answer within {bot.timeout:g}s") from e
    except aiohttp.ClientError as e:
        raise BotFailed(f"unreachable: {type(e).__name__}") from e
    if not 200 <= status < 300:
        raise BotFailed(f"it answered HTTP {status}")
    if over:
        raise BotFailed(f"its answer is longer than {MAX_ANSWER} bytes")
    return parse_answer(body)


def parse_answer(body: bytes) -> BotAnswer:
    """A bot's answer body read; raises ``BotFailed`` for anything else than described."""
    if not body.strip():
        return BotAnswer()
    try:
        data = json.loads(body, parse_constant=_refuse)
    except (ValueError, RecursionError) as e:
        raise BotFailed("its answer is not JSON") from e
    if not isinstance(data, dict):
        raise BotFailed("its answer is not a JSON object")
    reply = _text(data.get("reply"), "reply", MAX_REPLY)
    handover = data.get("handover", False)
    if handover is None or isinstance(handover, bool):
        return BotAnswer(reply, bool(handover))
    if not isinstance(handover, dict):
        raise BotFailed("its handover is not true, false or an object")
    team = _text(handover.get("team"), "handover.team", 64)
    note = _text(handover.get("note"), "handover.note", MAX_NOTE)
    return BotAnswer(reply, True, team, note)


def _text(value: Any, key: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BotFailed(f"its {key} is not a text")
    text = clean_text(value).strip()
    if len(text) > limit:
        raise BotFailed(f"its {key} is longer than {limit} characters")
    return text or None


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")
