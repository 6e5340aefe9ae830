"""Read-only queries of the data protection feature over the core's and the consent registry's
tables: the message mappings of a room's events (for an export) and what is held per channel
account (for ``privacy report``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from .message import LOOKUP_BATCH, Message


async def mappings(room_id: str, event_ids: Sequence[str]) -> dict[str, Message]:
    """The message mapping of each of ``event_ids`` (of ``room_id``) that crossed the bridge;
    the first part of a message cut into several parts stands for each of its events."""
    found: dict[str, Message] = {}
    for i in range(0, len(event_ids), LOOKUP_BATCH):
        batch = list(event_ids[i : i + LOOKUP_BATCH])
        marks = ", ".join(f"${n + 2}" for n in range(len(batch)))
        q = (
            "SELECT account, chat, message_id, part, event_id, room_id, sender, sender_mxid, "
            f"timestamp, metadata FROM message WHERE room_id=$1 AND event_id IN ({marks})"
        )
        for row in await Message.db.fetch(q, room_id, *batch):
            data = dict(row)
            data["metadata"] = json.loads(data["metadata"])
            found[data["event_id"]] = Message(**data)
    return found


@dataclass(frozen=True)
class Holdings:
    """What the bridge holds of the people of one channel account."""

    account: str
    contacts: int
    """Consent contacts with an identity on the account."""
    conversations: int
    """Portals (conversations with or without a room), group chats included."""
    ghosts: int
    messages: int
    """Message mappings (a message cut into parts counts once per part)."""
    media: int
    """Of those, files (recorded since the mappings note them)."""
    oldest: int | None
    """The oldest message, conversation or consent identity (ms), None when there is none."""


async def holdings(account: str) -> Holdings:
    db = Message.db

    async def one(query: str) -> int | None:
        value = await db.fetchval(query, account)
        return None if value is None else int(value)

    contacts = await one("SELECT COUNT(DISTINCT contact) FROM consent_identity WHERE account=$1")
    conversations = await one("SELECT COUNT(*) FROM portal WHERE account=$1")
    ghosts = await one("SELECT COUNT(*) FROM ghost WHERE account=$1")
    messages = await one("SELECT COUNT(*) FROM message WHERE account=$1")
    media = await one(
        "SELECT COUNT(*) FROM message WHERE account=$1 AND metadata LIKE '%\"media\":%'"
    )
    firsts = [
        await one("SELECT MIN(timestamp) FROM message WHERE account=$1"),
        await one("SELECT MIN(created_at) FROM portal WHERE account=$1"),
        await one("SELECT MIN(created_at) FROM consent_identity WHERE account=$1"),
    ]
    known = [f for f in firsts if f is not None and f > 0]
    return Holdings(
        account, contacts or 0, conversations or 0, ghosts or 0, messages or 0, media or 0,
        min(known) if known else None,
    )  # fmt: skip


async def open_jobs() -> dict[tuple[str, str], int]:
    """Privacy jobs not finished: (kind, state) -> how many."""
    rows = await Message.db.fetch(
        "SELECT kind, state, COUNT(*) AS n FROM privacy_job "
        "WHERE state IN ('pending', 'confirmed', 'running') GROUP BY kind, state"
    )
    return {(str(r["kind"]), str(r["state"])): int(r["n"]) for r in rows}
