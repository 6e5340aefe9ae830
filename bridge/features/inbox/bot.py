"""A bot answering first: while a bot owns a conversation it is ``pending`` (never assigned,
not in the queue, its room named with 🤖), nobody of the team is invited and the team room is
not told yet; the room joins the team's space, so the team can look in.

A Matrix bot user is invited into the room and answers there like staff (the core delivers its
messages, as it does any staff member's with a permission on the account). A webhook bot is
asked about each customer message (``bot_client``) and its reply goes to the customer as a
bridge-initiated message, after the customer's, shown in the room.

The humans take over (``hand_over``, one function for every path) when the bot says so (a
webhook bot's ``handover``, the ``handover`` command), when a webhook bot fails (no answer in
time, not 2xx, a bad answer), or when a staff message other than the owning bot's reaches the
customer. The team is then the bot's choice if it names a configured team, else the
conversation's; from then on it is a new conversation: its customer waits since the hand-over,
it is assigned per the team's mode, its people are invited, its room and the team room are
told, and its room is renamed.

While a bot answers, the team's automatic replies stay quiet (the bot greets), and the bot's
own messages are no responses in the service figures. Like the other hooks, everything is
decided from the stored state: the hand-over is a conditional update that exactly one caller
wins, the bot's reply carries a dedup key derived from the customer's message, and a webhook
bot asked again for a retried hook gets the same ``Idempotency-Key``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ...db import Portal
from ...db.inbox import InboxConversation
from ...events import RemoteMessage
from ...logsafe import pii
from ...seams import ConversationRef, Inbound, Outgoing
from .assignment import now_ms
from .bot_client import BotFailed, ask_bot, idempotency_key
from .config import BotConfig
from .desk import Desk, txn
from .replies import is_automatic, language_of

log = logging.getLogger("bridge.inbox.bot")


@dataclass
class HandOver:
    """What a hand-over knows: the conversation, the customer message it came with (``key``,
    its id; ``text``), and the team and note the bot chose."""

    ref: ConversationRef
    row: InboxConversation
    key: str
    text: str = ""
    team: str | None = None
    note: str | None = None
    to: str | None = None
    """Who takes it (an ``assign`` command); None: assigned per the team's mode."""


class Bots:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def bot(self, row: InboxConversation) -> BotConfig | None:
        """The configured bot that owns ``row`` now (None: the humans have it)."""
        name = row.with_bot
        return None if name is None else self.desk.config.bots.get(name)

    async def start(self, inbound: Inbound, row: InboxConversation) -> None:
        """The first message of a conversation a bot owns (again, if retried): the bot user
        invited, the room told and put in the team's space, and the bot asked."""
        ref = inbound.conversation
        bot = self.bot(row)
        if bot is not None and ref.room_id:
            # Renamed first: the bot user is invited to the room under its new name.
            await self.desk.renamed(ref.account, ref.chat)
            if bot.matrix_user:
                await self.desk.services.invite(ref.room_id, bot.matrix_user, ref.account)
            await self.desk.services.notice(
                ref.room_id,
                f"🤖 {bot.name} answers first; a staff message or `handover` gives this "
                f"conversation to team {row.team}",
                txn=txn("bot-first", ref.account, ref.chat, row.created_at),
            )
            await self._into_space(row.team, ref.room_id)
        await self.customer_wrote(inbound, row)

    async def _into_space(self, team: str, room_id: str) -> None:
        try:
            places = await self.desk.rooms.places(team)
            if places is not None:
                await self.desk.rooms.add_to_space(places[1], room_id)
        except Exception:
            log.exception("Could not put %s in team %s's space", room_id, team)

    async def customer_wrote(self, inbound: Inbound, row: InboxConversation) -> None:
        """A customer message of a conversation a bot owns: a webhook bot is asked (its reply
        queued, its hand-over done); a Matrix bot reads the room itself."""
        ref, event = inbound.conversation, inbound.event
        if not isinstance(event, RemoteMessage):
            return
        await InboxConversation.touch(ref.account, ref.chat, now_ms())
        bot = self.bot(row)
        hand_over = HandOver(ref, row, event.message_id, event.text)
        if bot is None:
            gone = f"🤖 The bot {row.with_bot} is not configured any more"
            await self.hand_over(hand_over, gone)
            return
        if bot.url is None or is_automatic(event):
            return
        payload: dict[str, Any] = {
            "account": ref.account,
            "chat": ref.chat,
            "message_id": event.message_id,
            "sender": event.sender.id,
            "text": event.text,
        }
        language = language_of(event)
        if language:
            payload["language"] = language
        key = idempotency_key(ref.account, ref.chat, event.dedup_key())
        try:
            answer = await ask_bot(bot, payload, key)
        except BotFailed as e:
            log.warning(
                "Bot %s failed for %s/%s: %s", bot.name, ref.account, pii(ref.chat), pii(e)
            )
            await self.hand_over(hand_over, f"🤖 {bot.name} failed ({e})")
            return
        if answer.reply:
            await self.desk.services.send_text(
                ref, answer.reply, reason=f"bot {bot.name}",
                dedup=f"inbox:bot:{ref.chat}:{event.dedup_key()}",
            )  # fmt: skip
        if answer.handover:
            hand_over.team, hand_over.note = answer.team, answer.note
            await self.hand_over(hand_over, f"🤖 {bot.name} handed over")

    async def staff_wrote(self, outgoing: Outgoing, row: InboxConversation) -> bool:
        """A staff message reached the customer of a conversation a bot owns: unless the bot
        sent it (then True: it is no response of the staff), the humans take over."""
        bot = self.bot(row)
        if bot is not None and bot.matrix_user == outgoing.sender:
            return True
        ref = outgoing.conversation
        room_id = ref.room_id or await _room_of(ref)
        if room_id is None:
            return False
        who = await self.desk.name(room_id, outgoing.sender)
        order = HandOver(ConversationRef(ref.account, ref.chat, room_id), row, "staff")
        await self.hand_over(order, f"🤖 {who} answered instead of {row.with_bot}")
        return False

    async def hand_over(self, order: HandOver, why: str, *, post: bool = True) -> str | None:
        """The humans take the conversation over from its bot: the notice telling it (posted
        unless not ``post``), None when no bot had it (any more)."""
        ref, row = order.ref, order.row
        bot = row.with_bot
        if bot is None or ref.room_id is None:
            return None
        team = row.team
        lines = [why]
        if order.team and order.team != team:
            if self.desk.team(order.team) is not None:
                team = order.team
            else:
                lines.append(f"(there is no team {order.team}; it stays with team {team})")
        if not await InboxConversation.hand_over(
            ref.account, ref.chat, bot, team, now_ms(), order.to
        ):
            return None
        await self.desk.assign_waiting([team], quiet=(ref.account, ref.chat))
        await self.desk.renamed(ref.account, ref.chat)
        after = await InboxConversation.get(ref.account, ref.chat)
        assignee = after.assignee if after else None
        config = self.desk.team(team)
        if config is not None:
            await self.desk.invite(ref.room_id, ref.account, config, assignee)
        where = (
            f"assigned to {await self.desk.name(ref.room_id, assignee)}"
            if assignee
            else "waiting in the queue"
        )
        lines.append(f"📥 New conversation for team {team}; {where}")
        if order.note:
            lines.append(f"📝 {order.note}")
        text = "\n".join(lines)
        if post:
            # The key of the first message's "new conversation" notice when that message
            # brought the hand-over: a retried first message posts nothing twice.
            key = txn("new", ref.account, ref.chat, order.key)
            await self.desk.services.notice(ref.room_id, text, txn=key)
        portal = await Portal.get(ref.account, ref.chat)
        customer = (portal.name if portal else None) or ref.chat
        await self.desk.rooms.announce(team, ref, customer, order.note or order.text)
        settings = self.desk.config.bots.get(bot)
        if settings is not None and settings.handover_notice:
            await self.desk.services.send_text(
                ref, settings.handover_notice, reason=f"bot {bot}",
                dedup=f"inbox:handover:{ref.chat}:{row.created_at}",
            )  # fmt: skip
        return text


async def _room_of(ref: ConversationRef) -> str | None:
    portal = await Portal.get(ref.account, ref.chat)
    return portal.room_id if portal else None
