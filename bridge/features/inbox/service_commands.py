"""The inbox's commands about a team's service: ``stats`` (its open and unassigned
conversations, the longest wait, today's first response times) and ``transfer`` (a
conversation moved to another team's queue)."""

from __future__ import annotations

from datetime import datetime

from ...db.inbox import InboxConversation
from ...db.inbox_figures import InboxResponse
from ...seams import Command, CommandContext
from .assignment import now_ms
from .desk import Desk
from .figures import instant, median, show_seconds


class ServiceCommands:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def commands(self) -> tuple[Command, ...]:
        return (
            Command("stats", "[team]", "staff", "a team's open conversations and response times",
                    self.stats),
            Command("transfer", "<team>", "staff", "move this conversation to another team",
                    self.transfer),
        )  # fmt: skip

    async def stats(self, ctx: CommandContext, args: list[str]) -> str:
        if len(args) > 1:
            return "Usage: stats [team]"
        team = args[0] if args else await self.desk.default_team(ctx.conversation, ctx.sender)
        if team is None or self.desk.team(team) is None:
            return f"Usage: stats [team] (teams: {', '.join(self.desk.config.teams)})"
        if not self.desk.may_see(ctx.sender, team):
            return f"Only the members of team {team} may see its figures."
        now = now_ms()
        open_, unassigned, oldest = await InboxConversation.counts(team)
        waits = (
            "nobody waits"
            if oldest is None
            else f"the longest wait is {show_seconds((now - oldest) / 1000)}"
        )
        midnight = datetime.combine(
            instant(now).astimezone(self.desk.zone(team)).date(),
            datetime.min.time(),
            tzinfo=self.desk.zone(team),
        )
        firsts = await InboxResponse.since(team, "first", int(midnight.timestamp() * 1000))
        wall = median([figure.seconds for figure in firsts])
        business = median([figure.business_seconds for figure in firsts])
        return "\n".join(
            [
                f"Team {team}: {open_} open, {unassigned} unassigned; {waits}.",
                f"First responses today: {len(firsts)}, median {show_seconds(wall)} "
                f"({show_seconds(business)} in business hours).",
            ]
        )

    async def transfer(self, ctx: CommandContext, args: list[str]) -> str:
        teams = ", ".join(self.desk.config.teams)
        if len(args) != 1:
            return f"Usage: transfer <team> (teams: {teams})"
        row = await self.desk.target(ctx.conversation, ctx.sender)
        if isinstance(row, str):
            return row
        if waits := self.desk.with_bot(row):
            return waits
        team = args[0]
        config = self.desk.team(team)
        if config is None:
            return f"There is no team {team} (teams: {teams})."
        if team == row.team:
            return f"This conversation is in team {team} already."
        had = await InboxConversation.transfer(row.account, row.chat, team, now_ms())
        await self.desk.assign_waiting([team], quiet=(row.account, row.chat))
        after = await InboxConversation.get(row.account, row.chat)
        assignee = after.assignee if after else None
        # Renamed first: whoever is invited sees the room under its new status.
        await self.desk.renamed(row.account, row.chat)
        await self.desk.invite(ctx.room_id, row.account, config, assignee)
        await self.desk.rooms.transferred(team, ctx.room_id)
        await self.desk.capacity_freed(had)
        actor = await self.desk.name(ctx.room_id, ctx.sender)
        if assignee:
            where = f"assigned to {await self.desk.name(ctx.room_id, assignee)}"
        else:
            where = "waiting in the queue" if row.status == "open" else f"{row.status}, unassigned"
        moved = f"from team {row.team} to team {team}"
        return f"➡️ {actor} transferred this conversation {moved}; {where}."
