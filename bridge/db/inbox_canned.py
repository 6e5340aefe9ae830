"""The ``inbox_canned`` table: canned replies added by commands, each a team's or a staff
member's own (exactly one of ``team`` and ``owner`` is set)."""

from __future__ import annotations

from typing import Any, ClassVar

from attrs import define
from mautrix.util.async_db import Database

Record = Any

_COLUMNS = "team, owner, code, text, created_by, created_at"


@define
class InboxCanned:
    db: ClassVar[Database]

    team: str | None
    owner: str | None
    """The staff member whose own reply it is; None for a team's."""
    code: str
    text: str
    created_by: str
    created_at: int

    @classmethod
    def _from_row(cls, row: Record) -> InboxCanned:
        data = dict(row)
        return cls(**{**data, "team": data["team"] or None, "owner": data["owner"] or None})

    @classmethod
    async def get(
        cls, code: str, *, team: str | None = None, owner: str | None = None
    ) -> InboxCanned | None:
        row = await cls.db.fetchrow(
            f"SELECT {_COLUMNS} FROM inbox_canned WHERE team=$1 AND owner=$2 AND code=$3",
            team or "",
            owner or "",
            code,
        )
        return None if row is None else cls._from_row(row)

    @classmethod
    async def all(cls, *, team: str | None = None, owner: str | None = None) -> list[InboxCanned]:
        """A team's (or a staff member's own) replies, by code."""
        rows = await cls.db.fetch(
            f"SELECT {_COLUMNS} FROM inbox_canned WHERE team=$1 AND owner=$2 ORDER BY code",
            team or "",
            owner or "",
        )
        return [cls._from_row(row) for row in rows]

    async def save(self) -> None:
        """Insert the reply, or replace the text of the one with its code."""
        await self.db.execute(
            f"INSERT INTO inbox_canned ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) "
            "ON CONFLICT (team, owner, code) DO UPDATE SET text=excluded.text, "
            "created_by=excluded.created_by, created_at=excluded.created_at",
            self.team or "", self.owner or "", self.code, self.text, self.created_by,
            self.created_at,
        )  # fmt: skip

    @classmethod
    async def remove(cls, code: str, *, team: str | None = None, owner: str | None = None) -> bool:
        """False when there was no such reply."""
        removed = await cls.db.fetchval(
            "DELETE FROM inbox_canned WHERE team=$1 AND owner=$2 AND code=$3 RETURNING code",
            team or "",
            owner or "",
            code,
        )
        return removed is not None
