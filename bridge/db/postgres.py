"""PostgreSQL as the bridge needs it: a lost connection is an error to retry, never a reason
to exit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from mautrix.util.async_db import Database
from mautrix.util.async_db.asyncpg import PostgresDatabase
from mautrix.util.async_db.connection import LoggingConnection


class BridgePostgres(PostgresDatabase):
    """mautrix exits the process on asyncpg's ``InternalClientError``. A connection the server
    closed (PostgreSQL restarted) can show that error on its next query, and the exit starts
    a shutdown that then waits forever for that connection. Here the error reaches the caller
    like any other database error (the appservice listener answers 5xx, queue workers retry)
    and the broken connection is closed, so the pool opens a new one."""

    async def _handle_exception(self, err: Exception) -> None:
        if isinstance(err, asyncpg.InternalClientError):
            self.log.warning("Dropping a broken database connection: %s", err)

    @asynccontextmanager
    async def acquire_direct(self) -> AsyncIterator[LoggingConnection]:  # type: ignore[override]
        async with self.pool.acquire() as conn:
            try:
                yield LoggingConnection(
                    self.scheme, conn, self.log, handle_exception=self._handle_exception
                )
            except asyncpg.InternalClientError:
                conn.terminate()
                raise


for _scheme in ("postgres", "postgresql", "cockroach", "cockroachdb"):
    Database.schemes[_scheme] = BridgePostgres
