"""One conversation per connector, driven from the customer's side: the customer writes
numbered messages (retrying as the real platform does until the bridge accepted them), and
what the customer received from staff can be read back in arrival order."""

from __future__ import annotations

import asyncio
import imaplib
import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.conftest import MAIL_USER, Stack
from tests.connectors.max.simulator import MaxSimulator
from tests.connectors.telegram import updates as tg
from tests.connectors.vk.simulator import VKSimulator
from tests.connectors.whatsapp import payloads as wa
from tests.e2e.helpers import body_is, customer_msg, join_invite_named
from tests.e2e.test_email import mail
from tests.fault.telegram import FaultyTelegramSimulator
from tests.infra.dovecot import DovecotError
from tests.infra.staff import StaffClient

ACCEPT_TIMEOUT = 120.0
"""How long a customer's platform keeps retrying one delivery the bridge does not accept."""
RETRY_DELAY = 0.2

_tg_ids = itertools.count(880_000_001)
_wa_numbers = itertools.count(4917650000001)
_vk_users = itertools.count(710_000_001)
_max_users = itertools.count(52_000_001)


class Conversation(ABC):
    """A new conversation of one channel account, opened by the customer; ``room_id`` is its
    portal room, which the staff user has joined. Each test streams through it under its own
    ``tag`` (see ``begin``)."""

    account: str

    def __init__(self, stack: Stack, staff: StaffClient, ident: str = "fault") -> None:
        self.stack = stack
        self.staff = staff
        self.ident = ident
        self.tag = ident
        self.room_id = ""
        self.sent_in: list[int] = []
        """The numbers the customer has sent so far (the platform accepted them)."""
        self.sent_out: dict[int, str] = {}
        """The numbers staff have sent so far: their event ids."""

    @property
    def label(self) -> str:
        return f"{self.account}/{self.tag}"

    def begin(self, tag: str) -> None:
        """A new test's streams: their messages carry ``tag``."""
        self.tag = tag
        self.sent_in.clear()
        self.sent_out.clear()

    async def open(self) -> None:
        """The customer's first message creates the portal; staff join and see it."""
        text = f"{self.ident} open"
        name = await self._open(text)
        self.room_id = await join_invite_named(self.staff, name)
        await self.staff.wait_for_event(body_is(text), room_id=self.room_id, timeout=60)

    @abstractmethod
    async def _open(self, text: str) -> str:
        """Send the first message; return the portal room's name."""

    @abstractmethod
    async def send(self, text: str, *, twice: bool = False) -> None:
        """The customer sends ``text``; returns once the platform handed it to the bridge
        (``twice``: the platform delivers the same message twice)."""

    @abstractmethod
    def received(self) -> list[str]:
        """The texts of staff messages as the customer sees them, in arrival order."""

    def deliveries(self) -> list[str]:
        """Every delivery of a staff message, repeats the customer's side drops included."""
        return self.received()

    exactly_once_out = False
    """Whether the channel's protocol lets a repeated delivery be recognised (an idempotency
    key), so staff messages can be delivered exactly once even across a crash."""


async def _until_accepted(
    what: str, attempt: Callable[[], Any], *, ok: Callable[[Any], bool]
) -> None:
    deadline = time.monotonic() + ACCEPT_TIMEOUT
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await attempt()
        except (
            TimeoutError,
            aiohttp.ClientError,
            OSError,
            DovecotError,
            imaplib.IMAP4.error,
        ) as e:
            last = e
        else:
            if ok(last):
                return
        await asyncio.sleep(RETRY_DELAY)
    raise AssertionError(f"{what} not accepted in {ACCEPT_TIMEOUT:.0f}s; last answer: {last}")


class WebhookConversation(Conversation):
    account = "hooks"
    exactly_once_out = True

    async def _open(self, text: str) -> str:
        self.chat = f"fault-{self.ident}"
        await self.send(text)
        return f"Customer {self.chat}"

    async def send(self, text: str, *, twice: bool = False) -> None:
        payload = customer_msg(self.chat, text, f"{self.chat}:{text}")
        for _ in range(2 if twice else 1):
            await _until_accepted(
                f"webhook {text!r}",
                lambda: self.stack.peer.send(self.account, payload),
                ok=lambda answer: answer[0] == 200,
            )

    def received(self) -> list[str]:
        return [p["text"] for p in self.stack.peer.received if self._ours(p)]

    def deliveries(self) -> list[str]:
        return [p["text"] for p in self.stack.peer.deliveries if self._ours(p)]

    def _ours(self, p: dict[str, Any]) -> bool:
        return p.get("chat_id") == self.chat and p.get("type") == "message"


class TelegramConversation(Conversation):
    account = "tg"

    @property
    def sim(self) -> FaultyTelegramSimulator:
        sim = self.stack.telegram
        assert isinstance(sim, FaultyTelegramSimulator)
        return sim

    async def _open(self, text: str) -> str:
        last = f"{self.account.title().replace('-', '')}{self.ident.title()}"
        self.user = tg.user(next(_tg_ids), "Fault", last_name=last)
        self.chat = tg.private_chat(self.user)
        await self.send(text)
        return f"Fault {last}"

    async def send(self, text: str, *, twice: bool = False) -> None:
        # Telegram queues the update at once; the bot fetches it (or is sent it) from there.
        # ``twice`` only applies to webhooks: for polling, ``sim.redeliver`` repeats batches.
        update = tg.message_update(tg.text_message(self.chat, self.user, text))
        if twice and self.account == "tg-hook":
            self.sim.deliver_webhook_twice(update)
        else:
            self.sim.push_update(update)

    def received(self) -> list[str]:
        return [s.rendered or "" for s in self.sim.sent if s.chat_id == self.chat["id"]]


class TelegramHookConversation(TelegramConversation):
    account = "tg-hook"

    @property
    def sim(self) -> FaultyTelegramSimulator:
        sim = self.stack.telegram_hook
        assert isinstance(sim, FaultyTelegramSimulator)
        return sim


class WhatsAppConversation(Conversation):
    account = "wa"

    async def _open(self, text: str) -> str:
        self.number = str(next(_wa_numbers))
        self.name = f"Fault {self.ident} WhatsApp"
        await self.send(text)
        return self.name

    async def send(self, text: str, *, twice: bool = False) -> None:
        sim = self.stack.whatsapp
        msg = wa.text_message(self.number, text, timestamp=time.time())
        payload = sim.messages_payload(msg, names={self.number: self.name})

        async def attempt() -> Any:
            # One Meta delivery; a duplicate is the same body posted again after the 200.
            return await sim.send_webhook(payload, max_attempts=1, duplicate=twice)

        await _until_accepted(f"WhatsApp {text!r}", attempt, ok=lambda d: d.attempts[0].ok)

    def received(self) -> list[str]:
        return [
            s.content.get("body", "")
            for s in self.stack.whatsapp.sent
            if s.to == self.number and s.type == "text"
        ]


class EmailConversation(Conversation):
    account = "mail"

    async def _open(self, text: str) -> str:
        self.address = f"{self.ident}@customer.test"
        self.name = f"Fault {self.ident} Mail"
        self.subject = f"Order {self.ident}"
        raw, self.first_id = mail(self.address, self.subject, text, name=self.name)
        await self.stack.dovecot.adeliver(MAIL_USER, raw)
        return self.name

    async def send(self, text: str, *, twice: bool = False) -> None:
        # Replies to the first mail: the same conversation. ``twice``: the mail server put
        # the same message (same Message-ID) into the mailbox twice.
        raw, _ = mail(
            self.address, f"Re: {self.subject}", text, name=self.name,
            in_reply_to=self.first_id, references=[self.first_id],
        )  # fmt: skip
        for _ in range(2 if twice else 1):
            await _until_accepted(
                f"mail {text!r}",
                lambda: self.stack.dovecot.adeliver(MAIL_USER, raw),
                ok=lambda _: True,
            )

    def received(self) -> list[str]:
        out = []
        for captured in self.stack.smtp.messages:
            if captured.rcpt_tos == [self.address]:
                body = captured.message.get_body(("plain",))
                out.append(body.get_content().strip() if body is not None else "")
        return out


class VKConversation(Conversation):
    account = "vk"
    exactly_once_out = True
    """``messages.send``'s ``random_id`` comes from the Matrix event: VK drops a repeat."""

    @property
    def sim(self) -> VKSimulator:
        sim = self.stack.simulators["vk"]
        assert isinstance(sim, VKSimulator)
        return sim

    async def _open(self, text: str) -> str:
        self.user = next(_vk_users)
        self.sim.name(self.user, "Fault", f"{self.ident} VK")
        await self.send(text)
        return f"Fault {self.ident} VK"

    async def send(self, text: str, *, twice: bool = False) -> None:
        event = self.sim.message(self.user, text)
        for _ in range(2 if twice else 1):  # twice: VK repeats an event whose "ok" was lost
            await _until_accepted(
                f"VK {text!r}",
                lambda: self.sim.post_callback(event, attempts=1),
                ok=lambda delivery: delivery.ok,
            )

    def received(self) -> list[str]:
        return [m.text for m in self.sim.sent if m.peer_id == self.user]

    def deliveries(self) -> list[str]:
        return [
            m.text for m in self.sim.sent for _ in range(m.repeats + 1) if m.peer_id == self.user
        ]


class MaxConversation(Conversation):
    account = "max"

    @property
    def sim(self) -> MaxSimulator:
        sim = self.stack.simulators["max"]
        assert isinstance(sim, MaxSimulator)
        return sim

    async def _open(self, text: str) -> str:
        self.user = next(_max_users)
        self.name = f"Fault {self.ident} MAX"
        await self.send(text)
        return self.name

    async def send(self, text: str, *, twice: bool = False) -> None:
        # MAX posts an update until the bridge answers 200; ``twice``: the same update again.
        update = self.sim.customer_message(self.user, self.name, text)
        for _ in range(2 if twice else 1):
            await _until_accepted(
                f"MAX {text!r}",
                lambda: self.sim.deliver(update),
                ok=lambda delivery: delivery is not None and delivery.status == 200,
            )

    def received(self) -> list[str]:
        chat = self.sim.dialog_of(self.user)
        return [s.plain or "" for s in self.sim.sent if s.chat_id == chat]


CONVERSATIONS: tuple[type[Conversation], ...] = (
    WebhookConversation,
    TelegramConversation,
    TelegramHookConversation,
    WhatsAppConversation,
    EmailConversation,
    VKConversation,
    MaxConversation,
)
"""One per connector (both Telegram modes): a fault test runs its streams through all."""
