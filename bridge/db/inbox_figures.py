"""The team inbox's service figures: ``inbox_response`` (one row per response or resolution
time, in wall-clock and business seconds) and ``inbox_pause`` (the spans a conversation spent
pending, snoozed or resolved, which business-time figures leave out)."""

from __future__ import annotations

from typing import Any, ClassVar

from attrs import define
from mautrix.util.async_db import Database

from .keys import digest

KINDS = ("first", "next", "resolution")
PAUSED = ("pending", "snoozed", "resolved")

_RESPONSE_COLUMNS = "team, kind, waited_from, answered_at, seconds, business_seconds"


@define
class InboxResponse:
    """How long a customer waited for a staff reply (``first``, ``next``) or a conversation
    took from its (re)opening to its resolution (``resolution``)."""

    db: ClassVar[Database]

    team: str
    kind: str
    waited_from: int
    answered_at: int
    seconds: int
    business_seconds: int

    async def insert(self, account: str, chat: str) -> None:
        """Kept once per wait: a retried reply or resolution adds nothing."""
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}")
        await self.db.execute(
            f"INSERT INTO inbox_response (account, chat_key, {_RESPONSE_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (account, chat_key, kind, waited_from) DO NOTHING",
            account, digest(chat), self.team, self.kind, self.waited_from, self.answered_at,
            self.seconds, self.business_seconds,
        )  # fmt: skip

    @classmethod
    async def of(cls, account: str, chat: str) -> list[InboxResponse]:
        rows = await cls.db.fetch(
            f"SELECT {_RESPONSE_COLUMNS} FROM inbox_response WHERE account=$1 AND chat_key=$2 "
            "ORDER BY answered_at, kind",
            account,
            digest(chat),
        )
        return [cls(**dict(row)) for row in rows]

    @classmethod
    async def since(cls, team: str, kind: str, since: int) -> list[InboxResponse]:
        """``team``'s figures of ``kind`` answered at or after ``since``."""
        rows = await cls.db.fetch(
            f"SELECT {_RESPONSE_COLUMNS} FROM inbox_response "
            "WHERE team=$1 AND kind=$2 AND answered_at >= $3 ORDER BY answered_at",
            team,
            kind,
            since,
        )
        return [cls(**dict(row)) for row in rows]


@define
class InboxPause:
    """A span the conversation was pending, snoozed or resolved; ``ended_at`` None: still."""

    db: ClassVar[Database]

    status: str
    started_at: int
    ended_at: int | None

    @classmethod
    async def change(cls, account: str, chat: str, status: str, now: int) -> None:
        """The conversation's status became ``status`` at ``now``: the running pause ends, and
        a new one starts if ``status`` is one."""
        key = digest(chat)
        await cls.db.execute(
            "UPDATE inbox_pause SET ended_at=$3 "
            "WHERE account=$1 AND chat_key=$2 AND ended_at IS NULL",
            account, key, now,
        )  # fmt: skip
        if status in PAUSED:
            await cls.db.execute(
                "INSERT INTO inbox_pause (account, chat_key, status, started_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (account, chat_key, started_at) "
                "DO UPDATE SET status=excluded.status, ended_at=NULL",
                account, key, status, now,
            )  # fmt: skip

    @classmethod
    async def between(cls, account: str, chat: str, start: int, end: int) -> list[InboxPause]:
        """The pauses that overlap ``[start, end)``, oldest first."""
        rows: Any = await cls.db.fetch(
            "SELECT status, started_at, ended_at FROM inbox_pause "
            "WHERE account=$1 AND chat_key=$2 AND started_at < $4 "
            "AND (ended_at IS NULL OR ended_at > $3) ORDER BY started_at",
            account, digest(chat), start, end,
        )  # fmt: skip
        return [cls(**dict(row)) for row in rows]

    @classmethod
    async def last_resolved_end(cls, account: str, chat: str) -> int | None:
        """When the conversation was last reopened after a resolution (None: never)."""
        return await cls.db.fetchval(
            "SELECT MAX(ended_at) FROM inbox_pause "
            "WHERE account=$1 AND chat_key=$2 AND status='resolved' AND ended_at IS NOT NULL",
            account,
            digest(chat),
        )
