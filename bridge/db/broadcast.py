"""The broadcasts' tables: ``broadcast`` (a list's message, its state and its progress notice)
and ``broadcast_recipient`` (one row per contact and channel account, written when the
broadcast starts: the durable record of what reached whom, and why not).

A broadcast's states: ``draft`` (waiting for ``send``; a newer draft makes it ``discarded``),
``scheduled``, ``running``, ``paused``, ``cancelled``, ``done``. A recipient's: ``pending``,
``sending`` (handed to the channel, its outcome not yet recorded: after a crash it is sent
again with the same key), ``sent``, ``delivered``, ``read``, ``failed``, ``skipped``."""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from typing import Any, ClassVar

from attrs import define
from mautrix.util.async_db import Connection, Database

_BROADCAST = (
    "id, list, room_id, state, content, created_by, created_at, scheduled_at, started_at, "
    "finished_at, snapshot_done, progress_event, in_flight, in_flight_keyed"
)
_RECIPIENT = "broadcast, contact, account, chat, status, message_id, reason, attempts, updated"
OPEN = ("pending", "sending")
ACTIVE = ("scheduled", "running", "paused")
STATUSES = ("pending", "sending", "sent", "delivered", "read", "failed", "skipped")
# A receipt moves a recipient forward only: from the statuses listed to its own.
RECEIPT_FROM = {
    "delivered": ("sent",),
    "read": ("sent", "delivered"),
    "failed": ("sent", "delivered"),
}


@define
class Broadcast:
    db: ClassVar[Database]

    id: int
    list: str
    room_id: str
    state: str
    content: dict[str, Any]
    """The message: ``text``, ``html``, ``media`` (a ``MediaRef``'s fields) or None."""
    created_by: str
    created_at: int
    scheduled_at: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    snapshot_done: bool = False
    progress_event: str | None = None
    in_flight: int = 0
    """Recipients found ``sending`` at a resume on channels that cannot recognise a repeat."""
    in_flight_keyed: int = 0
    """The same on channels that recognise the key (webhook, email)."""

    @classmethod
    def _from(cls, row: Any) -> Broadcast:
        data = dict(row)
        data["content"] = json.loads(data["content"])
        data["snapshot_done"] = bool(data["snapshot_done"])
        return cls(**data)

    @classmethod
    async def create(
        cls, list_: str, room_id: str, content: dict[str, Any], by: str, now: int
    ) -> Broadcast:
        id_ = await cls.db.fetchval(
            "INSERT INTO broadcast (list, room_id, state, content, created_by, created_at) "
            "VALUES ($1, $2, 'draft', $3, $4, $5) RETURNING id",
            list_, room_id, json.dumps(content), by, now,
        )  # fmt: skip
        return cls(int(id_), list_, room_id, "draft", content, by, now)

    @classmethod
    async def get(cls, id_: int) -> Broadcast | None:
        row = await cls.db.fetchrow(f"SELECT {_BROADCAST} FROM broadcast WHERE id=$1", id_)
        return None if row is None else cls._from(row)

    @classmethod
    async def latest(cls, list_: str, states: Sequence[str]) -> Broadcast | None:
        """The newest broadcast of ``list_`` in one of ``states``."""
        marks = ", ".join(f"${n + 2}" for n in range(len(states)))
        row = await cls.db.fetchrow(
            f"SELECT {_BROADCAST} FROM broadcast WHERE list=$1 AND state IN ({marks}) "
            "ORDER BY id DESC LIMIT 1",
            list_, *states,
        )  # fmt: skip
        return None if row is None else cls._from(row)

    @classmethod
    async def in_states(cls, states: Sequence[str]) -> builtins.list[Broadcast]:
        marks = ", ".join(f"${n + 1}" for n in range(len(states)))
        rows = await cls.db.fetch(
            f"SELECT {_BROADCAST} FROM broadcast WHERE state IN ({marks}) ORDER BY id", *states
        )
        return [cls._from(r) for r in rows]

    @classmethod
    async def discard_drafts(cls, list_: str) -> None:
        await cls.db.execute(
            "UPDATE broadcast SET state='discarded' WHERE list=$1 AND state='draft'", list_
        )

    @classmethod
    async def move(cls, id_: int, states: Sequence[str], to: str, **values: Any) -> bool:
        """Set the state to ``to`` (and the columns in ``values``) if it is one of ``states``;
        whether it was."""
        sets = ", ".join(f"{name}=${n + 3}" for n, name in enumerate(values))
        marks = ", ".join(f"${n + 3 + len(values)}" for n in range(len(states)))
        result = await cls.db.fetchval(
            f"UPDATE broadcast SET state=$2{', ' if sets else ''}{sets} "
            f"WHERE id=$1 AND state IN ({marks}) RETURNING id",
            id_, to, *values.values(), *states,
        )  # fmt: skip
        return result is not None

    @classmethod
    async def set(cls, id_: int, **values: Any) -> None:
        sets = ", ".join(f"{name}=${n + 2}" for n, name in enumerate(values))
        await cls.db.execute(f"UPDATE broadcast SET {sets} WHERE id=$1", id_, *values.values())

    @classmethod
    async def add_in_flight(cls, id_: int, unkeyed: int, keyed: int) -> None:
        await cls.db.execute(
            "UPDATE broadcast SET in_flight=in_flight+$2, in_flight_keyed=in_flight_keyed+$3 "
            "WHERE id=$1",
            id_, unkeyed, keyed,
        )  # fmt: skip


@define
class Recipient:
    db: ClassVar[Database]

    broadcast: int
    contact: int
    account: str
    chat: str
    status: str = "pending"
    message_id: str | None = None
    reason: str | None = None
    attempts: int = 0
    updated: int = 0

    @classmethod
    async def add_many(cls, rows: Sequence[Recipient]) -> None:
        """Insert a page of recipients; one already there stays as it is."""
        if not rows:
            return
        conn: Connection
        async with cls.db.acquire() as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO broadcast_recipient (broadcast, contact, account, chat, status, "
                "attempts, updated) VALUES ($1, $2, $3, $4, 'pending', 0, $5) "
                "ON CONFLICT (broadcast, contact, account) DO NOTHING",
                [(r.broadcast, r.contact, r.account, r.chat, r.updated) for r in rows],
            )

    @classmethod
    async def page(
        cls, broadcast: int, after: tuple[int, str], limit: int, statuses: Sequence[str] = OPEN
    ) -> list[Recipient]:
        """Recipients of ``broadcast`` in ``statuses`` after ``(contact, account)``, in that
        order."""
        marks = ", ".join(f"${n + 5}" for n in range(len(statuses)))
        rows = await cls.db.fetch(
            f"SELECT {_RECIPIENT} FROM broadcast_recipient WHERE broadcast=$1 "
            f"AND status IN ({marks}) AND (contact > $2 OR (contact = $2 AND account > $3)) "
            "ORDER BY contact, account LIMIT $4",
            broadcast, after[0], after[1], limit, *statuses,
        )  # fmt: skip
        return [cls(**dict(r)) for r in rows]

    @classmethod
    async def counts(cls, broadcast: int) -> dict[str, int]:
        rows = await cls.db.fetch(
            "SELECT status, COUNT(*) AS n FROM broadcast_recipient WHERE broadcast=$1 "
            "GROUP BY status",
            broadcast,
        )
        return {str(r["status"]): int(r["n"]) for r in rows}

    @classmethod
    async def counts_by_account(cls, broadcast: int, statuses: Sequence[str]) -> dict[str, int]:
        marks = ", ".join(f"${n + 2}" for n in range(len(statuses)))
        rows = await cls.db.fetch(
            "SELECT account, COUNT(*) AS n FROM broadcast_recipient WHERE broadcast=$1 "
            f"AND status IN ({marks}) GROUP BY account",
            broadcast, *statuses,
        )  # fmt: skip
        return {str(r["account"]): int(r["n"]) for r in rows}

    @classmethod
    async def reasons(cls, broadcast: int, status: str) -> list[tuple[str, int]]:
        rows = await cls.db.fetch(
            "SELECT reason, COUNT(*) AS n FROM broadcast_recipient WHERE broadcast=$1 "
            "AND status=$2 GROUP BY reason ORDER BY n DESC, reason",
            broadcast, status,
        )  # fmt: skip
        return [(str(r["reason"] or ""), int(r["n"])) for r in rows]

    async def mark(self, status: str, now: int, **values: Any) -> None:
        """Record ``status`` (and ``message_id``, ``reason``, ``attempts`` given)."""
        self.status, self.updated = status, now
        for name, value in values.items():
            setattr(self, name, value)
        sets = "".join(f", {name}=${n + 6}" for n, name in enumerate(values))
        await self.db.execute(
            f"UPDATE broadcast_recipient SET status=$4, updated=$5{sets} "
            "WHERE broadcast=$1 AND contact=$2 AND account=$3",
            self.broadcast, self.contact, self.account, status, now, *values.values(),
        )  # fmt: skip

    @classmethod
    async def close_open(cls, broadcast: int, reason: str, now: int) -> None:
        """Every recipient still open becomes ``skipped`` with ``reason`` (a cancel); one that
        was in flight at a stop says it may have got the message."""
        for status, why in (("pending", reason), ("sending", f"{reason} (in flight at a stop)")):
            await cls.db.execute(
                "UPDATE broadcast_recipient SET status='skipped', reason=$3, updated=$4 "
                "WHERE broadcast=$1 AND status=$2",
                broadcast, status, why, now,
            )  # fmt: skip

    @classmethod
    async def receipt(cls, account: str, message_id: str, status: str, reason: str | None,
                      now: int) -> bool:  # fmt: skip
        """A receipt for a broadcast message: the recipient moves on to ``status``; False if
        the message is no broadcast's (or the recipient is further already)."""
        before = RECEIPT_FROM[status]
        marks = ", ".join(f"${n + 6}" for n in range(len(before)))
        rows = await cls.db.fetch(
            "UPDATE broadcast_recipient SET status=$3, reason=COALESCE($4, reason), updated=$5 "
            f"WHERE account=$1 AND message_id=$2 AND status IN ({marks}) RETURNING contact",
            account, message_id, status, reason, now, *before,
        )  # fmt: skip
        return bool(rows)
