"""The data protection tables (``upgrade/v15_privacy.py``): ``privacy_audit`` (append-only:
who did what, when, on whom, the person named only by a keyed hash), ``privacy_job`` (one
export, erasure or retention run with its plan and progress, so that a killed run goes on
after a restart) and ``privacy_suppression`` (an erased person's identities as keyed hashes)."""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
from typing import Any, ClassVar

from attrs import define, field
from mautrix.util.async_db import Database

from .queue import now_ms

Record = Any

_AUDIT = "id, at, actor, action, subject, detail"
_JOB = "id, kind, state, actor, room_id, created_at, updated_at, plan, progress, result"
JOB_KINDS = ("export", "erase", "retention")
JOB_STATES = ("pending", "confirmed", "running", "done", "cancelled", "failed")
OPEN_STATES = ("confirmed", "running")
"""States a job is worked on in (``pending`` waits for a confirmation)."""


def person_key(secret: bytes, purpose: str, account: str, remote_id: str) -> str:
    """A keyed hash (HMAC-SHA-256, hex) naming a person's identity on a channel account for
    ``purpose`` (``audit``: the audit log's subject references; ``suppress``: the suppression
    list). Without ``secret`` nobody can find a phone number or address by trying them all;
    different purposes give unrelated values."""
    data = f"{len(purpose)}:{purpose}{len(account)}:{account}{len(remote_id)}:{remote_id}"
    return hmac.new(secret, data.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def derive_key_secret(as_token: str) -> bytes:
    """The secret of ``person_key`` when the config names none: derived from the appservice
    token (a secret already; another token makes earlier references unfindable)."""
    return hmac.new(as_token.encode(), b"bridge privacy keys v1", hashlib.sha256).digest()


@define
class AuditEntry:
    db: ClassVar[Database]

    id: int
    at: int
    actor: str
    action: str
    subject: str | None
    detail: dict[str, Any] = field(factory=dict)

    @classmethod
    def _from_row(cls, row: Record) -> AuditEntry:
        data = dict(row)
        data["detail"] = json.loads(data["detail"] or "{}")
        return cls(**data)

    @classmethod
    async def append(
        cls,
        actor: str,
        action: str,
        subject: str | None = None,
        detail: dict[str, Any] | None = None,
        *,
        at: int | None = None,
    ) -> AuditEntry:
        at = now_ms() if at is None else at
        text = json.dumps(detail or {}, sort_keys=True)
        id_ = await cls.db.fetchval(
            "INSERT INTO privacy_audit (at, actor, action, subject, detail) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id",
            at, actor, action, subject, text,
        )  # fmt: skip
        return cls(int(id_), at, actor, action, subject, detail or {})

    @classmethod
    async def recent(
        cls, limit: int, *, subject: str | None = None, before: int | None = None
    ) -> builtins.list[AuditEntry]:
        """The newest ``limit`` entries (naming the reference ``subject`` only, if given; older
        than id ``before``, if given), newest first. ``subject`` holds the space-separated
        ``person_key`` references of every identity of the person."""
        where: list[str] = ["1=1"]
        args: list[Any] = []
        if subject is not None:
            args.append(f"%{subject}%")
            where.append(f"subject LIKE ${len(args)}")
        if before is not None:
            args.append(before)
            where.append(f"id<${len(args)}")
        args.append(limit)
        rows = await cls.db.fetch(
            f"SELECT {_AUDIT} FROM privacy_audit WHERE {' AND '.join(where)} "
            f"ORDER BY id DESC LIMIT ${len(args)}",
            *args,
        )
        return [cls._from_row(row) for row in rows]


@define
class PrivacyJob:
    db: ClassVar[Database]

    id: int
    kind: str
    state: str
    actor: str
    room_id: str | None
    created_at: int
    updated_at: int
    plan: dict[str, Any] = field(factory=dict)
    progress: dict[str, Any] = field(factory=dict)
    result: dict[str, Any] = field(factory=dict)

    @classmethod
    def _from_row(cls, row: Record) -> PrivacyJob:
        data = dict(row)
        for name in ("plan", "progress", "result"):
            data[name] = json.loads(data[name] or "{}")
        return cls(**data)

    @classmethod
    async def create(
        cls,
        kind: str,
        actor: str,
        room_id: str | None,
        plan: dict[str, Any],
        *,
        state: str = "pending",
        now: int | None = None,
    ) -> PrivacyJob:
        now = now_ms() if now is None else now
        id_ = await cls.db.fetchval(
            "INSERT INTO privacy_job (kind, state, actor, room_id, created_at, updated_at, plan)"
            " VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING id",
            kind, state, actor, room_id, now, json.dumps(plan),
        )  # fmt: skip
        return cls(int(id_), kind, state, actor, room_id, now, now, plan)

    @classmethod
    async def get(cls, id_: int) -> PrivacyJob | None:
        row = await cls.db.fetchrow(f"SELECT {_JOB} FROM privacy_job WHERE id=$1", id_)
        return cls._from_row(row) if row else None

    @classmethod
    async def open(cls, kind: str) -> builtins.list[PrivacyJob]:
        """The jobs of ``kind`` to work on (confirmed or running), oldest first."""
        rows = await cls.db.fetch(
            f"SELECT {_JOB} FROM privacy_job WHERE kind=$1 AND state IN ($2, $3) ORDER BY id",
            kind, *OPEN_STATES,
        )  # fmt: skip
        return [cls._from_row(row) for row in rows]

    @classmethod
    async def latest(cls, kind: str, state: str) -> PrivacyJob | None:
        """The newest job of ``kind`` in ``state`` (the last finished retention run)."""
        row = await cls.db.fetchrow(
            f"SELECT {_JOB} FROM privacy_job WHERE kind=$1 AND state=$2 ORDER BY id DESC LIMIT 1",
            kind, state,
        )  # fmt: skip
        return cls._from_row(row) if row else None

    @classmethod
    async def pending_of(cls, kind: str, actor: str) -> builtins.list[PrivacyJob]:
        """``actor``'s jobs of ``kind`` that wait for a confirmation, oldest first."""
        rows = await cls.db.fetch(
            f"SELECT {_JOB} FROM privacy_job WHERE kind=$1 AND actor=$2 AND state='pending' "
            "ORDER BY id",
            kind, actor,
        )  # fmt: skip
        return [cls._from_row(row) for row in rows]

    async def save(self, *, now: int | None = None) -> None:
        """Store state, plan, progress and result (the plan may shrink: a finished job keeps
        no identifiers)."""
        self.updated_at = now_ms() if now is None else now
        await self.db.execute(
            "UPDATE privacy_job SET state=$2, updated_at=$3, plan=$4, progress=$5, result=$6 "
            "WHERE id=$1",
            self.id, self.state, self.updated_at, json.dumps(self.plan),
            json.dumps(self.progress), json.dumps(self.result),
        )  # fmt: skip

    async def move(self, from_state: str, to_state: str, *, now: int | None = None) -> bool:
        """Change the state only if it still is ``from_state`` (two confirmations, or a
        confirmation racing the expiry: one wins)."""
        now = now_ms() if now is None else now
        done = await self.db.fetchval(
            "UPDATE privacy_job SET state=$3, updated_at=$4 WHERE id=$1 AND state=$2 "
            "RETURNING id",
            self.id, from_state, to_state, now,
        )  # fmt: skip
        if done is None:
            return False
        self.state, self.updated_at = to_state, now
        return True


class Suppression:
    """Keyed hashes (``person_key(secret, "suppress", account, remote id)``) of erased people's
    identities: their remote user and their chat on each account. Other features ask
    ``holds(account, remote id)`` before they record a consent or send a broadcast, without
    knowing the privacy feature or its secret: the privacy feature's set-up stores its secret
    in ``Suppression.secret`` (without the privacy feature nobody is suppressed)."""

    db: ClassVar[Database]
    secret: ClassVar[bytes | None] = None
    _known: ClassVar[tuple[Database, set[str]] | None] = None
    """Every key, read once per database: a broadcast asks for each recipient, and the list
    (erased people only) is small. Only this process adds keys."""

    @classmethod
    async def holds(cls, account: str, remote_id: str) -> bool:
        """Whether ``remote_id`` (a remote user or chat) of ``account`` was erased."""
        if cls.secret is None:
            return False
        return await cls.contains(person_key(cls.secret, "suppress", account, remote_id))

    @classmethod
    async def _keys(cls) -> set[str]:
        if cls._known is None or cls._known[0] is not cls.db:
            rows = await cls.db.fetch("SELECT key FROM privacy_suppression")
            cls._known = (cls.db, {str(r["key"]) for r in rows})
        return cls._known[1]

    @classmethod
    async def add(cls, keys: builtins.list[str], now: int | None = None) -> None:
        now = now_ms() if now is None else now
        for key in keys:
            await cls.db.execute(
                "INSERT INTO privacy_suppression (key, created_at) VALUES ($1, $2) "
                "ON CONFLICT (key) DO NOTHING",
                key, now,
            )  # fmt: skip
            (await cls._keys()).add(key)

    @classmethod
    async def contains(cls, key: str) -> bool:
        return key in await cls._keys()

    @classmethod
    async def count(cls) -> int:
        return int(await cls.db.fetchval("SELECT COUNT(*) FROM privacy_suppression") or 0)
