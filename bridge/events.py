"""The typed events that cross the connector contract.

Remote events flow from a connector into the core (``BridgeHost.handle_remote_event``); the
core records them durably before the connector acknowledges them to the remote side, so they
are plain data that round-trips through JSON. Matrix events flow from the core into a
connector's ``send_*``/``handle_matrix_*`` methods.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from .types import MessageID, PortalKey, RemoteChatID, RemoteUserID

if TYPE_CHECKING:
    from .media import MediaFile

# --------------------------------------------------------------------------- remote side


@dataclass(frozen=True)
class RemoteChat:
    """The remote chat an event belongs to, with what the connector knows of it."""

    id: RemoteChatID
    name: str | None = None
    topic: str | None = None
    is_group: bool = False
    avatar_url: str | None = None
    """Fetched with the connector's ``MediaDownloader`` when it changes (best effort)."""


@dataclass(frozen=True)
class RemoteUser:
    """The remote person behind an event; becomes a ghost user in Matrix."""

    id: RemoteUserID
    displayname: str | None = None
    avatar_url: str | None = None


@dataclass(frozen=True)
class RemoteAttachment:
    """A file attached to a remote message; the core asks the connector to download it."""

    url: str
    filename: str | None = None
    mimetype: str | None = None
    size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RemoteEvent:
    """Base of everything a connector hands to the core."""

    kind: ClassVar[str] = "event"
    chat: RemoteChat
    sender: RemoteUser
    timestamp: float | None = None
    """Seconds since the epoch, as the remote side stamped the event."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Connector-specific data kept with the event. Each value of its ``"portal"`` entry, a
    dict, is stored with the conversation, on its own (e.g. the deep-link payload a
    conversation began with); ``BridgeHost.portal_metadata`` reads them back. Its
    ``"routing"`` entry, a dict, carries what the team inbox routes a new conversation by,
    where the channel knows it: ``to`` (the address the customer wrote to), ``start`` (a
    Telegram ``/start`` payload), ``language`` (the customer's language, e.g. ``de``) and
    ``fields`` (an in-house system's own fields of the event)."""

    def dedup_key(self) -> str:
        """A key that is equal for two deliveries of the same remote event."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["kind"] = self.kind
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> RemoteEvent:
        data = dict(data)
        cls = _EVENT_KINDS[data.pop("kind")]
        data["chat"] = RemoteChat(**data["chat"])
        data["sender"] = RemoteUser(**data["sender"])
        if "attachments" in data:
            data["attachments"] = tuple(RemoteAttachment(**a) for a in data["attachments"])
        return cls(**data)


def _digest(*parts: str | None) -> str:
    return hashlib.sha256("\x00".join(p or "" for p in parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RemoteMessage(RemoteEvent):
    kind: ClassVar[str] = "message"
    message_id: MessageID = MessageID("")
    text: str = ""
    html: str | None = None
    attachments: tuple[RemoteAttachment, ...] = ()
    reply_to: MessageID | None = None
    notice: bool = False
    """Sent as m.notice (automatic or system text rather than a person's words)."""

    def dedup_key(self) -> str:
        return f"message:{self.message_id}"


@dataclass(frozen=True)
class RemoteEdit(RemoteEvent):
    kind: ClassVar[str] = "edit"
    message_id: MessageID = MessageID("")
    text: str = ""
    html: str | None = None
    edit_id: str | None = None
    """Identifies this edit if the remote side has edit ids; otherwise the new text does."""

    def dedup_key(self) -> str:
        return f"edit:{self.message_id}:{self.edit_id or _digest(self.text, self.html)}"


@dataclass(frozen=True)
class RemoteDelete(RemoteEvent):
    kind: ClassVar[str] = "delete"
    message_id: MessageID = MessageID("")

    def dedup_key(self) -> str:
        return f"delete:{self.message_id}"


@dataclass(frozen=True)
class RemoteReaction(RemoteEvent):
    kind: ClassVar[str] = "reaction"
    message_id: MessageID = MessageID("")
    emoji: str = ""

    def dedup_key(self) -> str:
        return f"reaction:{self.message_id}:{self.sender.id}:{self.emoji}"


@dataclass(frozen=True)
class RemoteReactionRemove(RemoteEvent):
    kind: ClassVar[str] = "reaction_remove"
    message_id: MessageID = MessageID("")
    emoji: str = ""
    """Empty: the sender's reactions to the message, whichever they were."""
    removal_id: str | None = None

    def dedup_key(self) -> str:
        return f"unreact:{self.message_id}:{self.sender.id}:{self.emoji}:{self.removal_id}"


@dataclass(frozen=True)
class RemoteReadReceipt(RemoteEvent):
    """The remote user has read everything up to ``message_id``."""

    kind: ClassVar[str] = "read_receipt"
    message_id: MessageID = MessageID("")

    def dedup_key(self) -> str:
        return f"read:{self.message_id}:{self.sender.id}"


@dataclass(frozen=True)
class RemoteDeliveryReceipt(RemoteEvent):
    """A message the bridge sent reached the remote person's device (not yet read). The
    bridge bot's read receipt on the Matrix event shows it."""

    kind: ClassVar[str] = "delivered"
    message_id: MessageID = MessageID("")

    def dedup_key(self) -> str:
        return f"delivered:{self.message_id}"


@dataclass(frozen=True)
class RemoteTyping(RemoteEvent):
    kind: ClassVar[str] = "typing"
    timeout_ms: int = 5000

    def dedup_key(self) -> str:
        return f"typing:{self.sender.id}:{self.timestamp}"


@dataclass(frozen=True)
class RemoteButtonPress(RemoteEvent):
    """The customer pressed a reply button (``Button``) of a message the bridge sent: a
    Telegram callback query, a WhatsApp button reply, a webhook ``button`` event."""

    kind: ClassVar[str] = "button_press"
    message_id: MessageID = MessageID("")
    """The message whose button was pressed."""
    button_id: str = ""
    """The ``Button.id`` the bridge sent: what a feature decides by."""
    title: str = ""
    """The button's title as the customer saw it (shown to staff)."""
    press_id: str = ""
    """The remote side's id of this press (a callback query id, a wamid): equal for two
    deliveries of the same press."""

    def dedup_key(self) -> str:
        return f"press:{self.message_id}:{self.press_id or _digest(self.button_id)}"


@dataclass(frozen=True)
class RemoteDeliveryFailure(RemoteEvent):
    """A message the bridge sent earlier could not be delivered after all (bounce, failed
    status). The core shows ``reason`` in the room, tied to the Matrix event."""

    kind: ClassVar[str] = "delivery_failure"
    message_id: MessageID = MessageID("")
    reason: str = ""

    def dedup_key(self) -> str:
        return f"failure:{self.message_id}:{_digest(self.reason)}"


@dataclass(frozen=True)
class RemoteBlocked(RemoteEvent):
    """The customer blocked the business account (Telegram: a 403 "blocked by the user" on
    sending, or a ``my_chat_member`` update with the status ``kicked``). No room is made for
    it: the core shows it in the conversation's room when there is one and hands it to the
    inbound hooks (consent withdraws everything on the account)."""

    kind: ClassVar[str] = "blocked"
    block_id: str = ""
    """Equal for two deliveries of the same block (the update's date, the failed send's id)."""

    def dedup_key(self) -> str:
        return f"blocked:{self.sender.id}:{self.block_id}"


@dataclass(frozen=True)
class RemoteConsent(RemoteEvent):
    """An in-house system records a consent step of one of its users (the webhook protocol's
    ``consent`` event), with its own proof. No room is made for it; the inbound hooks get it
    (the consent feature checks and records it) and the conversation's room, when there is
    one, hears of it from them."""

    kind: ClassVar[str] = "consent"
    consent_id: str = ""
    """The in-house system's id of this step: equal for two deliveries."""
    list: str = ""
    step: str = ""
    """``confirmed``, ``declined`` or ``withdrawn``."""
    proof: dict[str, Any] = field(default_factory=dict)
    """What the in-house system keeps as its proof (``text_version``, ``at``, ``source``,
    ``ip``...), recorded as the step's evidence."""

    def dedup_key(self) -> str:
        return f"consent:{self.consent_id}"


CONSENT_SKEW_MS = 5 * 60 * 1000
"""How far an in-house system's clock may run ahead of the bridge's."""


def consent_proof_problem(step: str, proof: dict[str, Any], now_ms: float) -> str | None:
    """Why an in-house system's proof of a consent step is not enough, else None: one rule
    for the webhook connector (which answers 400 with it, before anything is recorded) and
    the consent feature. Every step needs ``at`` (ms since the epoch, not later than now give
    or take ``CONSENT_SKEW_MS``); a confirmation or a refusal also ``source`` (where the proof
    is kept), and a confirmation ``text_version`` (which text was shown). A withdrawal needs
    no more than its time: withdrawing must be as easy as giving."""
    at = proof.get("at")
    if isinstance(at, bool) or not isinstance(at, int | float):
        return "`at` is required: when it happened, in milliseconds since the epoch"
    if not 1e11 <= at <= now_ms + CONSENT_SKEW_MS:
        return "`at` must be milliseconds since the epoch, and not in the future"
    if step in ("confirmed", "declined"):
        source = proof.get("source")
        if not isinstance(source, str) or not source.strip():
            return "`source` is required: where the proof is kept"
    if step == "confirmed" and proof.get("text_version") in (None, ""):
        return "`text_version` is required: the version of the consent text that was shown"
    return None


_EVENT_KINDS: dict[str, type[RemoteEvent]] = {
    cls.kind: cls
    for cls in (
        RemoteMessage,
        RemoteEdit,
        RemoteDelete,
        RemoteReaction,
        RemoteReactionRemove,
        RemoteReadReceipt,
        RemoteDeliveryReceipt,
        RemoteTyping,
        RemoteDeliveryFailure,
        RemoteButtonPress,
        RemoteBlocked,
        RemoteConsent,
    )
}

# --------------------------------------------------------------------------- Matrix side


@dataclass(frozen=True)
class Button:
    """A reply button under a message the bridge sends (``MatrixMessage.buttons``). ``id``
    comes back in the ``RemoteButtonPress`` when the customer presses it; ``title`` is what
    they see. How many buttons, and how long titles and ids may be, is the channel's
    (``Capabilities.max_buttons``, ``max_button_title``, ``max_button_id``)."""

    id: str
    title: str


@dataclass(frozen=True)
class MessageRef:
    """A bridged message as the remote side knows it."""

    message_id: MessageID
    sender: RemoteUserID | None = None
    """The remote author, or None when the message came from Matrix staff."""
    timestamp: float | None = None


@dataclass(frozen=True)
class MatrixMedia:
    """Media attached to a staff message. ``download()`` fetches it from the homeserver into
    memory; ``open(limit)`` fetches it into a ``bridge.media.MediaFile`` in bounded memory
    (the caller closes it), raising ``FileTooLarge`` once more than ``limit`` bytes came."""

    url: str
    filename: str
    mimetype: str
    size: int | None
    download: Callable[[], Awaitable[bytes]] = field(repr=False, compare=False)
    open: Callable[[int | None], Awaitable[MediaFile]] | None = field(
        default=None, repr=False, compare=False
    )


@dataclass(frozen=True)
class MatrixMessage:
    """A staff message to send to the remote chat of ``portal``."""

    portal: PortalKey
    event_id: str
    sender: str
    sender_name: str
    msgtype: str
    text: str
    """Plain text with the configured sender prefix already applied."""
    html: str | None = None
    """Matrix HTML with the prefix applied, or None for plain messages."""
    prefix: str = ""
    """The sender prefix that ``text``/``html`` start with (for connectors that need it apart)."""
    reply_to: MessageRef | None = None
    media: MatrixMedia | None = None
    timestamp: float | None = None
    automatic: bool = False
    """The bridge sent it by itself (an automatic reply): a channel that can mark a message
    so does (mail: ``Auto-Submitted: auto-replied``, RFC 3834)."""
    buttons: tuple[Button, ...] = ()
    """Reply buttons shown under the message (only in messages the bridge starts). The core
    hands them only to a connector whose capabilities take them, within its limits (see
    ``bridge.connector.button_problem``); the connector sends them with the text."""
    headers: tuple[tuple[str, str], ...] = ()
    """Mail headers of a message the bridge starts (a broadcast's ``List-Unsubscribe`` and
    ``List-Unsubscribe-Post``); the email connector adds them, other channels ignore them."""


@dataclass(frozen=True)
class MatrixEdit:
    portal: PortalKey
    event_id: str
    sender: str
    target: MessageRef
    text: str
    html: str | None = None


@dataclass(frozen=True)
class MatrixRedaction:
    portal: PortalKey
    event_id: str
    sender: str
    target: MessageRef


@dataclass(frozen=True)
class MatrixReaction:
    portal: PortalKey
    event_id: str
    sender: str
    target: MessageRef
    emoji: str


@dataclass(frozen=True)
class MatrixReactionRemove:
    portal: PortalKey
    event_id: str
    sender: str
    target: MessageRef
    emoji: str


@dataclass(frozen=True)
class MatrixReadReceipt:
    portal: PortalKey
    sender: str
    target: MessageRef


@dataclass(frozen=True)
class MatrixTyping:
    portal: PortalKey
    sender: str
    typing: bool


@dataclass(frozen=True)
class SentMessage:
    """What the remote side answered for a message the connector sent."""

    message_id: MessageID
    timestamp: float | None = None
