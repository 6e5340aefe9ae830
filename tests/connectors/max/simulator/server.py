"""``MaxSimulator``: the MAX side of a bot, served on a loopback port.

The bot talks to it through the Bot API (``api.py``); tests act as MAX's users through the
methods below (a customer writes, edits, deletes, presses a button, starts the bot; members
come and go) and the simulator delivers the update as MAX does: POSTed to the webhook
subscription with the secret in ``X-Max-Bot-Api-Secret`` (retried a few times while the
answer is not 200), or queued for ``GET /updates`` when there is none."""

from __future__ import annotations

import io
import itertools
import secrets
from collections import deque
from typing import Any

import aiohttp
from aiohttp import web

from tests.connectors.sim_base import SimulatorBase

from . import updates as u
from .api import Refused, routes
from .records import (
    ApiError,
    DeletionRecord,
    EditRecord,
    Failure,
    Json,
    Limits,
    SentMessage,
    StoredMessage,
    Upload,
    WebhookDelivery,
)

SECRET_HEADER = "X-Max-Bot-Api-Secret"
TOKEN = "max-simulator-token-0123456789abcdef"
BOT_ID = 900_000_001


class RateWindow:
    """Sliding one-second windows: the bot's requests overall and its messages per chat."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.requests: deque[float] = deque()
        self.per_chat: dict[int, deque[float]] = {}
        self.throttled: list[tuple[str, float]] = []
        self.enabled = True

    def _take(
        self, times: deque[float], allowed: int, now: float, what: str, window: float = 1.0
    ) -> None:
        while times and now - times[0] >= window:
            times.popleft()
        if self.enabled and len(times) >= allowed:
            self.throttled.append((what, now))
            raise Refused(429, "too.many.requests", "Too many requests", retry_after=1)
        times.append(now)

    def check_global(self, now: float) -> None:
        self._take(self.requests, self.limits.global_rate, now, "global")

    def check_chat(self, chat_id: int, now: float) -> None:
        times = self.per_chat.setdefault(chat_id, deque())
        self._take(times, self.limits.per_chat, now, "chat", self.limits.chat_window)


class MaxSimulator(SimulatorBase[SentMessage, WebhookDelivery]):
    def __init__(
        self,
        token: str = TOKEN,
        *,
        bot_id: int = BOT_ID,
        username: str = "support_max_bot",
        limits: Limits | None = None,
        webhook_attempts: int = 3,
    ) -> None:
        super().__init__()
        self.token = token
        self.bot_id = bot_id
        self.bot_name = "Support"
        self.username = username
        self.limits = limits or Limits()
        self.rate = RateWindow(self.limits)
        self.webhook_attempts = webhook_attempts
        self.sent: list[SentMessage] = []
        self.edits: list[EditRecord] = []
        self.deletions: list[DeletionRecord] = []
        self.errors: list[ApiError] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.answers: list[tuple[str, Json]] = []
        self.actions: list[tuple[int, str, float, str | None]] = []
        """Chat actions: the chat, the action, when, and for ``mark_seen`` the latest customer
        message then."""
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.messages: dict[str, StoredMessage] = {}
        self.uploads: dict[str, Upload] = {}
        self.slots: dict[str, Upload] = {}
        self.not_ready: dict[str, int] = {}
        self.processing = 0
        """Sends of a new upload answered ``attachment.not.ready`` before it is."""
        self.files: dict[str, tuple[bytes, str]] = {}
        self.chat_types: dict[int, str] = {}
        self.denied: set[int] = set()
        self.failures: deque[Failure] = deque()
        self.subscription: Json | None = None
        self.queue: list[tuple[int, Json]] = []
        self.acknowledged = 0
        self.polls = 0
        self.fetched_by = 0
        """The number of the poll that last fetched updates."""
        self._seq = itertools.count(1)

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(routes(self))
        return app

    def notify(self) -> None:
        self._notify()

    # -- the bot's side, for tests -----------------------------------------------------------

    def fail(self, count: int, status: int = 429, code: str = "too.many.requests") -> None:
        """Refuse the next ``count`` writes (send, edit, delete) with ``status``/``code``."""
        message = {429: "Too many requests", 503: "Service unavailable"}.get(status, code)
        retry_after = 1 if status == 429 else None
        self.failures.extend(Failure(status, code, message, retry_after) for _ in range(count))

    def take_failure(self) -> None:
        if self.failures:
            f = self.failures.popleft()
            raise Refused(f.status, f.code, f.message, f.retry_after)

    def dialog_of(self, user_id: int) -> int:
        """The dialog chat of the bot with ``user_id`` (MAX gives each its own chat id)."""
        return user_id + 10**12

    def refusals(self, code: str) -> int:
        return sum(1 for e in self.errors if e.code == code)

    # -- MAX's users, for tests --------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    def host_file(self, data: bytes, content_type: str) -> str:
        """Serve ``data`` as MAX's file servers do (a signed URL, no token needed)."""
        file_id = secrets.token_urlsafe(12)
        self.files[file_id] = (data, content_type)
        return f"{self.base_url}/files/{file_id}?sig={secrets.token_hex(8)}"

    def customer_message(
        self,
        user_id: int,
        name: str,
        text: str | None,
        *,
        chat_id: int | None = None,
        chat_type: str = "dialog",
        mid: str | None = None,
        markup: list[Json] | None = None,
        attachments: list[Json] | None = None,
        reply_to: str | None = None,
    ) -> Json:
        """A ``message_created`` update of a customer (not yet delivered)."""
        chat = chat_id if chat_id is not None else self.dialog_of(user_id)
        self.chat_types[chat] = chat_type
        replied = self.messages.get(reply_to or "")
        replied_raw = None
        if replied is not None:
            replied_raw = {"sender": {"user_id": replied.sender_id}, "body": replied.body}
        message = u.message(
            u.user(user_id, name),
            chat,
            at_ms=self.now_ms(),
            text=text,
            mid=mid,
            chat_type=chat_type,
            markup=markup,
            attachments=attachments,
            reply_to=replied_raw,
        )
        body = message["body"]
        self.messages[body["mid"]] = StoredMessage(
            body["mid"], chat, user_id, self.clock.now(), False, body
        )
        return u.update("message_created", self.now_ms(), message=message, user_locale="ru")

    def customer_edit(self, mid: str, text: str, name: str = "Customer") -> Json:
        stored = self.messages[mid]
        stored.body = {**stored.body, "text": text}
        message = u.message(
            u.user(stored.sender_id, name),
            stored.chat_id,
            at_ms=int(stored.at * 1000),
            text=text,
            mid=mid,
            chat_type=self.chat_types.get(stored.chat_id, "dialog"),
        )
        return u.update("message_edited", self.now_ms(), message=message)

    def customer_delete(self, mid: str) -> Json:
        stored = self.messages[mid]
        stored.deleted = True
        return u.update(
            "message_removed",
            self.now_ms(),
            message_id=mid,
            chat_id=stored.chat_id,
            user_id=stored.sender_id,
        )

    def press(self, mid: str, payload: str, user_id: int, name: str = "Customer") -> Json:
        """A ``message_callback``: ``user_id`` pressed the button ``payload`` under the bot's
        message ``mid``."""
        stored = self.messages[mid]
        message = {
            "sender": {"user_id": self.bot_id, "name": self.bot_name, "is_bot": True},
            "recipient": {
                "chat_id": stored.chat_id,
                "chat_type": self.chat_types.get(stored.chat_id, "dialog"),
            },
            "timestamp": int(stored.at * 1000),
            "body": stored.body,
        }
        callback = {
            "timestamp": self.now_ms(),
            "callback_id": "cb." + secrets.token_hex(10),
            "payload": payload,
            "user": u.user(user_id, name),
        }
        return u.update("message_callback", self.now_ms(), callback=callback, message=message)

    def bot_started(self, user_id: int, name: str, payload: str | None = None) -> Json:
        chat = self.dialog_of(user_id)
        self.chat_types[chat] = "dialog"
        return u.update(
            "bot_started",
            self.now_ms(),
            chat_id=chat,
            user=u.user(user_id, name),
            payload=payload,
            user_locale="ru",
        )

    def member_change(self, kind: str, chat_id: int, user_id: int, name: str) -> Json:
        """``bot_added``, ``bot_removed``, ``user_added`` or ``user_removed`` in a group."""
        self.chat_types[chat_id] = "chat"
        return u.update(
            kind, self.now_ms(), chat_id=chat_id, user=u.user(user_id, name), is_channel=False
        )

    def title_change(self, chat_id: int, user_id: int, name: str, title: str) -> Json:
        self.chat_types[chat_id] = "chat"
        return u.update(
            "chat_title_changed", self.now_ms(), chat_id=chat_id, user=u.user(user_id, name),
            title=title,
        )  # fmt: skip

    # -- delivery ----------------------------------------------------------------------------

    async def deliver(self, update: Json) -> WebhookDelivery | None:
        """Deliver ``update``: POSTed to the webhook (the last attempt returned), or queued
        for polling (None)."""
        if self.subscription is None:
            self.queue.append((next(self._seq), update))
            self.notify()
            return None
        types = self.subscription.get("update_types")
        if types and update["update_type"] not in types:
            return None
        return await self.post_update(update, self.subscription.get("secret"))

    async def post_update(
        self, update: Json | bytes, secret: str | None, attempts: int | None = None
    ) -> WebhookDelivery:
        assert self._http is not None and self.subscription is not None
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        raw = update if isinstance(update, bytes) else None
        payload: Any = None if isinstance(update, bytes) else update
        delivery = WebhookDelivery({}, 0, "", secret)
        for _ in range(attempts or self.webhook_attempts):
            # Large bodies as a stream: aiohttp warns about big raw bytes.
            data: Any = io.BytesIO(raw) if raw is not None and len(raw) > 256 * 1024 else raw
            async with self._http.post(
                self.subscription["url"], json=payload, data=data, headers=headers,
                timeout=aiohttp.ClientTimeout(total=30),
            ) as resp:  # fmt: skip
                answer = await resp.text()
            delivery = WebhookDelivery(payload or {}, resp.status, answer, secret)
            self.webhook_deliveries.append(delivery)
            self.notify()
            if resp.status == 200:
                break
        return delivery

    async def wait_polled(self) -> None:
        """Wait until every queued update was fetched by a poll and the bot polled again
        (so it has handled them)."""
        last = self.queue[-1][0] if self.queue else 0
        await self.wait_for(lambda: self.acknowledged > last, 10)
        await self.wait_for(lambda: self.polls > self.fetched_by, 10)
