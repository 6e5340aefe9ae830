"""``claim``: a member takes a conversation, from the team room or inside the conversation.

In a conversation's room ``claim`` is ``assign me``. In a team room, ``claim`` takes the team's
longest waiting unassigned conversation, and ``claim <n>`` the conversation of line ``n`` of
the queue view as it reads there (the view stores which conversation each line shows; it is
brought up to date by the periodic job and after each claim). A claim is the race-safe
conditional update of ``Assignment.claim``: of two members claiming one conversation exactly
one gets it, and a bare ``claim`` that loses a race goes on to the next conversation.

The claimer is invited into the conversation's room, whose name shows the new status and
which is told who took it; the answer in the team room links the room."""

from __future__ import annotations

import logging
import re

from ...db import Portal
from ...db.inbox import InboxConversation, InboxTeam
from ...seams import CommandContext
from .desk import Desk, txn
from .rooms import link, snippet

log = logging.getLogger("bridge.inbox.claims")

USAGE = (
    "Usage: claim [n] — in a team room: the longest waiting conversation, or line n of the "
    "queue view; in a conversation's room: this conversation"
)
TOOK = "👤 {name} took this conversation."
_NUMBER = re.compile(r"[1-9][0-9]{0,3}")


async def team_of_room(desk: Desk, room_id: str, user: str) -> tuple[str | None, str | None]:
    """The team whose room ``room_id`` is and that ``user`` may act for (the first, should
    teams share a room), and the first team of that room at all (to name in a refusal)."""
    teams = [team for team in await InboxTeam.in_room(room_id) if desk.team(team) is not None]
    mine = [team for team in teams if desk.may_see(user, team)]
    return (mine[0] if mine else None), (teams[0] if teams else None)


class Claims:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    async def from_team_room(self, ctx: CommandContext, args: list[str]) -> str:
        """``claim [n]`` sent outside a conversation's room."""
        if len(args) > 1 or (args and not _NUMBER.fullmatch(args[0])):
            return USAGE
        team, any_team = await team_of_room(self.desk, ctx.room_id, ctx.sender)
        if any_team is None:
            return "Send this in a team room or in a conversation's room."
        if team is None:
            return f"Only the members of team {any_team} may claim its conversations."
        if not args:
            return await self._longest_waiting(ctx, team)
        return await self._line(ctx, team, int(args[0]))

    async def _longest_waiting(self, ctx: CommandContext, team: str) -> str:
        for row in await InboxConversation.queue(team):
            if await self.desk.assignment.claim(row.account, row.chat, ctx.sender):
                return await self._took(ctx, row)
        return f"Nobody waits in the queue of team {team}."

    async def _line(self, ctx: CommandContext, team: str, number: int) -> str:
        shown = (await InboxTeam.rooms(team)).queue_shown
        if number > len(shown):
            lines = {0: "no lines", 1: "1 line"}.get(len(shown), f"{len(shown)} lines")
            return f"The queue view of team {team} has no line {number} (it shows {lines})."
        account, chat = shown[number - 1]
        row = await InboxConversation.get(account, chat)
        if row is None or row.team != team or row.status != "open":
            return f"Line {number} is no longer in the queue of team {team}."
        if row.assignee is None and await self.desk.assignment.claim(account, chat, ctx.sender):
            return await self._took(ctx, row)
        after = await InboxConversation.get(account, chat)
        holder = after.assignee if after else None
        if holder == ctx.sender:
            return "This conversation is yours already."
        who = await self.desk.name(ctx.room_id, holder) if holder else "someone"
        return f"{who} has the conversation of line {number} already."

    async def _took(self, ctx: CommandContext, row: InboxConversation) -> str:
        """``ctx.sender`` won ``row``: its room renamed, the claimer invited, told there; the
        queue view updated; the answer for the team room."""
        await self.desk.renamed(row.account, row.chat)
        name = await self.desk.name(ctx.room_id, ctx.sender)
        portal = await Portal.get(row.account, row.chat)
        customer = snippet((portal.name if portal else None) or row.chat)
        answer = f"👤 {name} took {customer} ({row.account})"
        if portal is not None and portal.room_id:
            await self.desk.services.invite(portal.room_id, ctx.sender, row.account)
            await self.desk.services.notice(
                portal.room_id,
                TOOK.format(name=name),
                txn=txn("claimed", row.account, row.chat, ctx.sender, ctx.event_id),
            )
            answer += f": {link(portal.room_id)}"
        try:
            await self.desk.rooms.refresh_queue(row.team)
        except Exception:
            log.exception("Could not update the queue view of team %s", row.team)
        return answer
