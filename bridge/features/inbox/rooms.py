"""A team's room and space, and what the inbox shows there and in the room list.

Each team has a room (the one its ``room`` names, else one the bridge creates with the team's
members and leads invited) and a space that holds the team room and the rooms of the team's
conversations; both are made on first use and stored. A new conversation is announced in the
team room, with a link to its room. One notice there, posted once and then edited when it
changes, shows the team's queue in numbered lines; which conversation each line shows is
stored with it, so that ``claim <n>`` sent in the team room takes the one read there. The
room namer puts a conversation's status in front of its room's name, so that every client's
room list shows it.

Like the notices of the conversations' rooms, the announcements carry deterministic
transaction ids: a retried hook posts nothing twice. What is only shown here (an
announcement, a space child) must not hold up the conversation: a failure is logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ...db import Portal
from ...db.inbox import InboxConversation, InboxTeam, TeamRooms
from ...events import RemoteMessage
from ...logsafe import pii
from ...seams import ConversationRef, Inbound, Services
from .assignment import now_ms
from .config import InboxConfig
from .desk import txn

log = logging.getLogger("bridge.inbox.rooms")

_STORED: ContextVar[InboxConversation | None] = ContextVar("inbox_stored_row", default=None)
"""The conversation a rename of this task is for, as just stored (``TeamRoomDesk.stored``)."""

ASSIGNED, WAITING, BOT = "🟢", "🟡", "🤖"
MARKS = {"pending": "⏸", "snoozed": "💤", "resolved": "✅"}
SNIPPET_CHARS = 80
QUEUE_LINES = 20


def room_name(row: InboxConversation | None, base: str) -> str:
    """``base`` with the conversation's status in front (no inbox row: ``base``)."""
    if row is None:
        return base
    if row.with_bot:
        mark = BOT
    elif row.status == "open":
        mark = ASSIGNED if row.assignee else WAITING
    else:
        mark = MARKS.get(row.status, "")
    return f"{mark} {base}" if mark else base


def link(room_id: str) -> str:
    return f"https://matrix.to/#/{room_id}"


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters (``…`` ending it when cut)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def waited(ms: int) -> str:
    """A waiting time to the minute: ``3 min``, ``2 h 05 min``, ``1 d 4 h``."""
    minutes = max(ms, 0) // 60_000
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"


def queue_text(team: str, rows: list[tuple[InboxConversation, Portal | None]], now: int) -> str:
    """The queue view: the team's open unassigned conversations, longest waiting first, in
    numbered lines (the first ``QUEUE_LINES``)."""
    if not rows:
        return f"📋 Queue of team {team}: nobody waits."
    lines = [f"📋 Queue of team {team}: {len(rows)} waiting, longest first"]
    for number, (row, portal) in enumerate(rows[:QUEUE_LINES], 1):
        name = snippet((portal.name if portal else None) or row.chat)
        waiting = row.waiting_since
        since = "answered" if waiting is None else f"waiting {waited(now - waiting)}"
        where = f": {link(portal.room_id)}" if portal and portal.room_id else ""
        lines.append(f"{number}. {name} ({row.account}), {since}{where}")
    if len(rows) > QUEUE_LINES:
        lines.append(f"… and {len(rows) - QUEUE_LINES} more")
    return "\n".join(lines)


class TeamRoomDesk:
    def __init__(self, services: Services, config: InboxConfig, server_name: str) -> None:
        self.services = services
        self.config = config
        self.server_name = server_name
        """The homeserver's name: the ``via`` of a space's children."""
        self._locks: dict[str, asyncio.Lock] = {}
        self._places: dict[str, tuple[str, str]] = {}

    async def rooms(self, team: str) -> TeamRooms | None:
        """The team's room and space, made (once) if they are not stored yet; None for a team
        that is not configured."""
        config = self.config.teams.get(team)
        if config is None:
            return None
        async with self._locks.setdefault(team, asyncio.Lock()):
            stored = await InboxTeam.rooms(team)
            if stored.room_id and stored.space_id:
                return stored
            staff = list(config.staff)
            if config.room:
                room_id = await self.services.join_room(config.room)
            else:
                topic = f"Team {team}: new conversations and the queue"
                room_id = await self.services.bot_room(
                    f"team-{team}", f"Team {team}", topic, staff
                )
            space_id = await self.services.bot_room(
                f"space-{team}", f"Team {team}", f"The conversations of team {team}", staff,
                space=True,
            )  # fmt: skip
            await self.add_to_space(space_id, room_id)
            await InboxTeam.set_rooms(team, room_id, space_id)
            return await InboxTeam.rooms(team)

    async def places(self, team: str) -> tuple[str, str] | None:
        """The team's room and space ids, made on first use. Once stored they never change,
        so they are kept here: each new conversation needs them."""
        known = self._places.get(team)
        if known is None:
            rooms = await self.rooms(team)
            if rooms is None or not rooms.room_id or not rooms.space_id:
                return None
            known = self._places[team] = (rooms.room_id, rooms.space_id)
        return known

    async def add_to_space(self, space_id: str, room_id: str) -> None:
        await self.services.set_state(
            space_id, "m.space.child", room_id, {"via": [self.server_name]}
        )

    async def new_conversation(self, team: str, inbound: Inbound) -> None:
        """Announce the conversation in the team room and put its room in the team's space."""
        ref, event = inbound.conversation, inbound.event
        customer = event.chat.name or event.sender.displayname or ref.chat
        text = event.text if isinstance(event, RemoteMessage) else ""
        await self.announce(team, ref, customer, text)

    async def announce(self, team: str, ref: ConversationRef, customer: str, text: str) -> None:
        """``new_conversation`` from what is known of it (a bot's hand-over: its note)."""
        if not ref.room_id:
            return
        announcement = (
            f"📥 New conversation from {customer} ({ref.account}): "
            f"“{snippet(text)}” {link(ref.room_id)}"
        )
        try:
            places = await self.places(team)
            if places is None:
                return
            room_id, space_id = places
            await self.add_to_space(space_id, ref.room_id)
            await self.services.notice(
                room_id, announcement, txn=txn("team-new", team, ref.account, ref.chat)
            )
        except Exception:
            log.exception(
                "Could not announce %s/%s in team %s's room", ref.account, pii(ref.chat), team
            )

    async def transferred(self, team: str, room_id: str) -> None:
        """A conversation moved to ``team``: its room joins that team's space too."""
        places = await self.places(team)
        if places is not None:
            await self.add_to_space(places[1], room_id)

    async def refresh_queue(self, team: str) -> None:
        """Post the team's queue view once, then edit it whenever what it shows changed."""
        rooms = await self.rooms(team)
        if rooms is None or not rooms.room_id:
            return
        rows = await InboxConversation.queue(team)
        listed = [(row, await Portal.get(row.account, row.chat)) for row in rows[:QUEUE_LINES]]
        now = now_ms()
        text = queue_text(team, listed + [(row, None) for row in rows[QUEUE_LINES:]], now)
        shown = [(row.account, row.chat) for row in rows[:QUEUE_LINES]]
        if rooms.queue_event_id is None:
            event_id = await self.services.notice(
                rooms.room_id, text, txn=txn("queue-view", team, rooms.room_id)
            )
            if event_id is not None:
                await InboxTeam.set_queue(team, event_id, text, shown)
        elif text != rooms.queue_text:
            await self.services.edit_notice(
                rooms.room_id, rooms.queue_event_id, text,
                txn=txn("queue-edit", team, rooms.queue_event_id, text, now),
            )  # fmt: skip
            await InboxTeam.set_queue(team, rooms.queue_event_id, text, shown)
        elif shown != rooms.queue_shown:  # the same lines, other conversations behind them
            await InboxTeam.set_queue(team, rooms.queue_event_id, text, shown)

    async def refresh_queues(self) -> None:
        """Every team's queue view (the periodic job); one team's failure spares the others."""
        for team in self.config.teams:
            try:
                await self.refresh_queue(team)
            except Exception:
                log.exception("Could not update the queue view of team %s", team)

    @contextmanager
    def stored(self, row: InboxConversation | None) -> Iterator[None]:
        """While inside, the namer takes ``row`` as its conversation's state (it was just
        stored) rather than reading it; in this task only (a context variable), so that a
        rename another task makes meanwhile reads what is stored then."""
        token = _STORED.set(row)
        try:
            yield
        finally:
            _STORED.reset(token)

    async def namer(self, conversation: ConversationRef, base: str) -> str:
        """The room name of a conversation: its status, then ``base``."""
        row = _STORED.get()
        if row is None or (row.account, row.chat) != (conversation.account, conversation.chat):
            row = await InboxConversation.get(conversation.account, conversation.chat)
        return room_name(row, base)
