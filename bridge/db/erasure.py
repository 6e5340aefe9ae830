"""The rows an erasure (``features/privacy/erase.py``) removes outside the core's own tables
(those go with ``Services.erase_conversation``): the inbox's rows of a conversation, the
broadcast recipients of a person's contacts, a person's ghost messages in group chats, and the
consent records of their contacts (listed in ``consent_erasure`` first: the one way rows leave
the consent ledger, see ``consent.py``); and two look-ups of the message mappings that find
what is a person's. Each deleting function is idempotent (a second run removes
nothing) and returns the rows removed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mautrix.util.async_db import Connection

from .keys import digest
from .privacy import PrivacyJob


def rows_touched(status: Any) -> int:
    """Rows a statement touched: asyncpg answers ``DELETE 3``, SQLite a cursor."""
    if isinstance(status, str):
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0
    return max(0, int(getattr(status, "rowcount", 0) or 0))


async def _delete(queries: Sequence[tuple[str, tuple[Any, ...]]]) -> int:
    removed = 0
    conn: Connection
    async with PrivacyJob.db.acquire() as conn, conn.transaction():
        for query, args in queries:
            removed += rows_touched(await conn.execute(query, *args))
    return removed


async def direct_links(account: str, remote: str) -> list[tuple[str, str]]:
    """(remote user, chat) pairs of ``account``'s message mappings in which ``remote`` is the
    writer or the chat, for chats in which that one remote user alone wrote (their direct chat,
    where no consent record links the two: a webhook's chat id is not its sender's id)."""
    rows = await PrivacyJob.db.fetch(
        "SELECT DISTINCT sender, chat FROM message WHERE account=$1 AND sender IS NOT NULL "
        "AND (sender=$2 OR chat=$2)",
        account, remote,
    )  # fmt: skip
    pairs = []
    for row in rows:
        writers = await PrivacyJob.db.fetchval(
            "SELECT COUNT(DISTINCT sender) FROM message WHERE account=$1 AND chat_key=$2 "
            "AND sender IS NOT NULL",
            account, digest(str(row["chat"])),
        )  # fmt: skip
        if writers == 1:
            pairs.append((str(row["sender"]), str(row["chat"])))
    return sorted(pairs)


async def rooms_written_in(mxids: Sequence[str]) -> list[str]:
    """The rooms in which one of ``mxids`` (ghosts) has bridged messages, by room id."""
    rooms: set[str] = set()
    for mxid in mxids:
        rows = await PrivacyJob.db.fetch(
            "SELECT DISTINCT room_id FROM message WHERE sender_mxid=$1", mxid
        )
        rooms.update(str(row["room_id"]) for row in rows)
    return sorted(rooms)


async def erase_inbox(account: str, chat: str) -> int:
    """The inbox's rows of a conversation (its status, response figures and pauses)."""
    key = (account, digest(chat))
    return await _delete(
        [
            (f"DELETE FROM {table} WHERE account=$1 AND chat_key=$2", key)
            for table in ("inbox_conversation", "inbox_response", "inbox_pause")
        ]
    )


async def erase_recipients(contacts: Sequence[int], chats: Sequence[tuple[str, str]]) -> int:
    """Broadcast recipient rows of ``contacts`` and of the (account, chat) pairs."""
    queries: list[tuple[str, tuple[Any, ...]]] = [
        ("DELETE FROM broadcast_recipient WHERE contact=$1", (contact,)) for contact in contacts
    ]
    queries += [
        ("DELETE FROM broadcast_recipient WHERE account=$1 AND chat=$2", pair) for pair in chats
    ]
    return await _delete(queries)


async def erase_ghost_messages(mxids: Sequence[str], senders: Sequence[tuple[str, str]]) -> int:
    """Message mappings of ``mxids`` (a person's ghosts, in group chats) and reaction mappings
    of ``senders`` ((account, remote user) pairs)."""
    queries: list[tuple[str, tuple[Any, ...]]] = [
        ("DELETE FROM message WHERE sender_mxid=$1", (mxid,)) for mxid in mxids
    ]
    queries += [("DELETE FROM reaction WHERE account=$1 AND sender=$2", pair) for pair in senders]
    return await _delete(queries)


async def erase_consent(contacts: Sequence[int], by: str, now: int) -> int:
    """The consent records of ``contacts``: each is listed in ``consent_erasure`` (the
    contact number and who erased it, no personal data), then its ledger events, identities and
    contact row are deleted, all in one transaction."""
    removed = 0
    conn: Connection
    async with PrivacyJob.db.acquire() as conn, conn.transaction():
        for contact in contacts:
            await conn.execute(
                "INSERT INTO consent_erasure (contact, erased_at, erased_by) VALUES ($1, $2, $3) "
                "ON CONFLICT (contact) DO NOTHING",
                contact, now, by,
            )  # fmt: skip
            for table, column in (
                ("consent_event", "contact"),
                ("consent_identity", "contact"),
                ("consent_contact", "id"),
            ):
                status = await conn.execute(f"DELETE FROM {table} WHERE {column}=$1", contact)
                removed += rows_touched(status)
    return removed


async def expire_pending(kind: str, created_before: int, now: int) -> list[int]:
    """Cancel the ``pending`` jobs of ``kind`` made before ``created_before``, their plans
    cleared; the ids of those cancelled."""
    rows = await PrivacyJob.db.fetch(
        "UPDATE privacy_job SET state='cancelled', updated_at=$3, plan='{}' "
        "WHERE kind=$1 AND state='pending' AND created_at<$2 RETURNING id",
        kind, created_before, now,
    )  # fmt: skip
    return sorted(int(row["id"]) for row in rows)
