"""``ConnectorHarness``: what the contract suite needs from each connector's test double of its
remote side.

A harness owns a simulator of the remote network (a local HTTP server speaking the remote's
documented API, a mail server, a webhook receiver...) and drives it: it makes the remote side
deliver events to the connector the way the real remote does, and reports what the remote side
received from the connector, normalised to ``Received``. To put a new connector through the
suite, subclass this in ``tests/connectors/<name>/harness.py`` and add one line to
``registry.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypedDict

from bridge.connector import NetworkConnector
from bridge.types import AccountID

if TYPE_CHECKING:
    from .fake_host import FakeHost

FailureKind = Literal["temporary", "permanent"]
IdKind = Literal["chat", "user", "message"]


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


class ConnectorHarness(ABC):
    """One connector's remote side, for the contract suite. A fresh instance per test."""

    name: ClassVar[str]
    """Short name, used as the pytest id."""
    connector_class: ClassVar[type[NetworkConnector]]
    account_id: ClassVar[AccountID] = AccountID("contract-test")

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

    def make_connector(self, host: FakeHost) -> NetworkConnector:
        """A connector for ``host`` with ``valid_config()``, not started."""
        config = self.connector_class.parse_config(self.valid_config(), self.config_key)
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
        lost. The default repeats ``remote_sends_message``."""
        # Ids here and in the methods below are the suite's labels, see ``remote_id``.
        await self.remote_sends_message(chat_id, sender_id, text, message_id)

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

    # ------------------------------------------------------------------ connector to remote

    @abstractmethod
    async def remote_received(self) -> list[Received]:
        """Everything the remote side has received from the connector so far, in order, each
        delivery once (repeats with the same idempotency key collapsed)."""

    @abstractmethod
    async def make_remote_fail(self, kind: FailureKind, count: int = 1) -> None:
        """Make the remote side refuse the next ``count`` requests from the connector:
        ``temporary`` as an overloaded server (5xx/429), ``permanent`` as rejected content."""
