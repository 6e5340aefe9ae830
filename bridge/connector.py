"""The connector contract: what a channel connector implements and what the core gives it.

The core owns everything Matrix: portal rooms, ghost users, the message table, per-portal
ordering, retries and the notices staff see. A connector owns exactly one channel account
(one Telegram bot, one WhatsApp number, one mailbox, one webhook endpoint) and does two
things:

* it turns remote traffic into typed remote events (``bridge.events.Remote*``) and hands them
  to ``BridgeHost.handle_remote_event``, which returns only once the event is durably
  recorded; a connector acknowledges the remote side (answers a webhook, advances a poll
  offset, marks a mail seen) only after that call returned;
* it sends what staff write in Matrix to the remote side, through ``send_message`` and the
  optional capability protocols below.

A connector never talks to Matrix itself.

Required core
    ``NetworkConnector`` (an ABC): ``parse_config`` (a classmethod, validates the account's
    config section without network calls), ``__init__`` (no network calls either), ``start``,
    ``stop``, ``capabilities`` (data, see ``Capabilities``), ``state`` and ``send_message``.

Reply buttons
    Data, not a protocol: ``Capabilities.max_buttons`` (and the title and id limits) say
    whether ``send_message`` shows ``MatrixMessage.buttons``; the core refuses buttons beyond
    them (``button_problem``). A press is handed to the host as a ``RemoteButtonPress``.

Optional capabilities
    One ``typing.Protocol`` per feature, checked with ``isinstance`` at the point of use:
    ``EditHandler``, ``DeleteHandler``, ``ReactionHandler``, ``ReplyHandler``,
    ``ReadReceiptHandler``, ``TypingHandler``, ``MediaSender``, ``MediaDownloader``. When a
    staff member does something the connector cannot carry (edits a message on a channel
    without edits), the core tells them so in the room; nothing is dropped silently.

Errors
    ``send_*`` and ``handle_matrix_*`` methods raise ``TemporaryDeliveryError`` for failures
    worth retrying (network, 5xx, rate limits: set ``retry_after`` when the remote said how
    long to wait) and ``PermanentDeliveryError`` for failures that will not heal (rejected
    content, closed window). The core retries temporary failures in order, with backoff,
    until ``Capabilities.delivery_deadline`` passes, and shows permanent ones in the room.
    Any other exception is treated as temporary.
"""

from __future__ import annotations

import enum
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from .events import (
    Button,
    MatrixEdit,
    MatrixMessage,
    MatrixReaction,
    MatrixReactionRemove,
    MatrixReadReceipt,
    MatrixRedaction,
    MatrixTyping,
    RemoteAttachment,
    RemoteEvent,
    SentMessage,
)
from .types import AccountID, RemoteChatID

if TYPE_CHECKING:
    import aiohttp
    from aiohttp import web

    from .media import MediaFile


class DeliveryError(Exception):
    """A message could not be delivered; ``reason`` is shown to the staff member."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TemporaryDeliveryError(DeliveryError):
    """Worth retrying later; ``retry_after`` (seconds) if the remote side said so."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Will not heal by retrying; the core reports it and moves on."""


@dataclass(frozen=True)
class Capabilities:
    """What a channel can carry, as data. One frozen instance per connector class."""

    html: bool = False
    """Whether formatting reaches the remote side (as HTML or in the channel's own markup,
    converted by the connector). Without it the core hands the connector plain text only."""
    max_text_length: int | None = None
    """Longest text the remote side takes in one message. A longer message is split by the
    connector (by the channel's own counting); a longer edit is refused by the core, since an
    edit replaces one message."""
    max_file_size: Mapping[str, int] = field(default_factory=dict)
    """Largest upload per Matrix msgtype (``m.image``, ``m.file``...); ``*`` for any."""
    edit_window: float | None = None
    """Seconds after sending during which a message can still be edited (None: no limit)."""
    delete_window: float | None = None
    """Seconds after sending during which a message can still be deleted (None: no limit)."""
    rate_limits: Mapping[str, float] = field(default_factory=dict)
    """Documented remote limits, messages per second, e.g. ``{"chat": 1, "global": 30}``:
    the one declaration the connector's rate limiters take their rates from."""
    delivery_deadline: float = 24 * 3600.0
    """How long the core keeps retrying a temporarily failing delivery before giving up."""
    max_buttons: int = 0
    """How many reply buttons (``MatrixMessage.buttons``) one message can carry; 0: none, the
    core refuses a message with buttons to this channel (with a notice) rather than send it
    without them. A press comes back as a ``RemoteButtonPress``."""
    max_button_title: int | None = None
    """Longest button title, in characters (WhatsApp: 20)."""
    max_button_id: int | None = None
    """Longest button id, in bytes of UTF-8 (Telegram's ``callback_data``: 64)."""


def button_problem(
    buttons: Sequence[Button], capabilities: Capabilities, title: str
) -> str | None:
    """Why ``buttons`` cannot go out on a channel with ``capabilities`` (named ``title``), for
    staff to read; None when they can. The core checks before it hands a message to the
    connector; a connector checks again for what only it knows."""
    if not buttons:
        return None
    if capabilities.max_buttons == 0:
        return f"{title} cannot show reply buttons"
    if len(buttons) > capabilities.max_buttons:
        return (
            f"{title} shows at most {capabilities.max_buttons} reply buttons, not {len(buttons)}"
        )
    ids = [button.id for button in buttons]
    if len(set(ids)) != len(ids):
        return "two reply buttons have the same id"
    for button in buttons:
        if not button.id or not button.title.strip():
            return "a reply button needs an id and a title"
        longest = capabilities.max_button_title
        if longest is not None and len(button.title) > longest:
            return (
                f"the button title “{button.title}” is longer than the {longest} characters"
                f" {title} shows"
            )
        longest = capabilities.max_button_id
        if longest is not None and len(button.id.encode()) > longest:
            return f"the button id {button.id!r} is longer than the {longest} bytes {title} takes"
    return None


class StateKind(enum.StrEnum):
    STARTING = "starting"
    CONNECTED = "connected"
    DEGRADED = "degraded"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ConnectorState:
    kind: StateKind
    message: str = ""


class ConfigError(ValueError):
    """A configuration value is missing or wrong; ``key`` is its dotted path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config key '{key}': {message}")
        self.key = key
        self.message = message


class BridgeHost(Protocol):
    """What the core offers a connector."""

    log: logging.Logger
    """A logger named after the channel account."""

    @property
    def http(self) -> aiohttp.ClientSession:
        """A shared HTTP client session for talking to the remote side."""
        ...

    async def handle_remote_event(self, event: RemoteEvent) -> bool:
        """Record ``event`` durably and queue it for Matrix. Returns False when the same event
        (same ``dedup_key()``) was recorded before, in which case nothing new is stored.
        Acknowledge the remote side only after this returned."""
        ...

    def add_route(
        self,
        method: str,
        path: str,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> str:
        """Serve ``handler`` on the bridge's HTTP listener under
        ``/connectors/<account id><path>``; returns the full path."""
        ...

    def set_state(self, state: ConnectorState) -> None:
        """Report the connection state shown by the ``channels`` command."""
        ...

    async def load_data(self) -> dict[str, Any]:
        """The account's persisted connector data (poll offsets, UIDs...), {} at first."""
        ...

    async def save_data(self, data: dict[str, Any]) -> None:
        """Persist the account's connector data durably."""
        ...

    async def find_chat(self, message_ids: list[str]) -> RemoteChatID | None:
        """The chat of the most recent bridged message (either direction) among
        ``message_ids``, or None: how mail threads find their conversation."""
        ...

    async def portal_metadata(self, chat: RemoteChatID) -> dict[str, Any]:
        """The values stored with the conversation of ``chat`` ({} if there are none): what
        remote events put under ``metadata["portal"]``, e.g. when the customer last wrote."""
        ...


class NetworkConnector(ABC):
    """The required core of every connector: one instance per channel account."""

    channel: ClassVar[str]
    """The ``type`` value that selects this connector in the config (``webhook``...)."""
    title: str
    """Human name of the channel, used in room topics, ghost names and command output. A class
    attribute, or set per account in ``__init__`` (a name from config)."""
    capabilities: Capabilities
    """May be a class attribute, or set per account in ``__init__`` (a deadline from config)."""
    public_address: str | None = None
    """How customers reach the account, for links and posters: a Telegram bot's username
    (known after ``start``), a WhatsApp number in international form, a mail address; None
    when the channel has none."""

    def __init__(self, account_id: AccountID, config: Any, host: BridgeHost) -> None:
        """Keep the parsed config and host; no network calls here."""
        self.account_id = account_id
        self.config = config
        self.host = host
        self._state = ConnectorState(StateKind.STARTING)

    @classmethod
    @abstractmethod
    def parse_config(cls, raw: Mapping[str, Any], key: str) -> Any:
        """Validate the account's config section (``key`` is its dotted path, for errors) and
        return a parsed config object. Raise ``ConfigError`` naming the exact key."""

    @abstractmethod
    async def start(self) -> None:
        """Connect to the remote side, register routes, begin handing events to the host."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop receiving; return when no more events will be handed to the host."""

    @property
    def state(self) -> ConnectorState:
        return self._state

    def set_state(self, kind: StateKind, message: str = "") -> None:
        self._state = ConnectorState(kind, message)
        self.host.set_state(self._state)

    @abstractmethod
    async def send_message(self, msg: MatrixMessage) -> SentMessage:
        """Deliver a staff text message (or notice/emote) to the remote chat.

        Media messages go to ``MediaSender.send_media`` instead; replies go to
        ``ReplyHandler.send_reply`` when the connector has it."""


# --------------------------------------------------------------------------- capabilities


@runtime_checkable
class ReplyHandler(Protocol):
    """Sends a message as a reply to ``msg.reply_to`` (set by the core)."""

    async def send_reply(self, msg: MatrixMessage) -> SentMessage: ...


@runtime_checkable
class EditHandler(Protocol):
    async def handle_matrix_edit(self, edit: MatrixEdit) -> None: ...


@runtime_checkable
class DeleteHandler(Protocol):
    async def handle_matrix_redaction(self, redaction: MatrixRedaction) -> None: ...


@runtime_checkable
class ReactionHandler(Protocol):
    async def handle_matrix_reaction(self, reaction: MatrixReaction) -> None: ...

    async def handle_matrix_reaction_remove(self, removal: MatrixReactionRemove) -> None: ...


@runtime_checkable
class ReadReceiptHandler(Protocol):
    async def handle_matrix_read_receipt(self, receipt: MatrixReadReceipt) -> None: ...


@runtime_checkable
class TypingHandler(Protocol):
    async def handle_matrix_typing(self, typing: MatrixTyping) -> None: ...


@runtime_checkable
class MediaSender(Protocol):
    """Sends a staff message with ``msg.media`` set (image, file, audio, video)."""

    async def send_media(self, msg: MatrixMessage) -> SentMessage: ...


@dataclass(frozen=True)
class Template:
    """A pre-approved message (WhatsApp templates): the only thing some channels let a
    business send outside a conversation window or to start a conversation."""

    name: str
    language: str
    text: str
    """The body with ``{{1}}``, ``{{2}}``... placeholders."""
    parameters: int
    category: str = ""

    def render(self, params: list[str]) -> str:
        text = self.text
        for index, value in enumerate(params, start=1):
            text = text.replace("{{" + str(index) + "}}", value)
        return text


@runtime_checkable
class TemplateHandler(Protocol):
    """Lists and sends templates; the core's ``template`` command uses it."""

    async def list_templates(self) -> list[Template]: ...

    async def send_template(
        self, chat: RemoteChatID, template: Template, params: list[str]
    ) -> SentMessage: ...

    def chat_for_address(self, address: str) -> RemoteChatID:
        """The chat id for an address staff typed (a phone number); ValueError with a
        readable message when it is not one."""
        ...


@runtime_checkable
class Spooler(Protocol):
    """Optional side of the ``BridgeHost``: a large payload of an event (a whole mail pushed
    over LMTP) stored once, durably, in the core's database outside the queue row, and read
    back in chunks. An event lists the keys it uses in ``metadata["spool"]``; the core deletes
    them once the event is bridged. A host without it: the connector carries the data in the
    event as before."""

    async def spool(self, data: bytes) -> str:
        """Store ``data``; committed when this returns. Returns its key."""
        ...

    async def open_spooled(self, key: str, mimetype: str) -> MediaFile | None:
        """What is stored under ``key`` (None if it is gone), read in chunks into a file."""
        ...

    async def unspool(self, key: str) -> None:
        """Delete what no event lists (the event was refused, or a repeat)."""
        ...


@runtime_checkable
class MediaDownloader(Protocol):
    """Fetches a remote attachment so the core can upload it to the Matrix media repo.
    Returns the file and the mimetype: a ``bridge.media.MediaFile`` (filled in chunks, e.g.
    with ``MediaFile.from_response``, so a large file is never held whole in memory; the core
    closes it) or, for small files a channel hands over whole, the bytes. Raise
    ``PermanentDeliveryError`` with a readable reason when the file cannot be had (too large,
    expired); the core shows it in the room."""

    async def download_attachment(
        self, attachment: RemoteAttachment
    ) -> tuple[bytes | MediaFile, str]: ...
