"""The customer's side of each channel for the inbox's end-to-end suite: a customer writes
through the channel's remote (the webhook peer, the Telegram and WhatsApp simulators, mail
into Dovecot), and everything the remote got from the bridge for that customer is read back
in one form (``Got``), so that one parametrised suite checks every channel alike.

One ``Channel`` per connector, over the accounts ``build_stack`` starts (``hooks``, ``tg``,
``wa``, ``mail``). Names are unique for the stack's life: a customer is a new conversation."""

from __future__ import annotations

import itertools
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from tests.conftest import MAIL_USER, Stack
from tests.connectors.telegram import updates as tg
from tests.connectors.whatsapp import payloads as wa
from tests.e2e.helpers import customer_msg
from tests.e2e.test_email import mail

_n = itertools.count(1)


@dataclass
class Customer:
    name: str
    """The conversation's name: its room's name after the status mark, ``{customer}``."""
    address: str
    """Where the channel reaches the customer: a webhook chat id, a Telegram chat id, a
    WhatsApp number, a mail address."""
    thread: list[str] = field(default_factory=list)
    """Mail: the Message-IDs of the customer's mails so far (a reply references them)."""


@dataclass(frozen=True)
class Got:
    """One thing the remote side got from the bridge for a customer."""

    kind: Literal["message", "edit"]
    text: str
    """As the customer reads it (Telegram: after parsing; mail: the plain body)."""
    raw: str
    """All of it as the remote got it (payload, API parameters, the whole mail), to find a
    leak anywhere."""
    headers: dict[str, str] = field(default_factory=dict)
    """Mail only: the message's headers."""


class Channel(ABC):
    name: ClassVar[str]
    """The pytest id."""
    account: ClassVar[str]
    prefixed: ClassVar[bool] = True
    """Whether the customer reads the sender prefix (``staff: ``) in front of a staff
    message's text; mail puts the name in ``From:`` instead."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    @abstractmethod
    def customer(self) -> Customer:
        """A new customer (nobody has written yet)."""

    @abstractmethod
    async def writes(self, customer: Customer, text: str, **options: Any) -> None:
        """The customer's message reaches the bridge (accepted by it)."""

    @abstractmethod
    def got(self, customer: Customer) -> list[Got]:
        """What the remote side got for ``customer`` so far: messages in order (Telegram: its
        edits after them)."""

    @abstractmethod
    async def _changed(self, check: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
        """Return once ``check()`` holds, re-checked whenever the remote side got something."""

    async def wait_got(
        self,
        customer: Customer,
        predicate: Callable[[Got], bool],
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> Got:
        """The first ``Got`` for ``customer`` that matches, waiting for it."""

        def found() -> Got | None:
            return next((g for g in self.got(customer) if predicate(g)), None)

        await self._changed(lambda: found() is not None, timeout)
        result = found()
        assert result is not None
        return result

    def staff_text(self, prefix: str, text: str) -> str:
        """What the customer reads of a staff message ``text`` sent with ``prefix``."""
        return prefix + text if self.prefixed else text


class WebhookChannel(Channel):
    name = "webhook"
    account = "hooks"

    def customer(self) -> Customer:
        chat = f"inbox-chat-{next(_n)}"
        return Customer(f"Customer {chat}", chat)

    async def writes(self, customer: Customer, text: str, **options: Any) -> None:
        status, body = await self.stack.peer.send(
            self.account, customer_msg(customer.address, text, **options)
        )
        assert status == 200, body

    def got(self, customer: Customer) -> list[Got]:
        return [
            Got(p["type"], p.get("text") or "", json.dumps(p, ensure_ascii=False))
            for p in self.stack.peer.received
            if p.get("chat_id") == customer.address and p.get("type") in ("message", "edit")
        ]

    async def _changed(self, check: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
        await self.stack.peer.wait_for(lambda _payload: check(), timeout)


class TelegramChannel(Channel):
    name = "telegram"
    account = "tg"

    def customer(self) -> Customer:
        n = next(_n)
        user = tg.user(8_100_000 + n, "Tina", last_name=f"Inbox{n}")
        return Customer(f"Tina Inbox{n}", str(user["id"]))

    def _chat(self, customer: Customer) -> tuple[dict[str, Any], dict[str, Any]]:
        first, last = customer.name.split(" ", 1)
        user = tg.user(int(customer.address), first, last_name=last)
        return user, tg.private_chat(user)

    async def writes(self, customer: Customer, text: str, **options: Any) -> None:
        user, chat = self._chat(customer)
        sim = self.stack.telegram
        update = sim.push_update(tg.message_update(tg.text_message(chat, user, text, **options)))
        await sim.wait_for_confirmed(update["update_id"], timeout=30)

    def got(self, customer: Customer) -> list[Got]:
        sim, chat = self.stack.telegram, int(customer.address)
        kinds: list[tuple[Literal["message", "edit"], list[Any]]] = [
            ("message", sim.sent),
            ("edit", sim.edits),
        ]
        records = [(kind, r) for kind, rs in kinds for r in rs if r.chat_id == chat]
        return [
            Got(kind, r.rendered or "", json.dumps(r.params, ensure_ascii=False, default=str))
            for kind, r in records
        ]

    async def _changed(self, check: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
        await self.stack.telegram.wait_for(lambda: check() or None, timeout)


class WhatsAppChannel(Channel):
    name = "whatsapp"
    account = "wa"

    def customer(self) -> Customer:
        n = next(_n)
        return Customer(f"Wanda Inbox{n}", str(4917_600_000_000 + n))

    async def writes(self, customer: Customer, text: str, **options: Any) -> None:
        message = wa.text_message(customer.address, text, **options)
        delivery = await self.stack.whatsapp.receive(
            message, names={customer.address: customer.name}
        )
        assert delivery.ok, delivery

    def got(self, customer: Customer) -> list[Got]:
        return [
            Got("message", s.text or "", json.dumps(s.body, ensure_ascii=False))
            for s in self.stack.whatsapp.sent
            if s.wa_id == customer.address
        ]

    async def _changed(self, check: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
        await self.stack.whatsapp.wait_for(lambda: check() or None, timeout)


class EmailChannel(Channel):
    name = "email"
    account = "mail"
    prefixed = False

    def customer(self) -> Customer:
        n = next(_n)
        return Customer(f"Emma Inbox{n}", f"emma.inbox{n}@customer.test")

    async def writes(self, customer: Customer, text: str, **options: Any) -> None:
        """A mail from the customer: the first opens a thread, later ones answer in it."""
        subject = options.pop("subject", "Question")
        if customer.thread:
            options.setdefault("in_reply_to", customer.thread[-1])
            options.setdefault("references", list(customer.thread))
            subject = f"Re: {subject}"
        name = options.pop("name", customer.name)
        raw, message_id = mail(customer.address, subject, text, name=name, **options)
        customer.thread.append(message_id)
        await self.stack.dovecot.adeliver(MAIL_USER, raw)

    def got(self, customer: Customer) -> list[Got]:
        got = []
        for captured in self.stack.smtp.messages:
            if captured.rcpt_tos != [customer.address]:
                continue
            message = captured.message
            body = message.get_body(("plain",))
            text = body.get_content().strip() if body is not None else ""
            headers = {k: str(v) for k, v in message.items()}
            # Decoded, every text part: a transfer encoding must not hide a leak.
            parts = [
                str(part.get_content())
                for part in message.walk()
                if part.get_content_maintype() == "text"
            ]
            raw = "\n".join([*(f"{k}: {v}" for k, v in headers.items()), *parts])
            got.append(Got("message", text, raw, headers))
        return got

    async def _changed(self, check: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
        await self.stack.smtp.wait_for(lambda _mail: check(), timeout)


CHANNELS: list[type[Channel]] = [WebhookChannel, TelegramChannel, WhatsAppChannel, EmailChannel]
