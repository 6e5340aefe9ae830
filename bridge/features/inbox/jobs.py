"""The inbox's periodic job: snoozes that are due end (the conversation opens again, its
room is told), and each team's waiting conversations are assigned (members back under their
limit, conversations a crash left unassigned); then each team's queue view is brought up to
date (and the team's room and space made, the first time)."""

from __future__ import annotations

from ...db import Portal
from ...db.inbox import InboxConversation, transaction
from .assignment import now_ms
from .desk import Desk, txn


async def tick(desk: Desk) -> None:
    now = now_ms()
    for row in await InboxConversation.due_snoozes(now):
        if await _end_snooze(row.account, row.chat, now) and desk.team(row.team) is not None:
            await desk.renamed(row.account, row.chat)
            await _tell_snooze_ended(desk, row)
    await desk.assign_waiting(desk.config.teams)
    await desk.rooms.refresh_queues()


async def _end_snooze(account: str, chat: str, now: int) -> bool:
    """Open the conversation if it is still snoozed and due (a staff member or the customer
    may have changed it since it was listed)."""
    async with transaction():
        row = await InboxConversation.lock(account, chat, now)
        if row is None or row.status != "snoozed" or (row.snoozed_until or 0) > now:
            return False
        await InboxConversation.set_status(account, chat, "open", now)
    return True


async def _tell_snooze_ended(desk: Desk, row: InboxConversation) -> None:
    portal = await Portal.get(row.account, row.chat)
    if portal is None or not portal.room_id:
        return
    await desk.services.notice(
        portal.room_id,
        "⏰ Snooze ended; the conversation is open again",
        txn=txn("snooze-ended", row.account, row.chat, row.snoozed_until),
    )
