"""The team inbox's tables: ``inbox_conversation`` (a conversation's team, status, assignee
and the bot answering first), ``inbox_agent`` (a staff member's away/available switch) and
``inbox_team`` (a team's round-robin position, its room, space and queue view). Every write
touches only the columns it changes. Queries that run inside ``transaction()`` share its
connection; on PostgreSQL the ``lock=True`` variants take row locks, on SQLite the
transaction's write lock already holds the whole database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from attrs import define
from mautrix.util.async_db import Connection, Database, Scheme

from .inbox_figures import InboxPause
from .keys import digest

Record = Any

STATUSES = ("open", "pending", "snoozed", "resolved")

_COLUMNS = (
    "account, chat, team, status, assignee, last_assignee, waiting_since, snoozed_until, "
    "created_at, updated_at, first_response_at, resolved_at, bot"
)
_WAITING_ORDER = "ORDER BY (waiting_since IS NULL), waiting_since, created_at, chat_key"
"""Longest waiting first; conversations nobody waits in (NULL) after them."""
NO_LIMIT = 1 << 62


def _row_locks(db: Database, clause: str) -> str:
    """``clause`` (``FOR UPDATE``...) on PostgreSQL; SQLite has no row locks and needs none."""
    return "" if db.scheme == Scheme.SQLITE else f" {clause}"


def _placeholders(count: int, first: int) -> str:
    return ", ".join(f"${n}" for n in range(first, first + count))


@asynccontextmanager
async def transaction() -> AsyncIterator[None]:
    """One transaction for every inbox query this task makes inside it. On SQLite its first
    statement should be a write, which takes the database's write lock at once."""
    conn: Connection
    async with InboxConversation.db.acquire() as conn, conn.transaction():
        yield


@define
class InboxConversation:
    db: ClassVar[Database]

    account: str
    chat: str
    team: str
    status: str
    assignee: str | None
    last_assignee: str | None
    """The most recent assignee, kept when the conversation is unassigned or resolved."""
    waiting_since: int | None
    """Since when the customer waits for an answer (ms); None when nobody waits."""
    snoozed_until: int | None
    created_at: int
    updated_at: int
    first_response_at: int | None
    resolved_at: int | None
    bot: str | None = None
    """The bot that owns the conversation (it is ``pending`` then, and nobody waits)."""

    @property
    def with_bot(self) -> str | None:
        """The bot answering the conversation now, None when the humans have it."""
        return self.bot if self.status == "pending" else None

    @classmethod
    def _from_row(cls, row: Record) -> InboxConversation:
        return cls(**dict(row))

    @classmethod
    async def get(cls, account: str, chat: str) -> InboxConversation | None:
        row = await cls.db.fetchrow(
            f"SELECT {_COLUMNS} FROM inbox_conversation WHERE account=$1 AND chat_key=$2",
            account,
            digest(chat),
        )
        return None if row is None else cls._from_row(row)

    @classmethod
    async def create(
        cls, account: str, chat: str, team: str, now: int, bot: str | None = None
    ) -> InboxConversation | None:
        """A new open, unassigned conversation of ``team`` whose customer waits since
        ``now``; with ``bot``, pending with that bot, and nobody waits. Returns the new row;
        None (and nothing changes) when the conversation has its row already."""
        row = await cls.db.fetchrow(
            "INSERT INTO inbox_conversation (account, chat_key, chat, team, status, "
            " waiting_since, created_at, updated_at, bot) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, "
            f"$8) ON CONFLICT (account, chat_key) DO NOTHING RETURNING {_COLUMNS}",
            account, digest(chat), chat, team, "pending" if bot else "open",
            None if bot else now, now, bot,
        )  # fmt: skip
        if row is not None and bot:
            await InboxPause.change(account, chat, "pending", now)
        return None if row is None else cls._from_row(row)

    @classmethod
    async def hand_over(
        cls, account: str, chat: str, bot: str, team: str, now: int, to: str | None = None
    ) -> bool:
        """``bot`` lets go: the conversation is open in ``team``'s queue (given to ``to`` at
        once, when named), its customer waiting since ``now``. False (nothing changed) when
        ``bot`` did not have it (any more), so of two racing hand-overs exactly one changes
        the row."""
        sets = "bot=NULL, status='open', team=$4, waiting_since=$5, updated_at=$5"
        where = " AND status='pending' AND bot=$3"
        args: tuple[Any, ...] = (bot, team, now)
        if to is not None:
            sets += ", assignee=$6, last_assignee=$6"
            args += (to,)
        return await cls._changed_status(account, chat, "open", now, sets, where, *args)

    @classmethod
    async def _changed_status(
        cls, account: str, chat: str, status: str, now: int, sets: str, where: str, *args: Any
    ) -> bool:
        """``_update`` to ``status`` if ``where`` holds; the pauses follow when it changed."""
        changed = await cls._update(account, chat, sets, *args, where=where, returning="chat_key")
        if changed is None:
            return False
        await InboxPause.change(account, chat, status, now)
        return True

    @classmethod
    async def touch(cls, account: str, chat: str, now: int) -> None:
        """Something happened in the conversation (its idle time starts again)."""
        await cls._update(account, chat, "updated_at=$3", now)

    @classmethod
    async def lock(cls, account: str, chat: str, now: int) -> InboxConversation | None:
        """The conversation, its row locked (a write: the first statement of a transaction
        on SQLite takes the write lock with it) until the transaction ends."""
        row = await cls.db.fetchrow(
            "UPDATE inbox_conversation SET updated_at=$3 WHERE account=$1 AND chat_key=$2 "
            f"RETURNING {_COLUMNS}",
            account, digest(chat), now,
        )  # fmt: skip
        return None if row is None else cls._from_row(row)

    @classmethod
    async def queue(
        cls, team: str, limit: int = NO_LIMIT, lock: bool = False
    ) -> list[InboxConversation]:
        """``team``'s open unassigned conversations, longest waiting first. With ``lock``,
        rows another transaction holds are skipped and the rest stay locked until the
        transaction ends."""
        rows = await cls.db.fetch(
            f"SELECT {_COLUMNS} FROM inbox_conversation "
            f"WHERE team=$1 AND status='open' AND assignee IS NULL {_WAITING_ORDER} LIMIT $2"
            + (_row_locks(cls.db, "FOR UPDATE SKIP LOCKED") if lock else ""),
            team,
            limit,
        )
        return [cls._from_row(row) for row in rows]

    @classmethod
    async def assigned_to(
        cls, mxid: str, statuses: Sequence[str] = STATUSES
    ) -> list[InboxConversation]:
        """``mxid``'s conversations in ``statuses``, longest waiting first."""
        rows = await cls.db.fetch(
            f"SELECT {_COLUMNS} FROM inbox_conversation WHERE assignee=$1 "
            f"AND status IN ({_placeholders(len(statuses), 2)}) {_WAITING_ORDER}",
            mxid,
            *statuses,
        )
        return [cls._from_row(row) for row in rows]

    @classmethod
    async def listing(
        cls,
        teams: Sequence[str],
        accounts: Sequence[str],
        filters: dict[str, str],
        offset: int,
        limit: int,
    ) -> list[InboxConversation]:
        """The conversations of ``teams`` and ``accounts`` matching ``filters`` (column ->
        value: ``status``, ``team``, ``assignee``, ``account``), oldest first, a page of them
        (``offset``, ``limit``)."""
        if not teams or not accounts:
            return []
        where = (
            f"team IN ({_placeholders(len(teams), 1)}) "
            f"AND account IN ({_placeholders(len(accounts), len(teams) + 1)})"
        )
        args: list[Any] = [*teams, *accounts]
        for column in ("status", "team", "assignee", "account"):
            if column in filters:
                args.append(filters[column])
                where += f" AND {column}=${len(args)}"
        args += [limit, offset]
        return await cls._select(
            f"{where} ORDER BY created_at, account, chat_key "
            f"LIMIT ${len(args) - 1} OFFSET ${len(args)}",
            *args,
        )

    @classmethod
    async def open_counts(cls, members: Sequence[str]) -> dict[str, int]:
        """How many open conversations each of ``members`` is assigned, over every team."""
        counts = dict.fromkeys(members, 0)
        if not members:
            return counts
        rows = await cls.db.fetch(
            "SELECT assignee, COUNT(*) AS n FROM inbox_conversation WHERE status='open' "
            f"AND assignee IN ({_placeholders(len(members), 1)}) GROUP BY assignee",
            *members,
        )
        for row in rows:
            counts[row["assignee"]] = int(row["n"])
        return counts

    @classmethod
    async def _update(
        cls, account: str, chat: str, sets: str, *args: Any, where: str = "", returning: str = ""
    ) -> Any:
        """``UPDATE ... SET sets`` of the conversation (``$1``, ``$2``: its key; ``args`` from
        ``$3``), only if ``where`` holds; the ``returning`` column, None if no row changed."""
        query = f"UPDATE inbox_conversation SET {sets} WHERE account=$1 AND chat_key=$2{where}"
        if not returning:
            await cls.db.execute(query, account, digest(chat), *args)
            return None
        return await cls.db.fetchval(
            f"{query} RETURNING {returning}", account, digest(chat), *args
        )

    @classmethod
    async def claim(cls, account: str, chat: str, mxid: str, now: int) -> bool:
        """Assign the conversation to ``mxid`` if it has no assignee: of two racing claims
        exactly one changes the row."""
        sets = "assignee=$3, last_assignee=$3, updated_at=$4"
        won = await cls._update(
            account, chat, sets, mxid, now, where=" AND assignee IS NULL", returning="assignee"
        )
        return won is not None

    @classmethod
    async def assign(cls, account: str, chat: str, mxid: str, now: int) -> None:
        """Assign the conversation to ``mxid``, whoever had it before."""
        await cls._update(account, chat, "assignee=$3, last_assignee=$3, updated_at=$4", mxid, now)

    @classmethod
    async def unassign(cls, account: str, chat: str, now: int) -> str | None:
        """Clear the assignee (``last_assignee`` keeps it); returns who had it, or None."""
        return await cls._update(
            account, chat, "assignee=NULL, updated_at=$3", now,
            where=" AND assignee IS NOT NULL", returning="last_assignee",
        )  # fmt: skip

    @classmethod
    async def set_status(
        cls, account: str, chat: str, status: str, now: int, snoozed_until: int | None = None
    ) -> None:
        """``snoozed_until`` is kept only for ``snoozed``; ``resolved_at`` is set on
        ``resolved`` and kept otherwise (the last resolution)."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        sets = (
            "status=$3, snoozed_until=$4, updated_at=$5, "
            "resolved_at=CASE WHEN $3='resolved' THEN $5 ELSE resolved_at END, "
            "bot=CASE WHEN $3='pending' THEN bot ELSE NULL END"
        )
        until = snoozed_until if status == "snoozed" else None
        await cls._update(account, chat, sets, status, until, now)
        await InboxPause.change(account, chat, status, now)

    @classmethod
    async def transfer(cls, account: str, chat: str, team: str, now: int) -> str | None:
        """Move the conversation to ``team``'s queue, unassigned; returns who had it (read
        under the row's lock, so of two transfers at once each names the one it took from)."""
        async with transaction():
            before = await cls.lock(account, chat, now)
            await cls._update(account, chat, "team=$3, assignee=NULL, updated_at=$4", team, now)
        return None if before is None else before.assignee

    @classmethod
    async def over_waiting_limit(cls, team: str, before: int) -> list[InboxConversation]:
        """``team``'s open conversations whose customer waits since ``before`` or earlier and
        whose team was not told of this wait yet."""
        return await cls._select(
            "team=$1 AND status='open' AND waiting_since <= $2 AND "
            f"(waiting_announced IS NULL OR waiting_announced <> waiting_since) {_WAITING_ORDER}",
            team, before,
        )  # fmt: skip

    @classmethod
    async def mark_announced(cls, account: str, chat: str, waiting_since: int) -> bool:
        """Note that this wait was told about; False if it was already (or has ended)."""
        marked = await cls._update(
            account, chat, "waiting_announced=$3", waiting_since,
            where=" AND waiting_since=$3 AND (waiting_announced IS NULL "
            "OR waiting_announced <> $3)",
            returning="chat_key",
        )  # fmt: skip
        return marked is not None

    @classmethod
    async def idle(cls, team: str, before: int) -> list[InboxConversation]:
        """``team``'s open or pending conversations nothing happened in since ``before``."""
        return await cls._select(
            "team=$1 AND status IN ('open', 'pending') AND updated_at <= $2 ORDER BY updated_at",
            team, before,
        )  # fmt: skip

    @classmethod
    async def _select(cls, where: str, *args: Any) -> list[InboxConversation]:
        rows = await cls.db.fetch(
            f"SELECT {_COLUMNS} FROM inbox_conversation WHERE {where}", *args
        )
        return [cls._from_row(row) for row in rows]

    @classmethod
    async def resolve_idle(cls, account: str, chat: str, before: int, now: int) -> bool:
        """Resolve the conversation if it is still open or pending and idle since ``before``;
        False if something happened since it was listed."""
        sets = "status='resolved', snoozed_until=NULL, resolved_at=$4, updated_at=$4, bot=NULL"
        where = " AND status IN ('open', 'pending') AND updated_at <= $3"
        return await cls._changed_status(account, chat, "resolved", now, sets, where, before, now)

    @classmethod
    async def counts(cls, team: str) -> tuple[int, int, int | None]:
        """``team``'s open conversations, how many of them nobody has, and since when the
        longest waiting customer waits (None: nobody waits)."""
        row: Record = await cls.db.fetchrow(
            "SELECT COUNT(*) AS open, "
            "SUM(CASE WHEN assignee IS NULL THEN 1 ELSE 0 END) AS unassigned, "
            "MIN(waiting_since) AS oldest "
            "FROM inbox_conversation WHERE team=$1 AND status='open'",
            team,
        )
        return int(row["open"]), int(row["unassigned"] or 0), row["oldest"]

    @classmethod
    async def customer_wrote(cls, account: str, chat: str, now: int) -> None:
        """The customer waits, since ``now`` unless they waited already."""
        sets = "waiting_since=COALESCE(waiting_since, $3), updated_at=$3"
        await cls._update(account, chat, sets, now)

    @classmethod
    async def staff_replied(cls, account: str, chat: str, now: int) -> None:
        """Nobody waits any more; the first reply's time is recorded once."""
        sets = (
            "waiting_since=NULL, updated_at=$3, first_response_at=COALESCE(first_response_at, $3)"
        )
        await cls._update(account, chat, sets, now)

    @classmethod
    async def due_snoozes(cls, now: int) -> list[InboxConversation]:
        """Snoozed conversations whose time has come."""
        rows = await cls.db.fetch(
            f"SELECT {_COLUMNS} FROM inbox_conversation "
            "WHERE status='snoozed' AND snoozed_until <= $1 ORDER BY snoozed_until",
            now,
        )
        return [cls._from_row(row) for row in rows]


@define
class InboxAgent:
    """A staff member's away/available switch, the same in every team. No row: available."""

    db: ClassVar[Database]

    mxid: str
    available: bool
    updated_at: int

    @classmethod
    async def get(cls, mxid: str) -> InboxAgent | None:
        row = await cls.db.fetchrow(
            "SELECT mxid, available, updated_at FROM inbox_agent WHERE mxid=$1", mxid
        )
        return None if row is None else cls(row["mxid"], bool(row["available"]), row["updated_at"])

    @classmethod
    async def set_available(cls, mxid: str, available: bool, now: int) -> None:
        await cls.db.execute(
            "INSERT INTO inbox_agent (mxid, available, updated_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (mxid) DO UPDATE SET available=excluded.available, "
            "updated_at=excluded.updated_at",
            mxid, available, now,
        )  # fmt: skip

    @classmethod
    async def availability(
        cls, members: Sequence[str], now: int, lock: bool = False
    ) -> dict[str, bool]:
        """Whether each of ``members`` is available. With ``lock`` (on PostgreSQL), their
        rows (created if missing) stay locked until the transaction ends, taken in one
        order so that two transactions never wait for each other."""
        members = sorted(set(members))
        if not members:
            return {}
        if lock and cls.db.scheme != Scheme.SQLITE:
            await cls.db.execute(
                "INSERT INTO inbox_agent (mxid, available, updated_at) VALUES "
                + ", ".join(f"(${n}, true, $1)" for n in range(2, len(members) + 2))
                + " ON CONFLICT (mxid) DO NOTHING",
                now,
                *members,
            )
        rows = await cls.db.fetch(
            "SELECT mxid, available FROM inbox_agent "
            f"WHERE mxid IN ({_placeholders(len(members), 1)}) ORDER BY mxid"
            + (_row_locks(cls.db, "FOR UPDATE") if lock else ""),
            *members,
        )
        found = {row["mxid"]: bool(row["available"]) for row in rows}
        return {mxid: found.get(mxid, True) for mxid in members}


@define
class TeamRooms:
    """A team's room, its space and the queue view notice in its room."""

    team: str
    room_id: str | None
    space_id: str | None
    queue_event_id: str | None
    queue_text: str | None
    """What the queue view shows now (it is edited only when this changes)."""
    queue_shown: list[tuple[str, str]]
    """The conversations (account, chat) of the view's numbered lines, in their order."""


@define
class InboxTeam:
    """A team's round-robin position: the member assigned last; and its rooms."""

    db: ClassVar[Database]

    team: str
    rr_cursor: str | None

    @classmethod
    async def lock(cls, team: str) -> str | None:
        """The team's cursor, its row (created if missing) locked until the transaction
        ends; a write, so on SQLite it takes the write lock as the first statement."""
        return await cls.db.fetchval(
            "INSERT INTO inbox_team (team, rr_cursor) VALUES ($1, NULL) "
            "ON CONFLICT (team) DO UPDATE SET rr_cursor=inbox_team.rr_cursor "
            "RETURNING rr_cursor",
            team,
        )

    @classmethod
    async def set_cursor(cls, team: str, mxid: str | None) -> None:
        await cls.db.execute(
            "INSERT INTO inbox_team (team, rr_cursor) VALUES ($1, $2) "
            "ON CONFLICT (team) DO UPDATE SET rr_cursor=excluded.rr_cursor",
            team,
            mxid,
        )

    @classmethod
    async def rooms(cls, team: str) -> TeamRooms:
        row = await cls.db.fetchrow(
            "SELECT team, room_id, space_id, queue_event_id, queue_text, queue_shown "
            "FROM inbox_team WHERE team=$1",
            team,
        )
        if row is None:
            return TeamRooms(team, None, None, None, None, [])
        shown = [(account, chat) for account, chat in json.loads(row["queue_shown"] or "[]")]
        return TeamRooms(
            row["team"], row["room_id"], row["space_id"], row["queue_event_id"],
            row["queue_text"], shown,
        )  # fmt: skip

    @classmethod
    async def in_room(cls, room_id: str) -> list[str]:
        """The teams whose room ``room_id`` is (one, unless teams share a configured room)."""
        rows = await cls.db.fetch(
            "SELECT team FROM inbox_team WHERE room_id=$1 ORDER BY team", room_id
        )
        return [row["team"] for row in rows]

    @classmethod
    async def set_rooms(cls, team: str, room_id: str, space_id: str) -> None:
        await cls.db.execute(
            "INSERT INTO inbox_team (team, room_id, space_id) VALUES ($1, $2, $3) "
            "ON CONFLICT (team) DO UPDATE SET room_id=excluded.room_id, "
            "space_id=excluded.space_id",
            team, room_id, space_id,
        )  # fmt: skip

    @classmethod
    async def set_queue(
        cls, team: str, event_id: str, text: str, shown: Sequence[tuple[str, str]]
    ) -> None:
        await cls.db.execute(
            "UPDATE inbox_team SET queue_event_id=$2, queue_text=$3, queue_shown=$4 "
            "WHERE team=$1",
            team, event_id, text, json.dumps([list(key) for key in shown]),
        )  # fmt: skip
