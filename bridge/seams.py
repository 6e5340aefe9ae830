"""The seams where feature modules plug into the core: what a feature may hook, and when.

The core owns conversations end to end: the queue, portal rooms, ghosts, ordering, retries
and the notices staff see. Business features (a team inbox, consent, broadcasts, privacy
tooling, welcome and away messages) do not grow the core's handlers. Each is a module of its
own that registers, at start-up, some of the following with ``Seams``:

Inbound hooks (``InboundHook``)
    Called after a remote event was bridged into its portal room, inside the conversation's
    ordering domain: while a hook runs, nothing else of that conversation (in either
    direction) is processed, so a hook may read and write the conversation's state without
    racing anyone. A hook that raises makes the core retry the whole remote event later (the
    bridging itself is idempotent), so hooks must be idempotent too: decide from stored state,
    and queue bridge-initiated messages with a ``dedup`` key. Uses: reopen a resolved
    conversation, watch for opt-out words, send a welcome message.

Outbound gates (``OutboundGate``)
    Called before anything goes to a connector: staff messages and bridge-initiated ones
    (templates, automatic replies, broadcasts). A gate returns a ``Verdict``: ``PASS``,
    ``Rewrite`` (new text; a canned reply's short code expanded), ``Refuse`` (a reason,
    shown to staff in the room as a failed delivery: no consent, outside the window) or
    ``Internal`` (it stays in Matrix as its sender meant: an internal note; nothing is
    shown). Gates run in registration order; the first refusal (or ``Internal``) wins,
    rewrites feed the next gate. A gate
    raising is a temporary failure: the delivery is retried within its deadline.

Delivered hooks (``DeliveredHook``)
    Called after something went to a connector, in the conversation's ordering domain: the
    inbox records a first response there.

Bridge-initiated messages (``Services.send_text``; templates through the ``template``
command and the core's services layer)
    Messages the bridge itself starts are durable queue items of their conversation, ordered
    after what was queued before them (a welcome message goes out after the customer message
    that triggered it), delivered exactly once across a crash, with the same deadline, retry
    and failure-notice rules as staff messages; the room shows exactly what the customer got.
    They may carry reply buttons where the channel has them; the customer's press comes back
    through the inbound hooks as a ``RemoteButtonPress`` (shown in the room as well).

Periodic jobs (``PeriodicJob``)
    A coroutine run every ``interval`` seconds (first run ``interval`` after start unless
    ``at_start``); an exception is logged and the job runs again at its next time. Uses: the
    core's housekeeping, snooze timers, retention.

Room messages (``RoomHandler``)
    Messages staff write in a room of the bot that is no portal room and are no command (a
    list's broadcast room, where a message becomes a draft): each handler is asked in turn
    and the first that takes it (returns True) ends the search; in a room no handler takes,
    the message is what it was before (a command in a management room, else nothing). Called
    in the room's own ordering domain, one message at a time; only for senders with a
    permission level of ``staff`` or more.

HTTP routes (``Route``)
    Pages and endpoints a feature serves on the bridge's public listener (the webhook listener
    when one is configured, else the appservice's) under ``/features/<feature>/``: a sign-up
    form, a confirmation link, a one-click unsubscribe (RFC 8058). The handler gets the
    aiohttp request; the listener's size and time limits apply.

Direct messages (``Services.send_direct``)
    A message to a remote chat straight through its connector, without a portal room or the
    conversation's queue: a broadcast to 100,000 subscribers makes no rooms. The caller owns
    durability (a broadcast records each recipient's outcome), the consent check and the
    pacing beyond the connector's own rate limiter; the connector's errors come back as
    ``TemporaryDeliveryError`` (with ``retry_after``) and ``PermanentDeliveryError``.

Data protection (``Services.timeline``, ``redact``, ``download``, ``delete_media``,
``retire_ghost``, ``erase_conversation``, ``ghosts_leave``)
    What a privacy feature needs to serve data subject rights: read every event of a room
    (with the media it refers to), redact events, fetch a file, delete media through the
    homeserver's admin API, take a ghost out of its rooms with its profile cleared and its row
    gone, and drop a conversation from the core's own tables (portal, message mappings, queue
    rows, dead letters, dedup keys, conversation data) with the core's caches.

Audit (``AuditSink``, ``Seams.audit``)
    Things a data protection officer must be able to account for (a permission-relevant
    command, a consent change) are told to the audit sinks as an ``AuditRecord``: who, what,
    about which people (their channel identities). The core tells every command that needs the
    admin level; features tell their own (the consent feature each step of its ledger). Without
    a sink (no privacy feature) nothing is kept. A sink must not fail the action: it is called
    after the action, and what it raises is logged.

Commands (``Command``)
    Features add bot commands; a command answers with text and calls the services layer, the
    same functions the provisioning API calls.

Metrics (``Seams.metrics``, ``bridge.seams_metrics``)
    Figures only a feature knows (open conversations, consents, broadcast progress) are
    reported where they change, or by a job; a scrape only reads what was reported.

Provisioning API (``ApiOperation``, ``Seams.add_api``; see ``bridge/seams_api.py``)
    Features serve their operations on the provisioning API, each calling the function its
    command calls, with the same permission checks.

Room history and files (``Services.history``, ``Services.post_file``)
    A feature reads the messages of a room (the newest events, up to a cap) and posts a file
    as the bot (a transcript); the core makes every homeserver call.

A feature module exposes a ``FeatureModule`` (its config section under ``features:``, checked
at start-up with the key named, and a ``setup`` that registers with ``Seams``) and is listed in
``bridge.app.FEATURES``. It never imports the core, only this contract, the services it is
given (``seams.services``), the events and the database; ``bridge/features/welcome.py`` is
the smallest example.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .connector import Capabilities
from .events import Button
from .seams_api import ApiOperation
from .seams_metrics import FeatureMetrics, NoMetrics
from .seams_values import (
    AuditRecord,
    ConversationRef,
    DirectMessage,
    History,
    HistoryEntry,
    Inbound,
    MediaRef,
    Origin,
    Outgoing,
    RoomMessage,
    Timeline,
    TimelineEvent,
)

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger("bridge.seams")


class Verdict:
    """What a gate decided; ``PASS`` lets it through unchanged."""


@dataclass(frozen=True)
class Rewrite(Verdict):
    text: str
    html: str | None = None


@dataclass(frozen=True)
class Refuse(Verdict):
    reason: str
    """Shown to staff as the reason the message was not delivered."""


@dataclass(frozen=True)
class Internal(Verdict):
    """The message stays in Matrix, as its sender meant (an internal note): nothing goes to
    the customer and no failure is shown."""

    why: str = "internal note"


PASS = Verdict()


@runtime_checkable
class InboundHook(Protocol):
    async def on_inbound(self, inbound: Inbound) -> None: ...


@runtime_checkable
class AuditSink(Protocol):
    async def record(self, record: AuditRecord) -> None: ...


@runtime_checkable
class DeliveredHook(Protocol):
    """Called after something went to a connector (a staff message or one the bridge
    started), inside the conversation's ordering domain; idempotent like inbound hooks."""

    async def on_delivered(self, outgoing: Outgoing) -> None: ...


@runtime_checkable
class OutboundGate(Protocol):
    async def check(self, outgoing: Outgoing) -> Verdict: ...


@runtime_checkable
class RoomHandler(Protocol):
    async def on_room_message(self, message: RoomMessage) -> bool:
        """True: the message is this feature's (a draft in its broadcast room)."""
        ...


@dataclass(frozen=True)
class Route:
    """An HTTP endpoint of a feature, served at ``/features/<feature><path>``."""

    feature: str
    method: str
    path: str
    """Starting with ``/``; ``{name}`` parts as in aiohttp (``/confirm/{token}``)."""
    handler: Callable[[Any], Awaitable[Any]]
    """Takes the ``aiohttp.web.Request``, returns a ``web.StreamResponse``."""

    @property
    def full_path(self) -> str:
        return f"/features/{self.feature}{self.path}"


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    interval: float
    run: Callable[[], Awaitable[None]]
    at_start: bool = False


class CommandContext(Protocol):
    """What a command knows of where it was sent."""

    room_id: str
    event_id: str
    sender: str
    services: Services

    @property
    def conversation(self) -> ConversationRef | None:
        """The conversation of the room, when the command was sent in a portal room."""
        ...


@dataclass(frozen=True)
class Command:
    """A bot command: ``run(ctx, args)`` answers with text (a ``CommandContext``)."""

    name: str
    args: str
    level: str
    """The permission needed: ``staff`` or ``admin``."""
    help: str
    run: Callable[[Any, list[str]], Awaitable[str]]
    audited: bool = False
    """It records its own audit entries (the privacy commands): the core does not tell the
    audit seam of it as it does of every other admin command."""


class Services(Protocol):
    """What the core offers features (and the commands and the provisioning API)."""

    async def send_text(
        self,
        conversation: ConversationRef,
        text: str,
        *,
        reason: str,
        dedup: str | None = None,
        html: str | None = None,
        buttons: Sequence[Button] = (),
    ) -> bool:
        """Queue a bridge-initiated text to the customer of ``conversation``, after everything
        queued for it before. With ``dedup``, a second call with the same key (a retried
        hook) queues nothing and returns False. ``buttons`` go under the text as reply
        buttons; a press comes back to the inbound hooks as a ``RemoteButtonPress`` (its
        ``button_id`` is the ``Button.id``). A channel that cannot show them (see
        ``capabilities``) gets nothing: the delivery is refused with a notice in the room."""
        ...

    async def send_direct(self, account: str, chat: str, message: DirectMessage) -> str:
        """Send ``message`` to ``chat`` of ``account`` now, through its connector, without a
        room or a queue item (see "Direct messages" above). Returns the remote message id;
        raises ``TemporaryDeliveryError`` / ``PermanentDeliveryError`` (an unknown account,
        buttons or a template the channel cannot carry: permanent)."""
        ...

    def channel_title(self, account: str) -> str:
        """The human name of the channel of ``account`` (``Telegram``...)."""
        ...

    def chat_for_address(self, account: str, address: str) -> str:
        """The chat of ``account`` that reaches ``address`` (a mail address, a phone number),
        for ``send_direct`` to someone who never wrote (a sign-up form's confirmation mail);
        ValueError with a readable message when it is no address of that channel."""
        ...

    def public_address(self, account: str) -> str | None:
        """How customers reach ``account`` (``NetworkConnector.public_address``): a Telegram
        bot's username, a WhatsApp number, a mail address; None if unknown."""
        ...

    def capabilities(self, account: str) -> Capabilities | None:
        """What the channel of ``account`` can carry (``max_buttons``...); None for an account
        that is not configured."""
        ...

    async def notice(self, room_id: str, text: str, *, txn: str | None = None) -> str | None:
        """Post a notice of the bridge bot in a room (a portal or a team room); with ``txn``
        (deterministic) a repeat posts nothing new. Returns its event id (None: refused)."""
        ...

    async def invite(self, room_id: str, user: str, account: str) -> bool:
        """Invite ``user`` into a conversation's room, unless they may not see the
        conversations of ``account`` (then nothing happens and False is returned)."""
        ...

    async def displayname(self, room_id: str, user: str) -> str:
        """``user``'s name in ``room_id``, else their localpart."""
        ...

    def level(self, actor: str, account: str | None = None) -> str:
        """``actor``'s permission level (``none``, ``staff``, ``admin``) on ``account``, or
        their highest on any account."""
        ...

    async def bot_room(
        self, key: str, name: str, topic: str, invite: list[str], *, space: bool = False
    ) -> str:
        """The bot's room (or space) for ``key`` (a team's), created once; returns its id."""
        ...

    async def join_room(self, alias_or_id: str) -> str:
        """Let the bot join an existing room (a team room named by alias); returns its id."""
        ...

    async def set_state(
        self, room_id: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> None:
        """Send a state event as the bot (``m.space.child`` of a team's space...)."""
        ...

    async def edit_notice(self, room_id: str, event_id: str, text: str, *, txn: str) -> None:
        """Replace the text of a notice the bot posted (a queue view kept current)."""
        ...

    async def rename(self, conversation: ConversationRef) -> None:
        """Set the conversation's room name again, as the room namer gives it now."""
        ...

    async def history(self, room_id: str, *, limit: int = 5000) -> History:
        """The messages (``m.room.message``) of a room the bot is in, oldest first: its
        timeline read backwards from the newest event in bounded pages, at most ``limit``
        events of any kind looked at (then ``complete`` is False and the oldest are left
        out). Redacted and unreadable events are skipped."""
        ...

    async def post_file(
        self, room_id: str, data: bytes, filename: str, mimetype: str, *, txn: str
    ) -> str | None:
        """Upload ``data`` and post it as an ``m.file`` of the bot in the room; ``txn``
        (deterministic, e.g. from a command's event id) makes a repeat post nothing new.
        Returns the event id (None: the homeserver refused it)."""
        ...

    async def timeline(self, room_id: str, *, limit: int = 5000, state: bool = False) -> Timeline:
        """Every non-state event of a room the bot is in, redacted ones included (marked),
        oldest first; read like ``history``, at most ``limit`` events looked at. With
        ``state``, the state events of the timeline too (a room's earlier names, members)."""
        ...

    async def redact(self, room_id: str, event_id: str, *, reason: str) -> bool:
        """Redact an event as the bot (any sender's, with the bot's power in its rooms).
        Idempotent; False when the homeserver refused (no such event, no power)."""
        ...

    async def download(self, url: str, *, limit: int, file: dict[str, Any] | None = None) -> bytes:
        """A file of the media repository (``mxc://``), decrypted when ``file`` (an
        ``EncryptedFile`` of an encrypted room) is given; ``ValueError`` past ``limit``
        bytes."""
        ...

    async def delete_media(self, url: str) -> bool:
        """Delete a file of this homeserver's media repository through Synapse's admin API
        with ``homeserver.admin_token``. True: gone (or was already); False: no token, a
        remote server's file, or refused."""
        ...

    async def retire_ghost(self, account: str, remote_user: str, rooms: Sequence[str]) -> None:
        """Clear the display name and avatar of the ghost of ``remote_user``, make it leave
        ``rooms``, and forget its row (a later message of theirs makes a new one). Idempotent;
        nothing happens for a remote user without a ghost."""
        ...

    async def erase_conversation(self, account: str, chat: str) -> int:
        """Remove a conversation from the core's tables: its portal row, message and reaction
        mappings, queue items and dead letters, dedup keys and conversation data (rows and caches;
        the room and the ghosts stay: see ``retire_ghost``), and the portal room's alias (it
        holds the chat id, and would lead a later message back to the room). Returns the rows
        removed."""
        ...

    async def ghosts_leave(self, room_id: str) -> int:
        """Make every ghost of this bridge that is in ``room_id`` leave it (their profiles and
        rows stay: a conversation closed, not erased). Idempotent; returns how many left."""
        ...


class FeatureModule(Protocol):
    name: str
    """Its key under ``features:`` in the config."""

    def parse_config(self, section: Any, config: Config) -> Any:
        """Check the feature's config section (None when absent) and return its options, or
        None when the feature is off. Raise ``ConfigError`` naming the exact key."""
        ...

    def setup(self, seams: Seams, options: Any) -> None:
        """Register hooks, gates, jobs and commands; no network calls."""
        ...


@dataclass
class Seams:
    """The registry a feature's ``setup`` fills. The core calls what is registered."""

    config: Config
    services: Services
    inbound_hooks: list[InboundHook] = field(default_factory=list)
    outbound_gates: list[OutboundGate] = field(default_factory=list)
    delivered_hooks: list[DeliveredHook] = field(default_factory=list)
    room_namer: Callable[[ConversationRef, str], Awaitable[str]] | None = None
    """Gives a conversation's room name from its remote name (one feature may set it: the
    inbox shows the status there, so every client's room list shows it)."""
    jobs: list[PeriodicJob] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    room_handlers: list[RoomHandler] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    audit_sinks: list[AuditSink] = field(default_factory=list)
    metrics: FeatureMetrics = field(default_factory=NoMetrics)
    """Where features report their figures (``bridge.seams_metrics``)."""
    api: list[ApiOperation] = field(default_factory=list)

    def add_api(self, operation: ApiOperation) -> None:
        """Serve ``operation`` on the provisioning API (when it is on)."""
        self.api.append(operation)

    def add_audit_sink(self, sink: AuditSink) -> None:
        self.audit_sinks.append(sink)

    async def audit(self, record: AuditRecord) -> None:
        """Tell every audit sink (after the action; a failing sink is logged, never raised)."""
        for sink in self.audit_sinks:
            try:
                await sink.record(record)
            except Exception:
                log.exception("An audit sink failed on %s", record.action)

    def add_room_handler(self, handler: RoomHandler) -> None:
        self.room_handlers.append(handler)

    def add_route(self, route: Route) -> None:
        if not route.path.startswith("/"):
            raise ValueError(f"a route's path starts with /: {route.path!r}")
        self.routes.append(route)

    async def room_message(self, message: RoomMessage) -> bool:
        """Whether a handler took ``message``."""
        for handler in self.room_handlers:
            if await handler.on_room_message(message):
                return True
        return False

    def add_inbound_hook(self, hook: InboundHook) -> None:
        self.inbound_hooks.append(hook)

    def add_outbound_gate(self, gate: OutboundGate) -> None:
        self.outbound_gates.append(gate)

    def add_delivered_hook(self, hook: DeliveredHook) -> None:
        self.delivered_hooks.append(hook)

    def set_room_namer(self, namer: Callable[[ConversationRef, str], Awaitable[str]]) -> None:
        if self.room_namer is not None:
            raise ValueError("only one feature may name the conversations' rooms")
        self.room_namer = namer

    def add_job(self, job: PeriodicJob) -> None:
        self.jobs.append(job)

    def add_command(self, command: Command) -> None:
        self.commands.append(command)

    async def gate(self, outgoing: Outgoing) -> Outgoing | Refuse | Internal:
        """``outgoing`` after every gate: rewritten, or refused (or kept internal) by the first
        that says so."""
        for gate in self.outbound_gates:
            verdict = await gate.check(outgoing)
            if isinstance(verdict, Refuse | Internal):
                return verdict
            if isinstance(verdict, Rewrite):
                outgoing = dataclasses.replace(outgoing, text=verdict.text, html=verdict.html)
        return outgoing

    async def inbound(self, inbound: Inbound) -> None:
        for hook in self.inbound_hooks:
            await hook.on_inbound(inbound)

    async def delivered(self, outgoing: Outgoing) -> None:
        for hook in self.delivered_hooks:
            await hook.on_delivered(outgoing)


__all__ = [
    "PASS",
    "AuditRecord",
    "AuditSink",
    "Command",
    "CommandContext",
    "ConversationRef",
    "DeliveredHook",
    "DirectMessage",
    "FeatureModule",
    "History",
    "HistoryEntry",
    "Inbound",
    "InboundHook",
    "Internal",
    "MediaRef",
    "Origin",
    "OutboundGate",
    "Outgoing",
    "PeriodicJob",
    "Refuse",
    "Rewrite",
    "RoomHandler",
    "RoomMessage",
    "Route",
    "Seams",
    "Services",
    "Timeline",
    "TimelineEvent",
    "Verdict",
]
