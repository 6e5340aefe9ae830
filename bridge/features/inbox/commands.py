"""The inbox's bot commands. Those about a conversation are sent in its portal room and act on
it; only the members and leads of its team (and admins) may use them. The answer, a notice in
the room, says who changed what. When a member's capacity frees up (a conversation resolved,
unassigned, set pending or snoozed; back from away), what waits in their teams is assigned.
``claim`` works in a team room too (``claims.py``)."""

from __future__ import annotations

from datetime import UTC, datetime

from ...connector import ConfigError
from ...db import Portal
from ...db.inbox import InboxConversation
from ...seams import Command, CommandContext
from ...seams_api import ApiError
from .assignment import now_ms
from .bot import Bots, HandOver
from .claims import TOOK, USAGE, Claims
from .config import parse_duration
from .desk import Desk
from .figures import record_resolution
from .until import parse_until

LIST_LIMIT = 50
OWN_STATUSES = ("open", "pending", "snoozed")
COMMAND_OF = {"resolved": "resolve", "open": "reopen", "pending": "pending"}
UNTIL = "until [YYYY-MM-DD | tomorrow | monday…sunday] [HH:MM]"
ASSIGN_USAGE = "Usage: assign @user | me"
RESOLVED = "✅ {name} resolved this conversation."
REOPENED = "🔄 {name} reopened this conversation."
SNOOZE_USAGE = f"Usage: snooze <duration: 30m, 2h, 1d> | snooze {UNTIL}"


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


class InboxCommands:
    def __init__(self, desk: Desk, bots: Bots) -> None:
        self.desk = desk
        self.claims = Claims(desk)
        self.bots = bots

    def commands(self) -> tuple[Command, ...]:
        return (
            Command("assign", "@user | me", "staff", "give this conversation to someone",
                    self.assign),
            Command("claim", "[n]", "staff", "take this conversation; in a team room the "
                    "longest waiting one, or line n of the queue view", self.claim),
            Command("unassign", "", "staff", "put this conversation back in the queue",
                    self.unassign),
            Command("resolve", "", "staff", "mark this conversation resolved", self.resolve),
            Command("reopen", "", "staff", "open this conversation again", self.reopen),
            Command("pending", "", "staff", "wait for the customer", self.pending),
            Command("snooze", f"<duration: 2h, 1d> | {UNTIL}", "staff",
                    "put this conversation aside (a day alone: when the team opens)",
                    self.snooze),
            Command("status", "", "staff", "this conversation's team, status and assignee",
                    self.status),
            Command("inbox", "", "staff", "your open conversations", self.inbox),
            Command("queue", "[team]", "staff", "a team's unassigned conversations",
                    self.queue),
            Command("away", "", "staff", "get no new conversations", self.away),
            Command("available", "", "staff", "get new conversations again", self.available),
        )  # fmt: skip

    async def _target(self, ctx: CommandContext) -> InboxConversation | str:
        return await self.desk.target(ctx.conversation, ctx.sender)

    async def _who(self, ctx: CommandContext, user: str | None = None) -> str:
        return await self.desk.name(ctx.room_id, user or ctx.sender)

    async def assign(self, ctx: CommandContext, args: list[str]) -> str:
        if len(args) != 1:
            return "Usage: assign @user | me"
        try:
            return await self.assign_to(ctx, args[0])
        except ApiError as e:
            return e.message

    async def assign_to(self, ctx: CommandContext, to: str) -> str:
        """Give the conversation of ``ctx`` to ``to`` (``me``: the sender); the answer, or
        ``ApiError`` for a refusal (the ``assign`` command and the provisioning API)."""
        row = await self.desk.target_row(ctx.conversation, ctx.sender)
        team = self.desk.team(row.team)
        if row.with_bot:
            return await self._take_from_bot(ctx, row, to)
        if to.lower() == "me":
            if row.assignee == ctx.sender:
                raise ApiError(409, "This conversation is yours already.")
            if not await self.desk.assignment.claim(row.account, row.chat, ctx.sender):
                holder = await self._who(ctx, row.assignee)
                raise ApiError(
                    409, f"{holder} has this conversation; `assign @user` gives it to someone."
                )
            await self.desk.renamed(row.account, row.chat)
            return TOOK.format(name=await self._who(ctx))
        user = to
        if team is None or user not in team.staff:
            raise ApiError(400, f"{user} is not a member of team {row.team}. {ASSIGN_USAGE}")
        await InboxConversation.assign(row.account, row.chat, user, now_ms())
        await self.desk.renamed(row.account, row.chat)
        await ctx.services.invite(ctx.room_id, user, row.account)
        if row.assignee not in (None, user):
            await self.desk.capacity_freed(row.assignee)
        actor, assignee = await self._who(ctx), await self._who(ctx, user)
        return f"👤 {actor} assigned this conversation to {assignee}."

    async def _take_from_bot(self, ctx: CommandContext, row: InboxConversation, to: str) -> str:
        """``assign`` in a conversation a bot answers: the humans take it over, given to
        ``to`` (``me``: the sender) rather than per the team's mode."""
        user = ctx.sender if to.lower() == "me" else to
        team = self.desk.team(row.team)
        if team is None or (user != ctx.sender and user not in team.staff):
            return f"{user} is not a member of team {row.team}. Usage: assign @user | me"
        ref = ctx.conversation
        if ref is None or ref.room_id is None:
            return "Send this in a conversation's room."
        order = HandOver(ref, row, f"command:{ctx.event_id}", to=user)
        why = f"🤖 {await self._who(ctx)} took this conversation over from {row.with_bot}"
        return await self.bots.hand_over(order, why, post=False) or "Try again: it just changed."

    async def claim(self, ctx: CommandContext, args: list[str]) -> str:
        if ctx.conversation is None:
            return await self.claims.from_team_room(ctx, args)
        return await self.assign(ctx, ["me"]) if not args else USAGE

    async def unassign(self, ctx: CommandContext, args: list[str]) -> str:
        if args:
            return "Usage: unassign"
        row = await self._target(ctx)
        if isinstance(row, str):
            return row
        if waits := self.desk.with_bot(row):
            return waits
        had = await self.desk.assignment.unassign(row.account, row.chat)
        if had is None:
            return "Nobody has this conversation."
        await self.desk.renamed(row.account, row.chat)
        answer = f"👤 {await self._who(ctx)} put this conversation back in the queue."
        await self.desk.assign_waiting([row.team])
        await self.desk.capacity_freed(had)
        return answer

    async def _set(self, ctx: CommandContext, args: list[str], status: str, text: str) -> str:
        if args:
            return f"Usage: {COMMAND_OF[status]}"
        try:
            return await self.set_status(ctx, status, text)
        except ApiError as e:
            return e.message

    async def set_status(self, ctx: CommandContext, status: str, text: str) -> str:
        """Set the conversation of ``ctx`` to ``status``; the answer (``text`` with the
        sender's ``{name}``), or ``ApiError`` for a refusal (the ``resolve``, ``reopen`` and
        ``pending`` commands and the provisioning API)."""
        row = await self.desk.target_row(ctx.conversation, ctx.sender)
        if status != "resolved" and (waits := self.desk.with_bot(row)):
            raise ApiError(409, waits)  # resolved: the bot's answers were enough
        if row.status == status:
            raise ApiError(409, f"This conversation is {status} already.")
        now = now_ms()
        await InboxConversation.set_status(row.account, row.chat, status, now)
        if status == "resolved":
            await record_resolution(self.desk.hours(row.team), row, now)
        await self.desk.renamed(row.account, row.chat)
        if status == "open":
            await self.desk.assign_waiting([row.team])
        else:
            await self.desk.capacity_freed(row.assignee)
        return text.format(name=await self._who(ctx))

    async def resolve(self, ctx: CommandContext, args: list[str]) -> str:
        return await self._set(ctx, args, "resolved", RESOLVED)

    async def reopen(self, ctx: CommandContext, args: list[str]) -> str:
        return await self._set(ctx, args, "open", REOPENED)

    async def pending(self, ctx: CommandContext, args: list[str]) -> str:
        return await self._set(
            ctx,
            args,
            "pending",
            "⏳ {name} set this conversation pending (waiting for the customer).",
        )

    async def snooze(self, ctx: CommandContext, args: list[str]) -> str:
        absolute = bool(args) and args[0].lower() == "until"
        if not absolute and len(args) != 1:
            return SNOOZE_USAGE
        try:
            seconds = 0 if absolute else parse_duration(args[0], "snooze")
        except ConfigError:
            return SNOOZE_USAGE
        row = await self._target(ctx)
        if isinstance(row, str):
            return row
        if waits := self.desk.with_bot(row):
            return waits
        now = now_ms()
        until = now + seconds * 1000
        if absolute:
            zone, hours = self.desk.zone(row.team), self.desk.hours(row.team)
            at = parse_until(args[1:], datetime.fromtimestamp(now / 1000, UTC), zone, hours)
            if at is None:
                return f"{SNOOZE_USAGE} (a time to come, in {zone})"
            until = int(at.timestamp() * 1000)
        await InboxConversation.set_status(row.account, row.chat, "snoozed", now, until)
        await self.desk.renamed(row.account, row.chat)
        await self.desk.capacity_freed(row.assignee)
        local = datetime.fromtimestamp(until / 1000, self.desk.zone(row.team))
        when = f"{local:%a %Y-%m-%d %H:%M} ({local.tzinfo})"  # the team's time: what was asked
        return f"💤 {await self._who(ctx)} snoozed this conversation until {when}."

    async def status(self, ctx: CommandContext, args: list[str]) -> str:
        if args:
            return "Usage: status"
        row = await self._target(ctx)
        if isinstance(row, str):
            return row
        assignee = await self._who(ctx, row.assignee) if row.assignee else "nobody"
        lines = [f"Team {row.team}, {row.status}, assigned to {assignee}."]
        if row.waiting_since is not None:
            lines.append(f"The customer waits since {_when(row.waiting_since)}.")
        if row.status == "snoozed":
            lines.append(f"Snoozed until {_when(row.snoozed_until)}.")
        return "\n".join(lines)

    async def inbox(self, ctx: CommandContext, args: list[str]) -> str:
        if args:
            return "Usage: inbox"
        rows = await InboxConversation.assigned_to(ctx.sender, OWN_STATUSES)
        if not rows:
            return "You have no open conversations."
        lines = [f"Your conversations ({len(rows)}):"]
        lines += [await _line(row) for row in rows[:LIST_LIMIT]]
        return "\n".join(lines)

    async def queue(self, ctx: CommandContext, args: list[str]) -> str:
        if len(args) > 1:
            return "Usage: queue [team]"
        team = args[0] if args else await self.desk.default_team(ctx.conversation, ctx.sender)
        if team is None or self.desk.team(team) is None:
            return f"Usage: queue [team] (teams: {', '.join(self.desk.config.teams)})"
        if not self.desk.may_see(ctx.sender, team):
            return f"Only the members of team {team} may see its queue."
        rows = await InboxConversation.queue(team)
        if not rows:
            return f"Nobody waits in the queue of team {team}."
        lines = [f"Queue of team {team} ({len(rows)}, waiting longest first):"]
        lines += [await _line(row) for row in rows[:LIST_LIMIT]]
        return "\n".join(lines)

    async def away(self, ctx: CommandContext, args: list[str]) -> str:
        if args:
            return "Usage: away"
        await self.desk.assignment.set_available(ctx.sender, False)
        return "You are away: no new conversations are assigned to you."

    async def available(self, ctx: CommandContext, args: list[str]) -> str:
        if args:
            return "Usage: available"
        await self.desk.assignment.set_available(ctx.sender, True)
        await self.desk.capacity_freed(ctx.sender)
        return "You are available: new conversations are assigned to you again."


async def _line(row: InboxConversation) -> str:
    portal = await Portal.get(row.account, row.chat)
    name = (portal.name if portal else None) or row.chat
    room = portal.room_id if portal and portal.room_id else "no room"
    waiting = f", waiting since {_when(row.waiting_since)}" if row.waiting_since else ""
    return f"• {name} ({row.account}) — {row.status}{waiting} — {room}"
