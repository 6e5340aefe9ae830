"""Data protection (``features.privacy``): the audit log, durable privacy jobs and the
suppression list.

``privacy_audit`` is append-only in the database itself, as the consent ledger is: a trigger
refuses every UPDATE and DELETE (PostgreSQL also TRUNCATE). It names the person an action was
about only by a keyed hash (``subject``), so it can outlive an erasure without holding the
person's identifiers.

``privacy_job`` is one export, erasure or retention run: its state, a plan (what it will touch,
written before it touches anything) and its progress, so that a run killed midway goes on where
it stopped. A finished job keeps only counts.

``privacy_suppression`` keeps an erased person's identities as keyed hashes: never contacted
again, and nothing that names them."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from . import upgrade_table

AUDIT_APPEND_ONLY = "privacy_audit is append-only"


@upgrade_table.register(description="Data protection: audit log, jobs, suppression list")  # type: ignore[call-arg,arg-type]
async def upgrade_v15(conn: Connection, scheme: Scheme) -> None:
    pg = scheme in (Scheme.POSTGRES, Scheme.COCKROACH)
    serial = "BIGSERIAL" if pg else "INTEGER"
    await conn.execute(
        f"""CREATE TABLE privacy_audit (
            id        {serial} PRIMARY KEY,
            at        BIGINT NOT NULL,
            actor     TEXT NOT NULL,
            action    TEXT NOT NULL,
            subject   TEXT,
            detail    TEXT NOT NULL DEFAULT '{{}}'
        )"""
    )
    await conn.execute("CREATE INDEX privacy_audit_subject_idx ON privacy_audit (subject, id)")
    await conn.execute(
        f"""CREATE TABLE privacy_job (
            id          {serial} PRIMARY KEY,
            kind        TEXT NOT NULL,
            state       TEXT NOT NULL,
            actor       TEXT NOT NULL,
            room_id     TEXT,
            created_at  BIGINT NOT NULL,
            updated_at  BIGINT NOT NULL,
            plan        TEXT NOT NULL DEFAULT '{{}}',
            progress    TEXT NOT NULL DEFAULT '{{}}',
            result      TEXT NOT NULL DEFAULT '{{}}',
            CHECK (kind IN ('export', 'erase', 'retention')),
            CHECK (state IN ('pending', 'confirmed', 'running', 'done', 'cancelled', 'failed'))
        )"""
    )
    await conn.execute("CREATE INDEX privacy_job_state_idx ON privacy_job (state, id)")
    await conn.execute(
        """CREATE TABLE privacy_suppression (
            key         TEXT PRIMARY KEY,
            created_at  BIGINT NOT NULL
        )"""
    )
    if pg:
        await conn.execute(
            f"""CREATE FUNCTION privacy_audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{AUDIT_APPEND_ONLY}';
            END $$"""
        )
        await conn.execute(
            "CREATE TRIGGER privacy_audit_guard BEFORE UPDATE OR DELETE ON privacy_audit "
            "FOR EACH ROW EXECUTE PROCEDURE privacy_audit_guard()"
        )
        await conn.execute(
            "CREATE TRIGGER privacy_audit_no_truncate BEFORE TRUNCATE ON privacy_audit "
            "FOR EACH STATEMENT EXECUTE PROCEDURE privacy_audit_guard()"
        )
    else:
        for op in ("UPDATE", "DELETE"):
            await conn.execute(
                f"CREATE TRIGGER privacy_audit_no_{op.lower()} BEFORE {op} ON privacy_audit "
                f"BEGIN SELECT RAISE(ABORT, '{AUDIT_APPEND_ONLY}'); END"
            )
