"""What the inbox's hooks, commands and periodic job share: the configured teams, who may act
on a team's conversations, who is invited to a conversation's room, and telling the room when
a conversation was given to someone.

Notices that a retried hook may post again carry a deterministic transaction id (``txn``), so
the homeserver keeps one. A notice is posted after the state change it reports is stored: a
crash in between loses the notice, never the change."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING

from ...db import Portal
from ...db.inbox import InboxConversation
from ...seams import ConversationRef, Services
from ...seams_api import ApiError
from ...types import AccountID, RemoteChatID
from .assignment import Assigned, Assignment, now_ms
from .config import InboxConfig, InvitePolicy, TeamConfig
from .hours import BusinessHours, parse_business_hours

if TYPE_CHECKING:
    from .rooms import TeamRoomDesk


def txn(*parts: object) -> str:
    """A transaction id for a notice, the same for the same ``parts``, of any length."""
    key = "\x00".join(str(part) for part in parts)
    return "inbox-" + hashlib.sha256(key.encode()).hexdigest()[:32]


class Desk:
    def __init__(
        self,
        services: Services,
        config: InboxConfig,
        assignment: Assignment,
        rooms: TeamRoomDesk,
    ) -> None:
        self.services = services
        self.config = config
        self.assignment = assignment
        self._hours: dict[str, BusinessHours | None] = {}
        self.rooms = rooms

    def team(self, name: str) -> TeamConfig | None:
        return self.config.teams.get(name)

    def hours(self, team: str) -> BusinessHours | None:
        """The team's business hours (checked at start-up); None: always open."""
        if team not in self._hours:
            config = self.team(team)
            raw = None if config is None else config.hours_raw
            key = f"features.inbox.teams.{team}.hours"
            self._hours[team] = None if raw is None else parse_business_hours(raw, key)
        return self._hours[team]

    def zone(self, team: str) -> tzinfo:
        """The team's timezone: that of its business hours, else UTC."""
        hours = self.hours(team)
        return UTC if hours is None else hours.zone

    def teams_of(self, user: str) -> list[str]:
        """The teams ``user`` is a member or lead of."""
        return [name for name, team in self.config.teams.items() if user in team.staff]

    def may_act(self, user: str, team: str, account: str) -> bool:
        """Members and leads act on their team's conversations; admins on every one."""
        config = self.team(team)
        if config is not None and user in config.staff:
            return True
        return self.services.level(user, account) == "admin"

    async def target(self, ref: ConversationRef | None, user: str) -> InboxConversation | str:
        """The conversation a command sent in ``ref``'s room acts on, or why there is none."""
        try:
            return await self.target_row(ref, user)
        except ApiError as e:
            return e.message

    async def target_row(self, ref: ConversationRef | None, user: str) -> InboxConversation:
        """``target``, refusing with ``ApiError`` (its status for the provisioning API)."""
        if ref is None:
            raise ApiError(400, "Send this in a conversation's room.")
        row = await InboxConversation.get(ref.account, ref.chat)
        if row is None:
            raise ApiError(404, "This conversation is not in the team inbox.")
        if not self.may_act(user, row.team, row.account):
            raise ApiError(403, f"Only the members of team {row.team} may do this.")
        return row

    @staticmethod
    def with_bot(row: InboxConversation) -> str | None:
        """Why a command that changes ``row`` for the humans waits, while a bot answers it."""
        if row.with_bot is None:
            return None
        return (
            f"🤖 {row.with_bot} answers this conversation; `handover` or `assign` gives it to "
            f"team {row.team} first."
        )

    def may_see(self, user: str, team: str) -> bool:
        """Members and leads see their team's queue and figures; admins every team's."""
        config = self.team(team)
        if config is not None and user in config.staff:
            return True
        return self.services.level(user) == "admin"

    async def default_team(self, ref: ConversationRef | None, user: str) -> str | None:
        """The team of the conversation ``ref``, else the first team of ``user``."""
        if ref is not None:
            row = await InboxConversation.get(ref.account, ref.chat)
            if row is not None:
                return row.team
        teams = self.teams_of(user)
        return teams[0] if teams else None

    async def name(self, room_id: str, user: str) -> str:
        return await self.services.displayname(room_id, user)

    async def invite(
        self, room_id: str, account: str, team: TeamConfig, assignee: str | None
    ) -> None:
        """Per the team's ``invite``: everyone of the team, or the assignee and the leads."""
        if team.invite == InvitePolicy.TEAM:
            users: tuple[str, ...] = team.staff
        else:
            users = (*([assignee] if assignee else []), *team.leads)
        for user in dict.fromkeys(users):
            await self.services.invite(room_id, user, account)

    async def assign_waiting(
        self, teams: Iterable[str], quiet: tuple[str, str] | None = None
    ) -> list[Assigned]:
        """Give each team's waiting conversations to its members (per its mode), inviting
        each assignee and telling each room (its name too), except the room of ``quiet``
        (account, chat), whose caller tells it itself."""
        assigned: list[Assigned] = []
        for team in dict.fromkeys(teams):
            if team in self.assignment.teams:
                assigned += await self.assignment.assign_next(team)
        for account, chat, mxid in assigned:
            if (account, chat) != quiet:
                await self.renamed(account, chat)
                await self.announce(account, chat, mxid, "👤 Assigned to {name}")
        return assigned

    async def renamed(self, account: str, chat: str, row: InboxConversation | None = None) -> None:
        """The conversation's status or assignee changed: its room's name shows it. With
        ``row`` (the conversation as just stored), the room namer need not read it again."""
        ref = ConversationRef(AccountID(account), RemoteChatID(chat), None)
        with self.rooms.stored(row):
            await self.services.rename(ref)

    async def capacity_freed(self, user: str | None) -> None:
        """``user`` may take more conversations: assign what waits in their teams."""
        if user is not None:
            await self.assign_waiting(self.assignment.teams_of(user))

    async def announce(self, account: str, chat: str, mxid: str, text: str) -> None:
        """Invite ``mxid`` into the conversation's room and post ``text`` (``{name}``: their
        name) there."""
        portal = await Portal.get(account, chat)
        if portal is None or not portal.room_id:
            return
        await self.services.invite(portal.room_id, mxid, account)
        name = await self.name(portal.room_id, mxid)
        await self.services.notice(
            portal.room_id,
            text.format(name=name),
            txn=txn("assigned", account, chat, mxid, now_ms()),
        )
