"""Dead letters: queue items the bridge gave up on. Their room is told what was not bridged,
and admins list and retry them with the ``deadletters`` command."""

from __future__ import annotations

import html
import logging
import time
from typing import TYPE_CHECKING, Any

from mautrix.types import EventID, RoomID

from ..db import DeadLetter, Portal
from .util import txn_id

if TYPE_CHECKING:
    from .bridge import Bridge
    from .commands import CommandContext

log = logging.getLogger("bridge.deadletters")

SNIPPET = 200
"""Characters of a lost message's text quoted in the notice."""
LISTED = 50
"""Dead letters shown by ``deadletters``."""
_WHAT = {
    "message": "a message", "edit": "an edit", "delete": "a deletion", "reaction": "a reaction",
    "reaction_remove": "the removal of a reaction", "read_receipt": "a read receipt",
    "delivery_receipt": "a delivery receipt", "typing": "a typing notification",
    "delivery_failure": "a delivery failure report",
}  # fmt: skip


async def announce(bridge: Bridge, dead: DeadLetter) -> None:
    """Tell the room of ``dead`` what was not bridged and how to retry it. A room that
    refuses the notice (4xx) is logged; the dead letter stays listed either way."""
    retry = f"Kept as dead letter {dead.id}; an admin can retry it with `deadletters retry "
    retry += f"{dead.id}`."
    txn = txn_id("dead-letter", str(dead.id), str(dead.failed_at))
    if dead.kind == "matrix":
        event_id = dead.payload.get("event_id")
        if not dead.room_id:
            log.error("Dead letter %d has no room to tell: %s", dead.id, dead.error)
            return
        reply_to = EventID(event_id) if isinstance(event_id, str) else None
        await bridge.notices.failure(
            RoomID(dead.room_id), reply_to, f"{dead.error}. {retry}", txn=txn
        )
        return
    room_id, what = await _remote_room(bridge, dead.payload)
    if room_id is None:
        log.error("Dead letter %d (%s) has no portal room to tell: %s", dead.id, what, dead.error)
        return
    text = f"⚠️ Not bridged: {what}. Reason: {dead.error}. {retry}"
    html_text = (
        f"⚠️ <b>Not bridged:</b> {html.escape(what)}. Reason: {html.escape(dead.error)}. "
        f"{html.escape(retry)}"
    )
    await bridge.notices.send(RoomID(room_id), text, html_text=html_text, txn=txn)


async def _remote_room(bridge: Bridge, payload: dict[str, Any]) -> tuple[str | None, str]:
    """The portal room of a remote queue item and a description of what it carried."""
    account = payload.get("account")
    event = payload.get("event")
    if not isinstance(account, str) or not isinstance(event, dict):
        return None, "an unreadable remote event"
    chat = event.get("chat")
    sender = event.get("sender")
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    kind = event.get("kind")
    what = _WHAT.get(kind, "an event") if isinstance(kind, str) else "an event"
    if isinstance(sender, dict):
        name = sender.get("displayname") or sender.get("id")
        if isinstance(name, str) and name:
            what += f" from {_short(name, 100)}"
    what += f" ({bridge.portals.channel_title(account)})"
    text = event.get("text")
    if isinstance(text, str) and text.strip():
        what += f": “{_short(text.strip(), SNIPPET)}”"
    attachments = event.get("attachments")
    if isinstance(attachments, list | tuple) and attachments:
        what += f" with {len(attachments)} attachment{'s' * (len(attachments) != 1)}"
    if not isinstance(chat_id, str):
        return None, what
    portal = await Portal.get(account, chat_id)
    return (portal.room_id if portal and portal.room_id else None), what


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def deadletters_command(ctx: CommandContext, args: list[str]) -> str:
    if not args:
        return await _list(ctx)
    if args[0].lower() == "retry" and len(args) == 2:
        return await _retry(ctx, args[1])
    return "Usage: deadletters (list them) or deadletters retry <id>|all"


async def _account_of(dead: DeadLetter) -> str | None:
    """The channel account a dead letter belongs to, None when that cannot be told."""
    if dead.kind == "remote":
        account = dead.payload.get("account")
        return account if isinstance(account, str) else None
    portal = await Portal.get_by_room(dead.room_id) if dead.room_id else None
    return portal.account if portal else None


async def _visible(ctx: CommandContext) -> list[DeadLetter]:
    """The dead letters ``ctx.sender`` may see and retry: those of the accounts they are an
    admin of; one of no known account only for an admin of every account."""
    config = ctx.bridge.config

    def admin_of(account: str) -> bool:
        return config.permission_level(ctx.sender, account) == "admin"

    everywhere = all(admin_of(account) for account in config.channels)
    visible = []
    for dead in await DeadLetter.all():
        account = await _account_of(dead)
        if everywhere or (account is not None and admin_of(account)):
            visible.append(dead)
    return visible


async def _list(ctx: CommandContext) -> str:
    dead_letters = await _visible(ctx)
    if not dead_letters:
        return "No dead letters."
    lines = [f"{len(dead_letters)} dead letter(s):"]
    for dead in dead_letters[:LISTED]:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(dead.failed_at / 1000))
        where = dead.room_id or dead.queue_key
        lines.append(
            f"• {dead.id} — {dead.kind} in {where}, {when}, {dead.attempts} attempt(s): "
            f"{_short(dead.error, 300)}"
        )
    if len(dead_letters) > LISTED:
        lines.append(f"… and {len(dead_letters) - LISTED} more")
    return "\n".join(lines)


async def _retry(ctx: CommandContext, which: str) -> str:
    visible = await _visible(ctx)
    if which.lower() == "all":
        targets = visible
    elif which.isdigit():
        targets = [dead for dead in visible if dead.id == int(which)]
        if not targets:
            return f"There is no dead letter {which}. See `deadletters`."
    else:
        return "Usage: deadletters retry <id>|all"
    retried = []
    for dead in targets:
        item = await dead.revive()
        if item is not None:
            ctx.bridge.dispatcher.submit(item)
            retried.append(str(dead.id))
    if not retried:
        return "Nothing to retry."
    return f"Queued again: {', '.join(retried)}."
