"""Opening bridge databases for tests, on SQLite or on the session's real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mautrix.util.async_db import Database

import bridge.db
from tests.infra.postgres import PostgresServer

BACKENDS = ("sqlite", "postgres")


class Databases:
    """Hands out one database URL per test and opens (and reopens) ``Database`` objects on
    it, so a test can close the database and open it again the way a restart would."""

    def __init__(self, backend: str, tmp_path: Path, postgres: PostgresServer | None) -> None:
        self.backend = backend
        self._pg = postgres
        self._pg_name: str | None = None
        if backend == "sqlite":
            self.url = f"sqlite:{tmp_path / 'bridge.db'}"
        else:
            assert postgres is not None
            self._pg_name = f"bridge_test_{uuid.uuid4().hex}"
            self.url = postgres.create_database(self._pg_name)
        self._open: list[Database] = []

    async def open(self) -> Database:
        """A new ``Database`` on the same URL, upgraded, started and set on every row class."""
        db = Database.create(self.url, upgrade_table=bridge.db.upgrade_table)
        bridge.db.init(db)
        await db.start()
        self._open.append(db)
        return db

    async def close(self, db: Database) -> None:
        if db in self._open:
            self._open.remove(db)
            await db.stop()

    async def close_all(self) -> None:
        """Stop every open ``Database`` (the data stays, as after a shutdown)."""
        while self._open:
            await self.close(self._open[-1])

    async def dispose(self) -> None:
        """Stop everything and drop the PostgreSQL database."""
        await self.close_all()
        if self._pg is not None and self._pg_name is not None:
            await asyncio.to_thread(self._pg.drop_database, self._pg_name)


@pytest.fixture(params=BACKENDS)
async def databases(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Databases]:
    """A database URL for this test, on each backend in turn."""
    pg = request.getfixturevalue("postgres") if request.param == "postgres" else None
    dbs = Databases(request.param, tmp_path, pg)
    try:
        yield dbs
    finally:
        await dbs.dispose()


@pytest.fixture
async def database(databases: Databases) -> Database:
    """The test's database, upgraded, started and set on every row class."""
    return await databases.open()
