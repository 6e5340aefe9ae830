"""Dead letters: queue items the bridge gave up on. Their room is told what was not bridged,
and admins list and retry them with the ``deadletters`` command (``commands/deadletters.py``)."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import Any

from ..db import DeadLetter, Portal
from ..logsafe import pii
from .notices import Notices
from .util import txn_id

log = logging.getLogger("bridge.deadletters")

SNIPPET = 200
"""Characters of a lost message's text quoted in the notice."""
_WHAT = {
    "message": "a message", "edit": "an edit", "delete": "a deletion", "reaction": "a reaction",
    "reaction_remove": "the removal of a reaction", "read_receipt": "a read receipt",
    "delivery_receipt": "a delivery receipt", "typing": "a typing notification",
    "delivery_failure": "a delivery failure report", "button_press": "a button press",
}  # fmt: skip


async def announce(notices: Notices, title: Callable[[str], str], dead: DeadLetter) -> None:
    """Tell the room of ``dead`` what was not bridged and how to retry it. A room that
    refuses the notice (4xx) is logged; the dead letter stays listed either way."""
    retry = f"Kept as dead letter {dead.id}; an admin can retry it with `deadletters retry "
    retry += f"{dead.id}`."
    txn = txn_id("dead-letter", str(dead.id), str(dead.failed_at))
    if dead.kind == "catchup" and dead.room_id:
        reason = (
            "the bridge could not read this room back after the homeserver's outage, so a "
            f"message sent during it may not have reached the customer ({dead.error}). {retry}"
        )
        await notices.failure(dead.room_id, None, reason, txn=txn)
        return
    if dead.kind == "matrix":
        event_id = dead.payload.get("event_id")
        if not dead.room_id:
            log.error("Dead letter %d has no room to tell: %s", dead.id, pii(dead.error))
            return
        reply_to = event_id if isinstance(event_id, str) else None
        await notices.failure(dead.room_id, reply_to, f"{dead.error}. {retry}", txn=txn)
        return
    if dead.kind == "outbound":
        room_id, what = await _outbound_room(dead.payload)
    else:
        room_id, what = await _remote_room(title, dead.payload)
    if room_id is None:
        log.error(
            "Dead letter %d (%s) has no portal room to tell: %s",
            dead.id,
            pii(what),
            pii(dead.error),
        )
        return
    text = f"⚠️ Not bridged: {what}. Reason: {dead.error}. {retry}"
    html_text = (
        f"⚠️ <b>Not bridged:</b> {html.escape(what)}. Reason: {html.escape(dead.error)}. "
        f"{html.escape(retry)}"
    )
    await notices.send(room_id, text, html_text=html_text, txn=txn)


async def _outbound_room(payload: dict[str, Any]) -> tuple[str | None, str]:
    """The portal room of a bridge-initiated message and a description of it."""
    account, chat, text = payload.get("account"), payload.get("chat"), payload.get("text")
    what = "a message the bridge started"
    if isinstance(text, str) and text.strip():
        what += f": “{short(text.strip(), SNIPPET)}”"
    if not (isinstance(account, str) and isinstance(chat, str)):
        return None, what
    portal = await Portal.get(account, chat)
    return (portal.room_id if portal and portal.room_id else None), what


async def _remote_room(
    title: Callable[[str], str], payload: dict[str, Any]
) -> tuple[str | None, str]:
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
            what += f" from {short(name, 100)}"
    what += f" ({title(account)})"
    text = event.get("text")
    if isinstance(text, str) and text.strip():
        what += f": “{short(text.strip(), SNIPPET)}”"
    attachments = event.get("attachments")
    if isinstance(attachments, list | tuple) and attachments:
        what += f" with {len(attachments)} attachment{'s' * (len(attachments) != 1)}"
    if not isinstance(chat_id, str):
        return None, what
    portal = await Portal.get(account, chat_id)
    return (portal.room_id if portal and portal.room_id else None), what


def short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
