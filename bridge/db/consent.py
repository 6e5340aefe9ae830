"""The consent registry's tables: ``consent_contact`` (a person; merged contacts point at the
one they were merged into), ``consent_identity`` (a person on a channel account: the remote
user, and the chat the bridge reaches them in), ``consent_text`` (every consent text shown,
stored once by its SHA-256) and ``consent_event``, the append-only ledger (the database
refuses to change or delete its rows, see ``upgrade/v12_consent.py``).

A merged contact's view is its own events and those of every contact merged into it; the
rows themselves stay as written.

Erasure (issue 14) is the one way rows leave the ledger: list the contact in
``consent_erasure`` (then the trigger lets its ``consent_event`` rows be deleted), delete its
events, identities and contact row in one transaction (``erasure.erase_consent``), and keep
only a suppression entry per identity, keyed with a secret of the bridge (HMAC, not an unsalted
hash that trying all phone numbers would find: ``privacy.Suppression``), so that the person is
never contacted again. ``consent_text`` rows hold no personal data and stay."""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from typing import Any, ClassVar

from attrs import define, field
from mautrix.util.async_db import Connection, Database

from .keys import digest

Record = Any

STEPS = ("requested", "confirmed", "declined", "withdrawn", "expired", "imported")
GIVEN = ("confirmed", "imported")
"""Steps after which a consent holds."""

_CONTACT = "id, created_at, merged_into, merged_by, merged_at"
_IDENTITY = "account, remote_user, chat, contact, created_at"
_EVENT = "id, contact, list, account, step, at, text_hash, evidence, trigger"


@define
class ConsentContact:
    db: ClassVar[Database]

    id: int
    created_at: int
    merged_into: int | None = None
    merged_by: str | None = None
    merged_at: int | None = None

    @classmethod
    async def create(cls, now: int) -> ConsentContact:
        id_ = await cls.db.fetchval(
            "INSERT INTO consent_contact (created_at) VALUES ($1) RETURNING id", now
        )
        return cls(int(id_), now)

    @classmethod
    async def get(cls, id_: int) -> ConsentContact | None:
        row = await cls.db.fetchrow(f"SELECT {_CONTACT} FROM consent_contact WHERE id=$1", id_)
        return None if row is None else cls(**dict(row))

    @classmethod
    async def members(cls, root: int) -> list[int]:
        """``root`` and every contact merged into it."""
        rows = await cls.db.fetch(
            "SELECT id FROM consent_contact WHERE id=$1 OR merged_into=$1 ORDER BY id", root
        )
        return [int(r["id"]) for r in rows]

    @classmethod
    async def merge(cls, into: int, other: int, by: str, now: int) -> None:
        """``other`` (and what was merged into it) becomes part of ``into``; its identities
        move over. One transaction."""
        conn: Connection
        async with cls.db.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE consent_contact SET merged_into=$1, merged_by=$3, merged_at=$4 "
                "WHERE id=$2 OR merged_into=$2",
                into, other, by, now,
            )  # fmt: skip
            await conn.execute(
                "UPDATE consent_identity SET contact=$1 WHERE contact=$2", into, other
            )


@define
class ConsentIdentity:
    db: ClassVar[Database]

    account: str
    remote_user: str
    chat: str
    """The remote chat the bridge reaches this identity in (its direct chat)."""
    contact: int
    created_at: int

    @classmethod
    async def get(cls, account: str, remote_user: str) -> ConsentIdentity | None:
        row = await cls.db.fetchrow(
            f"SELECT {_IDENTITY} FROM consent_identity WHERE account=$1 AND user_key=$2",
            account,
            digest(remote_user),
        )
        return None if row is None else cls(**dict(row))

    @classmethod
    async def by_chat(cls, account: str, chat: str) -> list[ConsentIdentity]:
        rows = await cls.db.fetch(
            f"SELECT {_IDENTITY} FROM consent_identity WHERE account=$1 AND chat_key=$2 "
            "ORDER BY created_at",
            account,
            digest(chat),
        )
        return [cls(**dict(r)) for r in rows]

    @classmethod
    async def of_contacts(cls, contacts: Sequence[int]) -> list[ConsentIdentity]:
        marks = ", ".join(f"${n + 1}" for n in range(len(contacts)))
        rows = await cls.db.fetch(
            f"SELECT {_IDENTITY} FROM consent_identity WHERE contact IN ({marks}) "
            "ORDER BY created_at, account",
            *contacts,
        )
        return [cls(**dict(r)) for r in rows]

    @classmethod
    async def on_account(cls, account: str, contacts: Sequence[int]) -> list[ConsentIdentity]:
        """The identities of ``contacts`` (not merged into others) on ``account``."""
        marks = ", ".join(f"${n + 2}" for n in range(len(contacts)))
        rows = await cls.db.fetch(
            f"SELECT {_IDENTITY} FROM consent_identity WHERE account=$1 "
            f"AND contact IN ({marks}) ORDER BY contact, created_at",
            account,
            *contacts,
        )
        return [cls(**dict(r)) for r in rows]

    async def insert(self) -> bool:
        """False when the identity was there already (a concurrent first message)."""
        done = await self.db.fetchval(
            "INSERT INTO consent_identity (account, user_key, remote_user, chat_key, chat, "
            "contact, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (account, user_key) DO NOTHING RETURNING contact",
            self.account, digest(self.remote_user), self.remote_user, digest(self.chat),
            self.chat, self.contact, self.created_at,
        )  # fmt: skip
        return done is not None


@define
class ConsentText:
    db: ClassVar[Database]

    hash: str
    list: str
    version: str
    text: str
    first_seen: int

    @classmethod
    async def store(cls, list_: str, version: str, text: str, hash_: str, now: int) -> None:
        await cls.db.execute(
            "INSERT INTO consent_text (hash, list, version, text, first_seen) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hash) DO NOTHING",
            hash_, list_, version, text, now,
        )  # fmt: skip

    @classmethod
    async def get(cls, hash_: str) -> ConsentText | None:
        row = await cls.db.fetchrow(
            "SELECT hash, list, version, text, first_seen FROM consent_text WHERE hash=$1", hash_
        )
        return None if row is None else cls(**dict(row))

    @classmethod
    async def of_version(cls, list_: str, version: str) -> builtins.list[ConsentText]:
        rows = await cls.db.fetch(
            "SELECT hash, list, version, text, first_seen FROM consent_text "
            "WHERE list=$1 AND version=$2 ORDER BY first_seen",
            list_,
            version,
        )
        return [cls(**dict(r)) for r in rows]


@define
class ConsentEvent:
    db: ClassVar[Database]

    id: int
    contact: int
    list: str
    account: str
    step: str
    at: int
    text_hash: str | None
    evidence: dict[str, Any] = field(factory=dict)
    trigger: str = ""

    @classmethod
    def _from_row(cls, row: Record) -> ConsentEvent:
        data = dict(row)
        data["evidence"] = json.loads(data["evidence"])
        return cls(**data)

    @classmethod
    async def append(
        cls,
        contact: int,
        list_: str,
        account: str,
        step: str,
        at: int,
        text_hash: str | None,
        evidence: dict[str, Any],
        trigger: str,
        cause: str | None = None,
    ) -> bool:
        """Append one step; with ``cause``, nothing when a step of that cause (for the list
        and account) is in the ledger already (False)."""
        done = await cls.db.fetchval(
            "INSERT INTO consent_event (contact, list, account, step, at, text_hash, "
            "evidence, trigger, cause_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "ON CONFLICT (account, list, cause_key) DO NOTHING RETURNING id",
            contact, list_, account, step, at, text_hash, json.dumps(evidence, sort_keys=True),
            trigger, None if cause is None else digest(cause),
        )  # fmt: skip
        return done is not None

    @classmethod
    async def history(cls, contacts: Sequence[int]) -> builtins.list[ConsentEvent]:
        """Every step of ``contacts``, oldest first."""
        marks = ", ".join(f"${n + 1}" for n in range(len(contacts)))
        rows = await cls.db.fetch(
            f"SELECT {_EVENT} FROM consent_event WHERE contact IN ({marks}) ORDER BY id",
            *contacts,
        )
        return [cls._from_row(r) for r in rows]

    @classmethod
    async def latest(
        cls, contacts: Sequence[int], list_: str, account: str
    ) -> ConsentEvent | None:
        marks = ", ".join(f"${n + 3}" for n in range(len(contacts)))
        row = await cls.db.fetchrow(
            f"SELECT {_EVENT} FROM consent_event WHERE list=$1 AND account=$2 "
            f"AND contact IN ({marks}) ORDER BY id DESC LIMIT 1",
            list_, account, *contacts,
        )  # fmt: skip
        return None if row is None else cls._from_row(row)

    @classmethod
    async def count_requested(
        cls, contacts: Sequence[int], list_: str, account: str, since: int, trigger: str
    ) -> int:
        """How many ``requested`` steps of ``contacts`` for ``list_`` on ``account`` since
        ``since`` (ms) have ``trigger`` (the sign-up form's mail limit)."""
        marks = ", ".join(f"${n + 5}" for n in range(len(contacts)))
        count = await cls.db.fetchval(
            "SELECT COUNT(*) FROM consent_event WHERE list=$1 AND account=$2 "
            f"AND contact IN ({marks}) AND step='requested' AND at > $3 AND trigger=$4",
            list_, account, since, trigger, *contacts,
        )  # fmt: skip
        return int(count)

    @classmethod
    async def of_cause(cls, account: str, cause: str) -> builtins.list[ConsentEvent]:
        rows = await cls.db.fetch(
            f"SELECT {_EVENT} FROM consent_event WHERE account=$1 AND cause_key=$2 ORDER BY id",
            account,
            digest(cause),
        )
        return [cls._from_row(r) for r in rows]

    @classmethod
    async def given(
        cls, list_: str, account: str, after: int, limit: int
    ) -> tuple[builtins.list[int], int]:
        """One page of the subscribers: of the next ``limit`` contacts above ``after`` (in id
        order, merged ones counted with the contact they were merged into), those whose latest
        step of ``list_`` on ``account`` is a consent given, and the last contact id looked at
        (``after`` itself when none was left). Each page reads only its own contacts' rows."""
        upto = await cls.db.fetchval(
            "SELECT MAX(id) FROM (SELECT id FROM consent_contact WHERE id > $1 "
            "AND merged_into IS NULL ORDER BY id LIMIT $2) page",
            after,
            limit,
        )
        if upto is None:
            return [], after
        rows = await cls.db.fetch(
            """WITH page AS (
                SELECT id, id AS root FROM consent_contact
                WHERE id > $3 AND id <= $4 AND merged_into IS NULL
                UNION ALL
                SELECT id, merged_into AS root FROM consent_contact
                WHERE merged_into > $3 AND merged_into <= $4
            )
            SELECT root FROM (
                SELECT p.root, e.step,
                    ROW_NUMBER() OVER (PARTITION BY p.root ORDER BY e.id DESC) AS rn
                FROM page p JOIN consent_event e
                    ON e.list = $1 AND e.account = $2 AND e.contact = p.id
            ) latest WHERE rn = 1 AND step IN ('confirmed', 'imported')
            ORDER BY root""",
            list_, account, after, upto,
        )  # fmt: skip
        return [int(r["root"]) for r in rows], int(upto)

    @classmethod
    async def open_requests(
        cls, before: int, after: int, limit: int
    ) -> builtins.list[ConsentEvent]:
        """Up to ``limit`` requests made before ``before`` (ms) that are still the latest step
        of their contact, list and account, with ids above ``after``, in id order (the
        expiry job's pages)."""
        rows = await cls.db.fetch(
            f"SELECT {_EVENT} FROM consent_event e WHERE e.step = 'requested' AND e.at < $1 "
            "AND e.id > $2 AND NOT EXISTS (SELECT 1 FROM consent_event l WHERE "
            "l.list = e.list AND l.account = e.account AND l.contact = e.contact "
            "AND l.id > e.id) ORDER BY e.id LIMIT $3",
            before, after, limit,
        )  # fmt: skip
        return [cls._from_row(r) for r in rows]
