"""The inbox's reactions to traffic: a customer's message routes a new conversation to a team
(and assigns it, unless a bot answers first: ``bot``), reopens a resolved or snoozed one, or
marks its customer waiting; a staff message delivered to the customer records the response
(and takes a conversation over from its bot).

Both run in the conversation's ordering domain and are retried whole after a failure, so they
decide from the stored state: a retried first message finds its row and repeats only what is
idempotent (invites, notices with the same transaction id)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from attrs import evolve

from ...db.inbox import InboxConversation
from ...events import RemoteEvent, RemoteMessage
from ...seams import Inbound, Origin, Outgoing
from ...seams_metrics import FeatureMetrics, NoMetrics
from ...types import AccountID
from .assignment import now_ms
from .bot import Bots
from .desk import Desk, txn
from .figures import record_response
from .routing import RoutingFacts, choose_team

REOPENING = ("resolved", "snoozed")
"""Statuses a customer message reopens."""


class AfterInbound(Protocol):
    """What runs after the inbox handled a customer message (the automatic replies)."""

    async def after_inbound(
        self, inbound: Inbound, team: str, *, first_contact: bool, reopened: bool
    ) -> None: ...


def routing_facts(account: AccountID, event: RemoteEvent) -> RoutingFacts:
    """What the start of a conversation tells the routing rules (``RemoteEvent.metadata``)."""
    routing = _mapping(event.metadata.get("routing"))
    portal = _mapping(event.metadata.get("portal"))
    fields = routing.get("fields")
    return RoutingFacts(
        account=account,
        to_address=_text(routing.get("to")),
        start_payload=_text(routing.get("start")) or _text(portal.get("start_payload")),
        first_text=event.text if isinstance(event, RemoteMessage) else None,
        language=_text(routing.get("language")),
        fields=fields if isinstance(fields, Mapping) else {},
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class InboxHooks:
    def __init__(self, desk: Desk, replies: AfterInbound, bots: Bots) -> None:
        self.desk = desk
        self.replies = replies
        self.bots = bots
        self.metrics: FeatureMetrics = NoMetrics()

    async def on_inbound(self, inbound: Inbound) -> None:
        event = inbound.event
        ref = inbound.conversation
        if not isinstance(event, RemoteMessage) or not ref.room_id:
            return
        row = None if inbound.first_contact else await InboxConversation.get(ref.account, ref.chat)
        if row is None:  # a new conversation, or one from before the inbox: routed now
            await self._first(inbound, event, ref.room_id)
            return
        if self.desk.team(row.team) is None:
            return
        if row.with_bot:
            await self.bots.customer_wrote(inbound, row)
            return
        await self._reply(inbound, row.team, reopened=row.status in REOPENING)
        await self._again(inbound, ref.room_id, row)

    async def _first(self, inbound: Inbound, event: RemoteMessage, room_id: str) -> None:
        """A conversation's first message (or the first since the inbox began): routed,
        stored (a retry finds its row, and keeps its team), answered first by a bot or given
        to the team."""
        ref = inbound.conversation
        team = choose_team(self.desk.config, routing_facts(ref.account, event))
        if team is None or self.desk.team(team) is None:
            return  # no team: the channel account's staff handle it as before
        bot = self.desk.config.bot_for(ref.account, team)
        created = await InboxConversation.create(
            ref.account, ref.chat, team, now_ms(), bot.name if bot else None
        )
        row = created or await InboxConversation.get(ref.account, ref.chat)
        if row is None or self.desk.team(row.team) is None:
            return
        if row.with_bot:
            await self.bots.start(inbound, row)
            return  # the bot answers first: it greets, not the team's replies
        await self._reply(inbound, row.team, reopened=False)
        await self._new(inbound, room_id, row)

    async def _reply(self, inbound: Inbound, team: str, *, reopened: bool) -> None:
        """Queue the automatic replies first: a staff member who answers as soon as the room
        tells of the message is queued after them, so the welcome never comes second."""
        await self.replies.after_inbound(
            inbound, team, first_contact=inbound.first_contact, reopened=reopened
        )

    async def _new(self, inbound: Inbound, room_id: str, row: InboxConversation) -> None:
        """A new conversation (or its first message again, retried), stored (``row``) with
        its team and its customer waiting: assigned per the team's mode, its people invited,
        announced (in its room and the team room)."""
        ref, team = inbound.conversation, row.team
        key = (ref.account, ref.chat)
        assigned = await self.desk.assign_waiting([team], quiet=key)
        mine = [mxid for account, chat, mxid in assigned if (account, chat) == key]
        now: InboxConversation | None
        if mine:  # what was stored, and given to ``mine[0]`` just now
            now = evolve(row, assignee=mine[0], last_assignee=mine[0])
        else:  # waiting, or given to someone before (a retry, the periodic job): as stored
            now = await InboxConversation.get(ref.account, ref.chat)
        await self.desk.renamed(ref.account, ref.chat, now)
        config = self.desk.team(team)
        if config is None or now is None:
            return
        assignee = now.assignee
        await self.desk.invite(room_id, ref.account, config, assignee)
        where = (
            f"assigned to {await self.desk.name(room_id, assignee)}"
            if assignee
            else "waiting in the queue"
        )
        await self.desk.services.notice(
            room_id,
            f"📥 New conversation for team {team}; {where}",
            txn=txn("new", ref.account, ref.chat, _message_id(inbound)),
        )
        await self.desk.rooms.new_conversation(team, inbound)

    async def _again(self, inbound: Inbound, room_id: str, row: InboxConversation) -> None:
        """A customer message in a known conversation: it ends a wait for the customer or
        reopens a resolved or snoozed conversation."""
        ref = inbound.conversation
        now = now_ms()
        if row.status == "pending":
            await InboxConversation.set_status(ref.account, ref.chat, "open", now)
            await InboxConversation.customer_wrote(ref.account, ref.chat, now)
            await self.desk.renamed(ref.account, ref.chat)
            await self.desk.services.notice(
                room_id,
                "📥 The customer answered; the conversation is open again",
                txn=txn("answered", ref.account, ref.chat, _message_id(inbound)),
            )
            return
        if row.status not in REOPENING:
            await InboxConversation.customer_wrote(ref.account, ref.chat, now)
            return
        assignee = await self.desk.assignment.reopen(ref.account, ref.chat)
        if assignee is None:
            await self.desk.assign_waiting([row.team], quiet=(ref.account, ref.chat))
            after = await InboxConversation.get(ref.account, ref.chat)
            assignee = after.assignee if after else None
        await self.desk.renamed(ref.account, ref.chat)
        if assignee is not None:
            await self.desk.services.invite(room_id, assignee, ref.account)
        where = (
            f"back to {await self.desk.name(room_id, assignee)}"
            if assignee
            else "waiting in the queue"
        )
        await self.desk.services.notice(
            room_id,
            f"🔄 Reopened by the customer's message; {where}",
            txn=txn("reopened", ref.account, ref.chat, _message_id(inbound)),
        )

    async def on_delivered(self, outgoing: Outgoing) -> None:
        """A staff reply reached the customer: the wait it ended is recorded (once, should
        this hook be retried), then nobody waits any more. One in a conversation a bot owns
        hands it to the humans first, unless the bot sent it."""
        if outgoing.origin == Origin.STAFF:
            ref = outgoing.conversation
            row = await InboxConversation.get(ref.account, ref.chat)
            if row is not None and row.with_bot:
                if await self.bots.staff_wrote(outgoing, row):
                    return
                row = await InboxConversation.get(ref.account, ref.chat)
            now = now_ms()
            if row is not None:
                figure = await record_response(self.desk.hours(row.team), row, now)
                if figure is not None and figure.kind == "first":
                    self.metrics.first_response(row.team, figure.seconds)
            await InboxConversation.staff_replied(ref.account, ref.chat, now)


def _message_id(inbound: Inbound) -> str:
    event = inbound.event
    return event.message_id if isinstance(event, RemoteMessage) else event.dedup_key()
