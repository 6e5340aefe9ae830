"""The inbox's periodic job: snoozes that are due end (the conversation opens again, its
room is told), each team's waiting conversations are assigned (members back under their
limit, conversations a crash left unassigned), a customer waiting longer than the team's
``waiting_limit`` is announced once per wait, and conversations idle for the team's
``resolve_idle`` are resolved; then each team's queue view is brought up to date (and the
team's room and space made, the first time)."""

from __future__ import annotations

from ...db import Portal
from ...db.inbox import InboxConversation, transaction
from .assignment import now_ms
from .desk import Desk, txn
from .figures import record_resolution, show_seconds


async def tick(desk: Desk) -> None:
    now = now_ms()
    for row in await InboxConversation.due_snoozes(now):
        if await _end_snooze(row.account, row.chat, now) and desk.team(row.team) is not None:
            await desk.renamed(row.account, row.chat)
            text = "⏰ Snooze ended; the conversation is open again"
            await _tell(desk, row, text, "snooze-ended", row.snoozed_until)
    await desk.assign_waiting(desk.config.teams)
    await timers(desk, now)
    await desk.rooms.refresh_queues()


async def timers(desk: Desk, now: int) -> None:
    """Tell of waits over the limit (once each) and resolve idle conversations."""
    for name, team in desk.config.teams.items():
        if team.waiting_limit is not None:
            limit = team.waiting_limit
            for row in await InboxConversation.over_waiting_limit(name, now - limit * 1000):
                await _waited_too_long(desk, row, now, limit)
        if team.resolve_idle is not None:
            idle = team.resolve_idle
            for row in await InboxConversation.idle(name, now - idle * 1000):
                await _resolve_idle(desk, row, now, idle)


async def _waited_too_long(desk: Desk, row: InboxConversation, now: int, limit: int) -> None:
    since = row.waiting_since
    if since is None or not await InboxConversation.mark_announced(row.account, row.chat, since):
        return
    waited = show_seconds((now - since) / 1000)
    text = f"⌛ The customer has waited {waited} for an answer (limit {show_seconds(limit)})"
    await _tell(desk, row, text, "waiting-limit", since)


async def _resolve_idle(desk: Desk, row: InboxConversation, now: int, idle: int) -> None:
    if not await InboxConversation.resolve_idle(row.account, row.chat, now - idle * 1000, now):
        return
    await record_resolution(desk.hours(row.team), row, now)
    await desk.renamed(row.account, row.chat)
    await desk.capacity_freed(row.assignee)
    text = f"✅ Resolved after {show_seconds(idle)} without activity"
    await _tell(desk, row, text, "resolved-idle", row.updated_at)


async def _end_snooze(account: str, chat: str, now: int) -> bool:
    """Open the conversation if it is still snoozed and due (a staff member or the customer
    may have changed it since it was listed)."""
    async with transaction():
        row = await InboxConversation.lock(account, chat, now)
        if row is None or row.status != "snoozed" or (row.snoozed_until or 0) > now:
            return False
        await InboxConversation.set_status(account, chat, "open", now)
    return True


async def _tell(desk: Desk, row: InboxConversation, text: str, kind: str, key: object) -> None:
    """A notice in the conversation's room (the team room, once there is one)."""
    portal = await Portal.get(row.account, row.chat)
    if portal is None or not portal.room_id:
        return
    await desk.services.notice(portal.room_id, text, txn=txn(kind, row.account, row.chat, key))
