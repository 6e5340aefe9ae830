"""Large payloads of queued events, stored once outside the queue row (``BridgeHost``'s
``Spooler`` side): written before the event is queued, read back in ranges, and deleted with
the queue item that lists them (``spool_keys``): recording that item claims them, and what
no item claimed is swept at the next start. A dead letter keeps them (for its retry)."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from mautrix.util.async_db import Connection, Database, Scheme

from ..media import MediaFile

RANGE = 1024 * 1024
"""Bytes read from the database at a time."""


class Spool:
    db: ClassVar[Database]

    @classmethod
    async def put(cls, account: str, data: bytes) -> str:
        """Store ``data`` durably (committed when this returns); its new key."""
        key = f"{account}/{secrets.token_hex(16)}"
        await cls.db.execute(
            "INSERT INTO spool (key, account, data, created_at) VALUES ($1, $2, $3, $4)",
            key, account, data, int(time.time() * 1000),
        )  # fmt: skip
        return key

    @classmethod
    async def size(cls, key: str) -> int | None:
        pg = cls.db.scheme in (Scheme.POSTGRES, Scheme.COCKROACH)
        length = "octet_length" if pg else "length"
        value = await cls.db.fetchval(f"SELECT {length}(data) FROM spool WHERE key=$1", key)
        return None if value is None else int(value)

    @classmethod
    async def chunks(cls, key: str, size: int, length: int | None = None) -> AsyncIterator[bytes]:
        """The ``size`` bytes stored under ``key``, ``length`` at a time (1-based ranges in
        SQL); stops early if the entry is deleted meanwhile."""
        length = length or RANGE
        offset = 0
        while offset < size:
            data = await cls.db.fetchval(
                "SELECT substr(data, $2, $3) FROM spool WHERE key=$1", key, offset + 1, length
            )
            if not data:
                return
            yield bytes(data)
            offset += len(data)

    @classmethod
    async def open(cls, account: str, key: str, mimetype: str) -> MediaFile | None:
        """The payload under ``key`` of ``account`` (an account reads only its own) as a
        ``MediaFile``; None if it is gone."""
        if not key.startswith(f"{account}/"):
            return None
        size = await cls.size(key)
        if size is None:
            return None
        media = await MediaFile.from_chunks(cls.chunks(key, size), mimetype)
        if media.size != size:  # deleted while read
            media.close()
            return None
        return media

    @classmethod
    async def sweep(cls) -> int:
        """Delete what no queued event claimed (the process stopped between spooling and
        queueing): called at start, before any connector runs. Returns how many."""
        rows = await cls.db.fetch("DELETE FROM spool WHERE NOT claimed RETURNING key")
        return len(rows)

    @classmethod
    async def claim(cls, conn: Connection, keys: list[str]) -> None:
        for key in keys:
            await conn.execute("UPDATE spool SET claimed=true WHERE key=$1", key)

    @classmethod
    async def delete(cls, *keys: str, conn: Connection | None = None) -> None:
        for key in keys:
            await (conn or cls.db).execute("DELETE FROM spool WHERE key=$1", key)


def spool_keys(payload: dict[str, Any]) -> list[str]:
    """The spool keys a queued remote event lists (``metadata["spool"]``)."""
    event = payload.get("event")
    metadata = event.get("metadata") if isinstance(event, dict) else None
    keys = metadata.get("spool") if isinstance(metadata, dict) else None
    return [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []
