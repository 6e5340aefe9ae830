"""Every database test runs on SQLite (a temporary file) and on PostgreSQL (a fresh database)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mautrix.util.async_db import Database

from tests.db.support import BACKENDS, Databases


@pytest.fixture(params=BACKENDS)
async def databases(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Databases]:
    pg = request.getfixturevalue("postgres") if request.param == "postgres" else None
    dbs = Databases(request.param, tmp_path, pg)
    try:
        yield dbs
    finally:
        await dbs.close_all()


@pytest.fixture
async def database(databases: Databases) -> Database:
    return await databases.open()
