"""``ConnectorHarness``: what the contract suite needs from each connector's test double of its
remote side.

A harness owns a simulator of the remote network (a local HTTP server speaking the remote's
documented API, a mail server, a webhook receiver...) and drives it: it makes the remote side
deliver events to the connector the way the real remote does, and reports what the remote side
received from the connector, normalised to ``Received``. To put a new connector through the
suite, subclass this in ``tests/connectors/<name>/harness.py`` and add one line to
``registry.py``. A harness module imports what it needs from here alone (``FakeHost``
included); ``Blockade`` and ``one_id_for_chat_and_user`` serve remotes whose chats are people.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Literal, TypedDict, TypeVar

from bridge.connector import NetworkConnector
from bridge.events import MatrixMessage
from bridge.types import AccountID, PortalKey

from .fake_host import FakeHost

__all__ = [
    "Blockade",
    "ConnectorHarness",
    "FailureKind",
    "FakeHost",
    "IdKind",
    "Received",
    "ReceivedAttachment",
    "one_id_for_chat_and_user",
    "staff_message",
]

FailureKind = Literal["temporary", "permanent"]
IdKind = Literal["chat", "user", "message"]

_event_ids = itertools.count(1)


def staff_message(portal: PortalKey, text: str, **fields: Any) -> MatrixMessage:
    """A text message of the staff member Alice in ``portal``, each with a new event id;
    ``fields`` adds to it or replaces (``msgtype``, ``media``, ``reply_to``...)."""
    fields.setdefault("msgtype", "m.text")
    return MatrixMessage(
        portal=portal,
        event_id=f"$event{next(_event_ids)}:example.com",
        sender="@alice:example.com",
        sender_name="Alice",
        text=text,
        **fields,
    )


class ReceivedAttachment(TypedDict):
    filename: str | None
    mimetype: str | None
    data: bytes


class Received(TypedDict, total=False):
    """One thing the remote side got from the connector, in connector-neutral form."""

    type: Literal[
        "message", "edit", "delete", "reaction", "reaction_remove", "read_receipt", "typing"
    ]
    id: str
    """For messages: the id the remote side knows the message by (what ``SentMessage`` has)."""
    chat_id: str
    text: str | None
    html: str | None
    reply_to: str | None
    """For messages: the remote id of the message replied to."""
    target: str
    """For edits, deletes, reactions and read receipts: the remote id of the message acted on."""
    emoji: str
    typing: bool
    attachment: ReceivedAttachment | None
    buttons: list[tuple[str, str]]
    """For messages with reply buttons: each button's (id, title), in order."""


class ConnectorHarness(ABC):
    """One connector's remote side, for the contract suite. A fresh instance per test."""

    name: ClassVar[str]
    """Short name, used as the pytest id."""
    connector_class: ClassVar[type[NetworkConnector]]
    account_id: ClassVar[AccountID] = AccountID("contract-test")

    def __init__(self) -> None:
        self.host: FakeHost | None = None
        """The host of the last connector :meth:`make_connector` made."""
        self._first_deliveries: dict[str, Any] = {}

    @property
    def config_key(self) -> str:
        """The dotted path of the account's config section, as the core passes it."""
        return f"channels.{self.account_id}"

    # ------------------------------------------------------------------ lifecycle

    @abstractmethod
    async def start(self) -> None:
        """Start the simulated remote side."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop the simulated remote side and close everything it opened."""

    # ------------------------------------------------------------------ config

    @abstractmethod
    def valid_config(self) -> dict[str, Any]:
        """A raw config section that parses, pointing the connector at the simulator."""

    @abstractmethod
    def invalid_configs(self) -> list[tuple[dict[str, Any], str]]:
        """Raw config sections that must be refused, each with the full dotted key the
        ``ConfigError`` must name (under ``config_key``)."""

    def make_connector(self, host: FakeHost, **overrides: Any) -> NetworkConnector:
        """A connector for ``host`` with ``valid_config()`` (keys in ``overrides`` replaced),
        not started."""
        self.host = host
        raw = {**self.valid_config(), **overrides}
        config = self.connector_class.parse_config(raw, self.config_key)
        return self.connector_class(self.account_id, config, host)

    # ------------------------------------------------------------------ ids

    def remote_id(self, kind: IdKind, label: str) -> str:
        """The remote side's id for the chat, user or message the suite calls ``label``
        (``chat-1``, ``customer-1``, ``msg-q``). The suite passes labels to the methods below
        and compares what the connector produced (events, ``Received``) with this id. Remotes
        that take any string keep the label (the default); a remote with ids of its own format
        maps each label to a stable id of that format (Telegram: numbers, a private chat's id
        being its user's id)."""
        return label

    # ------------------------------------------------------------------ remote to connector

    @abstractmethod
    async def remote_sends_message(
        self,
        chat_id: str,
        sender_id: str,
        text: str,
        message_id: str,
        *,
        sender_name: str | None = None,
    ) -> None:
        """Make the remote side deliver a text message to the running connector, as the real
        remote does, and return once the connector acknowledged it (for polling connectors:
        once the update was consumed). Raise if the connector refused it."""

    async def remote_sends_duplicate(
        self, chat_id: str, sender_id: str, text: str, message_id: str
    ) -> None:
        """Deliver the same message again, as the remote does when an acknowledgement was
        lost: what ``deliver_message`` first delivered for ``message_id`` goes in again
        (``redeliver``); a harness that does not use ``deliver_message`` repeats
        ``remote_sends_message``."""
        # Ids here and in the methods below are the suite's labels, see ``remote_id``.
        first = self._first_deliveries.get(message_id)
        if first is None:
            await self.remote_sends_message(chat_id, sender_id, text, message_id)
        else:
            await self.redeliver(message_id, first)

    async def deliver_message(self, label: str, delivery: Any) -> None:
        """Deliver the message the suite calls ``label``, in the remote's own form (raw mail, a
        Telegram Message, a webhook payload), with ``redeliver``; the first delivery of each
        label is kept for ``remote_sends_duplicate``."""
        self._first_deliveries.setdefault(label, delivery)
        await self.redeliver(label, delivery)

    async def redeliver(self, label: str, delivery: Any) -> None:
        """Hand ``delivery`` (see ``deliver_message``) to the running connector."""
        raise NotImplementedError

    async def remote_sends_attachment(
        self,
        chat_id: str,
        sender_id: str,
        message_id: str,
        data: bytes,
        filename: str,
        mimetype: str,
    ) -> None:
        """Deliver a message with one attachment whose content is ``data``, hosted wherever
        the remote keeps files, so that ``MediaDownloader.download_attachment`` can fetch it.
        Harnesses of connectors without ``MediaDownloader`` may leave this out."""
        raise NotImplementedError

    async def remote_presses_button(
        self, chat_id: str, sender_id: str, message_id: str, button_id: str
    ) -> None:
        """The customer the suite calls ``sender_id`` presses the reply button ``button_id``
        under the message ``message_id`` (the remote id a ``send_message`` with buttons gave)
        in the chat ``chat_id``, and the remote side delivers that press to the connector;
        return once the connector acknowledged it. Harnesses of connectors without buttons
        (``Capabilities.max_buttons`` 0) may leave this out."""
        raise NotImplementedError

    # ------------------------------------------------------------------ connector to remote

    @abstractmethod
    async def remote_received(self) -> list[Received]:
        """Everything the remote side has received from the connector so far, in order, each
        delivery once (repeats with the same idempotency key collapsed)."""

    @abstractmethod
    async def make_remote_fail(self, kind: FailureKind, count: int = 1) -> None:
        """Make the remote side refuse the next ``count`` requests from the connector:
        ``temporary`` as an overloaded server (5xx/429), ``permanent`` as rejected content."""


T = TypeVar("T", int, str)


def one_id_for_chat_and_user(
    ids: dict[tuple[str, str], T], chat: str, sender: str, new: Callable[[], T], rule: str
) -> T:
    """The id of the chat labelled ``chat`` with the user labelled ``sender``, on a remote where
    a conversation is its person (a Telegram private chat, a WhatsApp number, a mail contact):
    both labels share one id in ``ids``, a new one from ``new()`` if neither has one yet.
    ``rule`` says why two labels that already have different ids cannot be paired."""
    chat_id = ids.get(("chat", chat))
    user_id = ids.get(("user", sender))
    if chat_id is not None and user_id is not None and chat_id != user_id:
        raise AssertionError(
            f"{rule}: {sender!r} ({user_id}) cannot write in {chat!r} ({chat_id})"
        )
    value = chat_id or user_id or new()
    ids[("chat", chat)] = ids[("user", sender)] = value
    return value


class Blockade:
    """Permanent delivery failures on a remote whose chats are people: every customer, also
    those named later, refuses the connector's sends (Telegram: the bot was blocked; WhatsApp:
    the number is unreachable) until ``count`` more sends were refused, then all is lifted.

    :param refusals: how many sends the remote refused so far for this reason.
    :param block_all: block (True) or unblock (False) every customer known so far.
    :param wait_for: the simulator's ``wait_for(predicate, timeout)``.
    """

    def __init__(
        self,
        refusals: Callable[[], int],
        block_all: Callable[[bool], None],
        wait_for: Callable[[Callable[[], bool], float], Awaitable[Any]],
    ) -> None:
        self.active = False
        """Whether a customer named now must be blocked at once."""
        self._refusals = refusals
        self._block_all = block_all
        self._wait_for = wait_for
        self._lifter: asyncio.Task[None] | None = None

    def start(self, count: int) -> None:
        target = self._refusals() + count
        self.active = True
        self._block_all(True)
        if self._lifter is not None:
            self._lifter.cancel()
        self._lifter = asyncio.create_task(self._lift_at(target))

    async def _lift_at(self, refusals: int) -> None:
        await self._wait_for(lambda: self._refusals() >= refusals, 3600)
        self.active = False
        self._block_all(False)

    async def close(self) -> None:
        if self._lifter is not None:
            self._lifter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lifter
