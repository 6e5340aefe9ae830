"""The Telegram connector's remote side: the local Bot API simulator, driven as Telegram.

``TelegramHarness`` runs a ``TelegramSimulator``, points the connector at it (long polling with
a short timeout), pushes updates as Telegram's users would send them and reads back what the bot
did from the simulator's records (``sent``, ``edits``, ``deletions``, ``reactions``, ``actions``).

Telegram ids are numbers, and a private chat's id is its user's id, so the suite's labels
(``chat-1``, ``customer-1``, ``msg-q``) are mapped by ``remote_id``: the chat and the user that
first talk together share one numeric id, messages get ids from the builders' counter.
"""

from __future__ import annotations

import itertools
import mimetypes
from collections.abc import Iterator
from typing import Any

from bridge.connectors.telegram import TelegramConnector
from bridge.types import AccountID
from tests.contract.harness import (
    Blockade,
    ConnectorHarness,
    FailureKind,
    IdKind,
    Received,
    ReceivedAttachment,
    one_id_for_chat_and_user,
)

from . import updates as tg
from .simulator import (
    ActionRecord,
    DeletionRecord,
    EditRecord,
    ReactionRecord,
    SentMessage,
    TelegramSimulator,
)

TOKEN = "7000001:AAH-contract_test-token-0123456789"
BOT_ID = 7000001
WEBHOOK_SECRET = "contract-webhook_secret-42-0123456789"
FIRST_USER_ID = 5_100_000
BLOCKED = "Forbidden: bot was blocked by the user"
SEND_METHODS = frozenset(
    "sendmessage sendphoto senddocument sendaudio sendvoice sendvideo sendvideonote "
    "sendsticker sendanimation forwardmessage copymessage".split()
)


class TelegramHarness(ConnectorHarness):
    name = "telegram"
    connector_class = TelegramConnector
    account_id = AccountID("support-telegram")

    def __init__(self) -> None:
        super().__init__()
        self.sim = TelegramSimulator(TOKEN, bot_username="contract_bot", bot_name="Contract Bot")
        self._ids: dict[tuple[str, str], int] = {}
        self._user_ids = itertools.count(FIRST_USER_ID)
        self._chats: set[int] = set()
        """Private chats the harness opened (the user pressed Start)."""
        self.blockade = Blockade(
            lambda: _blocked_refusals(self.sim), self._block_all, self.sim.wait_for
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.sim.start()

    async def stop(self) -> None:
        await self.blockade.close()
        await self.sim.stop()

    # ------------------------------------------------------------------ config

    def valid_config(self) -> dict[str, Any]:
        return {
            "type": "telegram",
            "staff": ["@admin:example.com"],
            "token": TOKEN,
            "mode": "polling",
            "api_url": self.sim.base_url,
            "poll_timeout": 1,
            "request_timeout": 10,
            "delivery_deadline": 600,
            "title": "Test Telegram",
        }

    def webhook_config(self, base_url: str) -> dict[str, Any]:
        """A valid webhook-mode section; Telegram reaches the bridge at ``base_url``."""
        return {
            **self.valid_config(),
            "mode": "webhook",
            "webhook_url": base_url,
            "webhook_secret": WEBHOOK_SECRET,
        }

    def invalid_configs(self) -> list[tuple[dict[str, Any], str]]:
        key = self.config_key
        valid = self.valid_config()
        webhook = self.webhook_config("https://bridge.example.com")

        def changed(base: dict[str, Any] = valid, **values: Any) -> dict[str, Any]:
            return {**base, **values}

        def without(name: str, base: dict[str, Any] = valid) -> dict[str, Any]:
            return {k: v for k, v in base.items() if k != name}

        return [
            (without("token"), f"{key}.token"),
            (changed(token="not-a-token"), f"{key}.token"),
            (changed(token="123456:short"), f"{key}.token"),
            (changed(token="abc:AAH-contract_test-token-0123456789"), f"{key}.token"),
            (changed(token="123456:AAH contract test token with spaces"), f"{key}.token"),
            (changed(token=123456), f"{key}.token"),
            (changed(mode="push"), f"{key}.mode"),
            (changed(mode="Webhook"), f"{key}.mode"),
            (changed(mode=1), f"{key}.mode"),
            (without("webhook_url", webhook), f"{key}.webhook_url"),
            (changed(webhook, webhook_url="not a url"), f"{key}.webhook_url"),
            (changed(webhook, webhook_url="ftp://bridge.example.com"), f"{key}.webhook_url"),
            (changed(webhook, webhook_secret="has spaces in it"), f"{key}.webhook_secret"),
            (changed(webhook, webhook_secret="semi;colon"), f"{key}.webhook_secret"),
            (changed(webhook, webhook_secret="é-accent"), f"{key}.webhook_secret"),
            (changed(webhook, webhook_secret="x" * 257), f"{key}.webhook_secret"),
            # Telegram takes one character; guessable, so the bridge wants 32.
            (changed(webhook, webhook_secret="a"), f"{key}.webhook_secret"),
            (changed(webhook, webhook_secret="A-Z_a-z_0-9"), f"{key}.webhook_secret"),
            (changed(webhook, webhook_secret="x" * 31), f"{key}.webhook_secret"),
            (changed(webhook, webhook_secret=""), f"{key}.webhook_secret"),
            (changed(webhook, webhook_secret=12345), f"{key}.webhook_secret"),
            # A bad secret is refused in polling mode too: it would fail on a switch later.
            (changed(webhook_secret="bad secret"), f"{key}.webhook_secret"),
            (changed(api_url="not a url"), f"{key}.api_url"),
            (changed(api_url="ftp://api.telegram.org"), f"{key}.api_url"),
            (changed(api_url="https://"), f"{key}.api_url"),
            (changed(api_url=443), f"{key}.api_url"),
            (changed(business="yes"), f"{key}.business"),
            (changed(business=1), f"{key}.business"),
            (changed(poll_timeout=0), f"{key}.poll_timeout"),
            (changed(poll_timeout=-1), f"{key}.poll_timeout"),
            (changed(poll_timeout="30s"), f"{key}.poll_timeout"),
            (changed(poll_timeout=True), f"{key}.poll_timeout"),
            (changed(poll_timeout=float("nan")), f"{key}.poll_timeout"),
            (changed(delivery_deadline=0), f"{key}.delivery_deadline"),
            (changed(request_timeout=float("inf")), f"{key}.request_timeout"),
            (changed(title=""), f"{key}.title"),
            (changed(title=42), f"{key}.title"),
            (changed(tokn=TOKEN), f"{key}.tokn"),
            (changed(webhook_path="/tg"), f"{key}.webhook_path"),
        ]

    # ------------------------------------------------------------------ ids

    def remote_id(self, kind: IdKind, label: str) -> str:
        return str(self._id(kind, label))

    def _id(self, kind: IdKind, label: str) -> int:
        known = self._ids.get((kind, label))
        if known is not None:
            return known
        if kind == "message":
            value = tg.next_message_id()
        else:
            value = next(self._user_ids)
            self._open_chat(value)
        self._ids[(kind, label)] = value
        return value

    def _pair(self, chat: str, sender: str) -> int:
        """The id of the private chat ``chat`` with the user ``sender``: one number for both."""
        return one_id_for_chat_and_user(
            self._ids,
            chat,
            sender,
            lambda: self._id("user", sender),
            "Telegram private chats have their user's id",
        )

    def _open_chat(self, user_id: int) -> None:
        """The user pressed Start: the bot may write to them."""
        if user_id in self._chats:
            return
        self._chats.add(user_id)
        self.sim.add_user(user_id, f"Customer {user_id}")
        if self.blockade.active:
            self.sim.set_blocked(user_id)

    # ------------------------------------------------------------------ Telegram -> connector

    async def deliver(self, update: dict[str, Any], *, seconds: float = 10.0) -> dict[str, Any]:
        """Push ``update`` and return once the connector consumed it: its getUpdates offset
        passed it, which the connector does only after the host recorded the update (polling
        mode), or Telegram got a 2xx answer from the webhook (webhook mode)."""
        delivered = self.sim.push_update(update)
        await self.sim.wait_for_confirmed(delivered["update_id"], timeout=seconds)
        return delivered

    async def remote_sends_message(
        self,
        chat_id: str,
        sender_id: str,
        text: str,
        message_id: str,
        *,
        sender_name: str | None = None,
    ) -> None:
        chat_number = self._pair(chat_id, sender_id)
        self._open_chat(chat_number)
        sender = tg.user(chat_number, sender_name or f"Customer {sender_id}")
        message = tg.text_message(
            tg.private_chat(sender),
            sender,
            text,
            message_id=self._id("message", message_id),
        )
        await self.deliver_message(message_id, message)

    async def remote_presses_button(
        self, chat_id: str, sender_id: str, message_id: str, button_id: str
    ) -> None:
        chat_number = self._pair(chat_id, sender_id)
        pressed = self.sim.press_button(chat_number, int(message_id), button_id)
        await self.sim.wait_for_confirmed(pressed["update_id"])

    async def remote_sends_attachment(
        self,
        chat_id: str,
        sender_id: str,
        message_id: str,
        data: bytes,
        filename: str,
        mimetype: str,
    ) -> None:
        chat_number = self._pair(chat_id, sender_id)
        self._open_chat(chat_number)
        sender = tg.user(chat_number, f"Customer {sender_id}")
        stored = self.sim.add_file(data, kind="document", file_name=filename, mime_type=mimetype)
        message = tg.document_message(
            tg.private_chat(sender),
            sender,
            stored.ref(),
            file_name=filename,
            mime_type=mimetype,
            message_id=self._id("message", message_id),
        )
        await self.deliver_message(message_id, message)

    async def redeliver(self, label: str, delivery: Any) -> None:
        """``delivery`` is a Message, sent in a new update. Telegram never repeats an update_id
        once getUpdates confirmed it, but a bot that crashed between recording and confirming
        gets the same message again: as a duplicate, only the dedup key can keep it single."""
        await self.deliver(tg.message_update(delivery))

    # ------------------------------------------------------------------ connector -> Telegram

    async def remote_received(self) -> list[Received]:
        return list(received(self.sim))

    async def make_remote_fail(self, kind: FailureKind, count: int = 1) -> None:
        if kind == "temporary":
            # Flood control: 429 with retry_after. One second keeps the retry in the suite
            # short (the connector waits that long before its next send to the chat).
            self.sim.rate_limit_storm(count, retry_after=1)
            return
        # Every customer (also those the suite names later) blocks the bot, until ``count``
        # requests were refused with "bot was blocked by the user".
        self.blockade.start(count)

    def _block_all(self, blocked: bool) -> None:
        for chat_id in self._chats:
            self.sim.set_blocked(chat_id, blocked)


def _blocked_refusals(sim: TelegramSimulator) -> int:
    return sum(1 for call in sim.requests if call.status == 403 and call.description == BLOCKED)


# --------------------------------------------------------------------------- normalising


Record = SentMessage | EditRecord | DeletionRecord | ReactionRecord | ActionRecord


def _chat_id(chat_id: int, business_connection_id: str | None) -> str:
    """The chat as the connector names it (Business chats: ``b:<connection>:<chat>``)."""
    if business_connection_id:
        return f"b:{business_connection_id}:{chat_id}"
    return str(chat_id)


def _html(raw: str | None, parse_mode: str | None) -> str | None:
    return raw if (parse_mode or "").lower() == "html" else None


def _ordered(sim: TelegramSimulator) -> Iterator[Record]:
    """The simulator's records in the order the bot's calls were answered."""
    queues: dict[str, Iterator[Record]] = {
        "send": iter(sim.sent),
        "edit": iter(sim.edits),
        "delete": iter(sim.deletions),
        "react": iter(sim.reactions),
        "action": iter(sim.actions),
    }
    for call in sim.requests:
        if call.status != 200:
            continue
        method = call.method.lower()
        if method in SEND_METHODS:
            queue = "send"
        elif method in ("editmessagetext", "editmessagecaption"):
            queue = "edit"
        elif method == "deletemessage":
            queue = "delete"
        elif method == "setmessagereaction":
            queue = "react"
        elif method == "sendchataction":
            queue = "action"
        else:
            continue  # deleteMessages records a varying number; they follow at the end
        record = next(queues[queue], None)
        if record is not None:
            yield record
    for rest in queues.values():
        yield from rest


def received(sim: TelegramSimulator) -> Iterator[Received]:
    """What the bot did, in the contract suite's connector-neutral form."""
    reactions: dict[tuple[int, int], list[str]] = {}
    for record in _ordered(sim):
        if isinstance(record, SentMessage):
            yield _sent(record)
        elif isinstance(record, EditRecord):
            yield Received(
                type="edit",
                chat_id=_chat_id(record.chat_id, record.business_connection_id),
                target=str(record.message_id),
                text=record.rendered,
                html=_html(record.text, record.parse_mode),
            )
        elif isinstance(record, DeletionRecord):
            yield Received(
                type="delete", chat_id=str(record.chat_id), target=str(record.message_id)
            )
        elif isinstance(record, ReactionRecord):
            key = (record.chat_id, record.message_id)
            before, after = reactions.get(key, []), record.emojis
            reactions[key] = after
            chat_id, target = str(record.chat_id), str(record.message_id)
            for emoji in before:
                if emoji not in after:
                    yield Received(
                        type="reaction_remove", chat_id=chat_id, target=target, emoji=emoji
                    )
            for emoji in after:
                if emoji not in before:
                    yield Received(type="reaction", chat_id=chat_id, target=target, emoji=emoji)
        elif record.action == "typing":
            yield Received(
                type="typing",
                chat_id=_chat_id(record.chat_id, record.business_connection_id),
                typing=True,
            )


def _sent(record: SentMessage) -> Received:
    attachment = None
    if record.file is not None:
        mimetype = (
            record.mime_type
            or mimetypes.guess_type(record.file.filename)[0]
            or record.file.content_type
        )
        attachment = ReceivedAttachment(
            filename=record.file.filename, mimetype=mimetype, data=record.file.data
        )
    return Received(
        type="message",
        id=str(record.message_id),
        chat_id=_chat_id(record.chat_id, record.business_connection_id),
        text=record.rendered,
        html=_html(record.text, record.parse_mode),
        reply_to=None if record.reply_to is None else str(record.reply_to),
        attachment=attachment,
        buttons=[
            (key["callback_data"], key["text"])
            for row in (record.message.get("reply_markup") or {}).get("inline_keyboard", [])
            for key in row
        ],
    )
