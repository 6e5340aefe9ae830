"""Who handles a conversation: manual claims, automatic assignment per team (round robin or
least-open, under a per-member limit of open conversations, never to someone away), and a
reopened conversation's way back to its last assignee.

Safe when run concurrently, by many tasks and by several bridge processes on one PostgreSQL:
``assign_next`` holds its team's row, locks the members' availability rows (in one order) and
skips conversations another transaction holds (``FOR UPDATE SKIP LOCKED``); on SQLite its
write transaction holds the whole database. A claim is a conditional update, so of two
racing claims (or a claim racing ``assign_next``) exactly one wins.

The limit binds automatic assignment (and the way back of a reopened conversation); a
member's own claim is their decision and is not refused for it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

from bridge.db.inbox import InboxAgent, InboxConversation, InboxTeam, transaction

MODES = ("manual", "round_robin", "least_open")

Assigned = tuple[str, str, str]
"""``(account, chat, mxid)``: a conversation and who it was given to."""


class TeamPolicy(Protocol):
    """How a team assigns its conversations."""

    @property
    def name(self) -> str: ...

    @property
    def members(self) -> tuple[str, ...]:
        """Matrix user IDs, in the order round robin follows."""
        ...

    @property
    def mode(self) -> str:
        """``manual``, ``round_robin`` or ``least_open``."""
        ...

    @property
    def limit(self) -> int | None:
        """Open conversations per member (over every team) beyond which automatic
        assignment passes them by; None for no limit."""
        ...


def now_ms() -> int:
    return int(time.time() * 1000)


class Assignment:
    def __init__(
        self,
        teams: Iterable[TeamPolicy],
        clock: Callable[[], int] = now_ms,
        batch: int = 500,
    ) -> None:
        self.teams = {team.name: team for team in teams}
        for team in self.teams.values():
            if team.mode not in MODES:
                raise ValueError(f"team {team.name}: unknown assignment mode {team.mode!r}")
        self.clock = clock
        self.batch = batch
        """At most this many conversations per ``assign_next`` (call again for the rest)."""

    async def claim(self, account: str, chat: str, mxid: str) -> bool:
        """``mxid`` takes the conversation if nobody has it; False when someone does."""
        return await InboxConversation.claim(account, chat, mxid, self.clock())

    async def unassign(self, account: str, chat: str) -> str | None:
        """Back to the team's queue; returns who had it (None if nobody). The caller runs
        ``assign_next`` when the freed capacity should be used."""
        return await InboxConversation.unassign(account, chat, self.clock())

    async def set_available(self, mxid: str, available: bool) -> None:
        await InboxAgent.set_available(mxid, available, self.clock())

    async def open_counts(self, team: str) -> dict[str, int]:
        """Open conversations of each member of ``team`` (counted over every team)."""
        return await InboxConversation.open_counts(self.teams[team].members)

    def teams_of(self, mxid: str) -> list[str]:
        """The teams ``mxid`` is a member of: where to run ``assign_next`` when their
        capacity frees up (back from away, a conversation resolved or unassigned)."""
        return [name for name, team in self.teams.items() if mxid in team.members]

    async def assign_next(self, team: str) -> list[Assigned]:
        """Give ``team``'s unassigned open conversations, longest waiting first, to available
        members under their limit, per the team's mode. Returns what was assigned."""
        policy = self.teams[team]
        if policy.mode == "manual" or not policy.members:
            return []
        now = self.clock()
        assigned: list[Assigned] = []
        async with transaction():
            cursor = await InboxTeam.lock(team)
            available = await InboxAgent.availability(policy.members, now, lock=True)
            counts = (
                await InboxConversation.open_counts(policy.members)
                if policy.limit is not None or policy.mode == "least_open"
                else dict.fromkeys(policy.members, 0)  # round robin without a limit: unused
            )
            room = [_room(policy.limit, counts[m]) for m in policy.members if available[m]]
            capacity = min(sum(room), self.batch)
            if capacity <= 0:
                return []
            for conversation in await InboxConversation.queue(team, capacity, lock=True):
                member = _pick(policy, cursor, available, counts)
                if member is None:
                    break
                if await InboxConversation.claim(
                    conversation.account, conversation.chat, member, now
                ):
                    counts[member] += 1
                    cursor = member
                    assigned.append((conversation.account, conversation.chat, member))
            if assigned:
                await InboxTeam.set_cursor(team, cursor)
        return assigned

    async def reopen(self, account: str, chat: str) -> str | None:
        """Open the conversation again (a customer wrote): back to its last assignee if they
        are still a member, available and under the limit, otherwise to the team's queue.
        Returns the assignee, None when queued (run ``assign_next`` then). An open assigned
        conversation stays as it is, so a retried call changes nothing."""
        now = self.clock()
        async with transaction():
            conversation = await InboxConversation.lock(account, chat, now)
            if conversation is None:
                return None
            if conversation.status == "open" and conversation.assignee:
                return conversation.assignee
            target = conversation.assignee or conversation.last_assignee
            if target is not None and not await self._can_take(conversation.team, target, now):
                target = None
            await InboxConversation.set_status(account, chat, "open", now)
            await InboxConversation.customer_wrote(account, chat, now)
            if target is None:
                await InboxConversation.unassign(account, chat, now)
            elif target != conversation.assignee:
                await InboxConversation.assign(account, chat, target, now)
        return target

    async def _can_take(self, team: str, mxid: str, now: int) -> bool:
        """``mxid`` may get one more open conversation of ``team`` automatically."""
        policy = self.teams.get(team)
        if policy is None or mxid not in policy.members:
            return False
        available = await InboxAgent.availability([mxid], now, lock=True)
        if not available[mxid]:
            return False
        counts = await InboxConversation.open_counts([mxid])
        return _room(policy.limit, counts[mxid]) > 0


def _room(limit: int | None, open_count: int) -> int:
    """How many more open conversations a member may be given."""
    return 1 << 30 if limit is None else max(limit - open_count, 0)


def _pick(
    policy: TeamPolicy, cursor: str | None, available: dict[str, bool], counts: dict[str, int]
) -> str | None:
    """The member the next conversation goes to: members are taken in order from the one
    after ``cursor`` (the last one given one); round robin takes the first with room,
    least-open the one with the fewest open conversations (ties: the first)."""
    members = policy.members
    start = members.index(cursor) + 1 if cursor in members else 0
    eligible = [
        m
        for m in members[start:] + members[:start]
        if available[m] and _room(policy.limit, counts[m]) > 0
    ]
    if not eligible:
        return None
    if policy.mode == "least_open":
        return min(eligible, key=lambda m: counts[m])
    return eligible[0]
