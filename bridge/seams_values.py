"""The values that cross the seams (``bridge.seams``): a conversation, what comes in and what
goes out, room messages and history, audit records. ``bridge.seams`` re-exports every name;
features import them from there."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .events import Button, RemoteEvent
from .types import AccountID, RemoteChatID


@dataclass(frozen=True)
class ConversationRef:
    """One conversation: a remote chat of a channel account, and its portal room."""

    account: AccountID
    chat: RemoteChatID
    room_id: str | None


@dataclass(frozen=True)
class Inbound:
    """A remote event that was just bridged into ``conversation``'s room."""

    conversation: ConversationRef
    event: RemoteEvent
    first_contact: bool
    """The event is the first customer message of the conversation (stable across retries)."""


class Origin(enum.StrEnum):
    STAFF = "staff"
    """A staff member's message from the portal room."""
    BRIDGE = "bridge"
    """A message the bridge started (a template, an automatic reply, a broadcast)."""


@dataclass(frozen=True)
class Outgoing:
    """Something about to go to a connector."""

    conversation: ConversationRef
    origin: Origin
    sender: str
    """The staff member's user ID, or the name of what started it (``template``, a feature)."""
    text: str
    html: str | None = None
    template: str | None = None
    """The name of a pre-approved template (its text is ``text``, already rendered)."""
    reason: str = ""
    """Why the bridge started it (``welcome``, ``broadcast:<id>``...); empty for staff."""
    buttons: tuple[Button, ...] = ()
    """The reply buttons it carries (bridge-initiated messages only)."""


@dataclass(frozen=True)
class MediaRef:
    """A file in the homeserver's media repository (a staff member's upload)."""

    url: str
    """Its ``mxc://`` URL."""
    filename: str
    mimetype: str
    size: int | None = None
    msgtype: str = "m.file"
    """``m.image``, ``m.video``, ``m.audio`` or ``m.file``."""
    file: dict[str, Any] | None = None
    """For a file sent in an encrypted room: its ``EncryptedFile`` (``url`` is that file's
    address); the core decrypts it when a connector fetches it."""


@dataclass(frozen=True)
class RoomMessage:
    """A message staff wrote in a room of the bot that is no portal room (``RoomHandler``)."""

    room_id: str
    event_id: str
    sender: str
    msgtype: str
    body: str
    html: str | None = None
    media: MediaRef | None = None
    reply_to: str | None = None
    """The event it answers, if any."""


@dataclass(frozen=True)
class DirectMessage:
    """What ``Services.send_direct`` sends: a text (with HTML where the channel carries it),
    or a file with ``text`` as its caption, or a template."""

    text: str
    html: str | None = None
    media: MediaRef | None = None
    buttons: tuple[Button, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    """Mail headers (``List-Unsubscribe``...); channels other than email ignore them."""
    template: str | None = None
    """A pre-approved template's name (WhatsApp outside the 24-hour window): sent instead of
    the text, with ``template_params`` (``text`` is then the rendered body, for the record)."""
    template_params: tuple[str, ...] = ()
    key: str = ""
    """Deterministic and unique per message and recipient (``broadcast:<id>:<contact>``): the
    connector's idempotency key and event id where it has them, so a repeat after a crash is
    recognised by the channels that can."""


@dataclass(frozen=True)
class HistoryEntry:
    """One message of a room's history (``Services.history``), as the homeserver keeps it:
    nothing in it is checked or escaped (names and texts are whatever their senders wrote)."""

    event_id: str
    sender: str
    sender_name: str
    """The sender's display name in the room, else their localpart."""
    timestamp: int
    """Milliseconds since the epoch (the homeserver's ``origin_server_ts``)."""
    msgtype: str
    """``m.text``, ``m.notice``, ``m.emote``, ``m.file``, ``m.image``..."""
    body: str
    filename: str | None = None
    """For a file (image, video...): its name; the file itself is not fetched."""
    replaces: str | None = None
    """The event this one edits (``m.replace``); its ``body`` is the new text."""


@dataclass(frozen=True)
class TimelineEvent:
    """One event of a room's timeline (``Services.timeline``): any non-state event (messages,
    reactions, redactions, stickers...), unchecked and unescaped like ``HistoryEntry``."""

    event_id: str
    sender: str
    type: str
    timestamp: int
    """Milliseconds since the epoch (``origin_server_ts``)."""
    content: dict[str, Any]
    """As the homeserver returns it: empty for a redacted event."""
    media: tuple[str, ...] = ()
    """The ``mxc://`` URLs it refers to (the file, an encrypted file, a thumbnail)."""
    redacted: bool = False
    state_key: str | None = None
    """Set for a state event (``Services.timeline`` with ``state=True`` only)."""


@dataclass(frozen=True)
class Timeline:
    events: list[TimelineEvent]
    """Oldest first."""
    complete: bool
    """False when the cap was reached: older events are left out."""


@dataclass(frozen=True)
class History:
    entries: list[HistoryEntry]
    """Oldest first."""
    complete: bool
    """False when the cap was reached: older messages are left out."""


@dataclass(frozen=True)
class AuditRecord:
    """One thing to account for (``Seams.audit``)."""

    actor: str
    """The staff member's user ID, or what acted for the person (``customer``, ``in-house``)."""
    action: str
    """``command deadletters``, ``consent confirmed``..."""
    people: tuple[tuple[str, str], ...] = ()
    """The channel identities (account, remote user or chat id) it concerned: a sink keeps
    them only as keyed hashes."""
    detail: dict[str, Any] = field(default_factory=dict)
    """Counts and names without personal data (a list's name, a command's sub-command)."""
