"""The inbox's periodic job: snoozes that are due end (the conversation opens again, its
room is told), each team's waiting conversations are assigned (members back under their
limit, conversations a crash left unassigned), a customer waiting longer than the team's
``waiting_limit`` is announced once per wait, and conversations idle for the team's
``resolve_idle`` are resolved; then each team's queue view is brought up to date (and the
team's room and space made, the first time).

A wait over the limit is announced in the team room (the customer, the channel account, how
long, who has it, a link to the room), where the whole team and its leads look for what needs
a hand, and in the conversation's room too, where whoever handles it works and where the
conversation's history keeps it. The wait is marked as told only after both notices were
posted: a post that fails (the homeserver unreachable) is tried again at the next tick, and
their deterministic transaction ids keep a retry from posting twice. A refused post (a final
answer) is not retried. One conversation's failure spares the others."""

from __future__ import annotations

import logging

from ...db import Portal
from ...db.inbox import InboxConversation, transaction
from ...logsafe import pii
from ...seams_metrics import FeatureMetrics
from .assignment import now_ms
from .desk import Desk, txn
from .figures import record_resolution, show_seconds
from .rooms import link, snippet

log = logging.getLogger("bridge.inbox.jobs")


async def report_counts(metrics: FeatureMetrics, teams: list[str]) -> None:
    """Each team's open and unassigned conversations, for the metrics."""
    for team in teams:
        open_, unassigned, _ = await InboxConversation.counts(team)
        metrics.conversations(team, open_, unassigned)


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
                try:
                    await _waited_too_long(desk, row, now, limit)
                except Exception:
                    log.exception(
                        "Could not announce the wait of %s/%s", row.account, pii(row.chat)
                    )
        if team.resolve_idle is not None:
            idle = team.resolve_idle
            for row in await InboxConversation.idle(name, now - idle * 1000):
                await _resolve_idle(desk, row, now, idle)


async def _waited_too_long(desk: Desk, row: InboxConversation, now: int, limit: int) -> None:
    """Announce the wait in the team room and the conversation's room, then mark it told
    (the posts first: a failed one is retried at the next tick, posting nothing twice)."""
    since = row.waiting_since
    if since is None:
        return
    waited = show_seconds((now - since) / 1000)
    over = f"waited {waited} for an answer (limit {show_seconds(limit)})"
    portal = await Portal.get(row.account, row.chat)
    room_id = portal.room_id if portal else None
    rooms = await desk.rooms.rooms(row.team)
    if rooms is not None and rooms.room_id:
        customer = snippet((portal.name if portal else None) or row.chat)
        holder = await desk.name(rooms.room_id, row.assignee) if row.assignee else "nobody"
        where = f" {link(room_id)}" if room_id else ""
        text = f"⌛ {customer} ({row.account}) has {over}; assigned to {holder}.{where}"
        key = txn("team-waiting-limit", row.account, row.chat, since)
        await desk.services.notice(rooms.room_id, text, txn=key)
    await _tell(desk, row, f"⌛ The customer has {over}", "waiting-limit", since)
    await InboxConversation.mark_announced(row.account, row.chat, since)


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
    """A notice in the conversation's room."""
    portal = await Portal.get(row.account, row.chat)
    if portal is None or not portal.room_id:
        return
    await desk.services.notice(portal.room_id, text, txn=txn(kind, row.account, row.chat, key))
