"""Canned replies added by commands: a team's (``team`` set) or a staff member's own
(``owner`` set). Those of the YAML config are not copied here: the config is read as it is,
and a row here with the same code overrides it."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from . import upgrade_table


@upgrade_table.register(description="Team inbox: canned replies")  # type: ignore[call-arg,arg-type]
async def upgrade_v7(conn: Connection, scheme: Scheme) -> None:
    # '' rather than NULL for the scope that does not apply: both columns are in the key.
    await conn.execute(
        """CREATE TABLE inbox_canned (
            team        TEXT NOT NULL DEFAULT '',
            owner       TEXT NOT NULL DEFAULT '',
            code        TEXT NOT NULL,
            text        TEXT NOT NULL,
            created_by  TEXT NOT NULL,
            created_at  BIGINT NOT NULL,
            PRIMARY KEY (team, owner, code),
            CHECK ((team = '') <> (owner = ''))
        )"""
    )
