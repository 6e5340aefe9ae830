from __future__ import annotations

import json
from typing import Any, ClassVar

from attrs import define, field
from mautrix.util.async_db import Database

Record = Any

_COLUMNS = "account, remote_user, mxid, displayname, avatar_url, metadata"


@define
class Ghost:
    """A remote user and the Matrix user that stands for them."""

    db: ClassVar[Database]

    account: str
    remote_user: str
    mxid: str
    displayname: str | None = None
    avatar_url: str | None = None
    metadata: dict[str, Any] = field(factory=dict)

    @classmethod
    def _from_row(cls, row: Record | None) -> Ghost | None:
        if row is None:
            return None
        data = dict(row)
        data["metadata"] = json.loads(data["metadata"])
        return cls(**data)

    @classmethod
    async def get(cls, account: str, remote_user: str) -> Ghost | None:
        q = f"SELECT {_COLUMNS} FROM ghost WHERE account=$1 AND remote_user=$2"
        return cls._from_row(await cls.db.fetchrow(q, account, remote_user))

    @classmethod
    async def get_by_mxid(cls, mxid: str) -> Ghost | None:
        q = f"SELECT {_COLUMNS} FROM ghost WHERE mxid=$1"
        return cls._from_row(await cls.db.fetchrow(q, mxid))

    def _values(self) -> tuple[Any, ...]:
        return (
            self.account,
            self.remote_user,
            self.mxid,
            self.displayname,
            self.avatar_url,
            json.dumps(self.metadata),
        )

    async def insert(self) -> None:
        q = f"INSERT INTO ghost ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        await self.db.execute(q, *self._values())

    async def save(self) -> None:
        q = (
            "UPDATE ghost SET mxid=$3, displayname=$4, avatar_url=$5, metadata=$6 "
            "WHERE account=$1 AND remote_user=$2"
        )
        await self.db.execute(q, *self._values())
