"""A local Telegram Bot API server for tests.

It speaks the documented HTTP API the way ``api.telegram.org`` does (``/bot<token>/<method>``,
``/file/bot<token>/<path>``, multipart/JSON/urlencoded/query parameters, ``{"ok": ...}`` answers
with the real error texts, 429 flood control, long polling and webhooks) so that a connector built
on aiogram runs unchanged against it. Error texts and the HTML parse mode follow the Bot API server
and TDLib sources (``telegram-bot-api/Client.cpp``, ``td/telegram/MessageEntity.cpp``).

Tests drive it from the Telegram side: register users and chats, push updates, age messages,
switch on a flood "storm", then inspect what the bot did (``sent``, ``edits``, ``deletions``,
``reactions``, ``actions``, ``throttled``, ``webhook_deliveries``) or await it (``wait_for_*``).

The simulator is split the way the connector is: ``config`` (clock and limits), ``records``
(what tests inspect), ``params`` (request decoding), ``state`` (the Telegram side and waiting),
``limits`` (flood control), ``compose`` (resolving a send), then the Bot API methods by area
(``delivery``, ``messages``, ``media``, ``chats``, ``buttons``: inline keyboards pressed) and
``server`` (the HTTP edge).
"""

from __future__ import annotations

from tests.connectors.sim_base import SimClock

from .buttons import QUERY_INVALID, CallbackAnswer
from .config import Limits, MiB, RateLimits
from .delivery import (
    CONFLICT_POLL,
    CONFLICT_WEBHOOK,
    DEFAULT_EXCLUDED_UPDATES,
    LOOPBACK,
    SECRET_HEADER,
)
from .media import MEDIA_METHODS
from .messages import ALLOWED_REACTIONS, CHAT_ACTIONS, NOT_MODIFIED
from .params import _Params
from .records import (
    ActionRecord,
    ApiCall,
    ApiError,
    DeletionRecord,
    EditRecord,
    ReactionRecord,
    SentMessage,
    StoredFile,
    StoredMessage,
    ThrottleRecord,
    UploadedFile,
    WebhookDelivery,
    _Pending,
)
from .server import TelegramSimulator

__all__ = [
    "ALLOWED_REACTIONS",
    "QUERY_INVALID",
    "CallbackAnswer",
    "CHAT_ACTIONS",
    "CONFLICT_POLL",
    "CONFLICT_WEBHOOK",
    "DEFAULT_EXCLUDED_UPDATES",
    "LOOPBACK",
    "MEDIA_METHODS",
    "NOT_MODIFIED",
    "SECRET_HEADER",
    "ActionRecord",
    "ApiCall",
    "ApiError",
    "DeletionRecord",
    "EditRecord",
    "Limits",
    "MiB",
    "RateLimits",
    "ReactionRecord",
    "SentMessage",
    "SimClock",
    "StoredFile",
    "StoredMessage",
    "TelegramSimulator",
    "ThrottleRecord",
    "UploadedFile",
    "WebhookDelivery",
    "_Params",
    "_Pending",
]
