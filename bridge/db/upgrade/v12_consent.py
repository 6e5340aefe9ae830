"""The consent registry (``features.consent``): contacts, their channel identities, every
consent text shown (stored once, by its SHA-256) and the append-only ledger of consent steps.

``consent_event`` is append-only in the database itself: a trigger refuses every UPDATE, and
a DELETE unless the row's contact is listed in ``consent_erasure`` (the one erasure path,
for the data protection erasure of issue 14: it lists the contact, then deletes). PostgreSQL
refuses TRUNCATE of the ledger too."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from . import upgrade_table

APPEND_ONLY = "consent_event is append-only"
ERASURE_ONLY = "consent_event rows are deleted only for a contact listed in consent_erasure"


@upgrade_table.register(description="Consent registry and its append-only ledger")  # type: ignore[call-arg,arg-type]
async def upgrade_v12(conn: Connection, scheme: Scheme) -> None:
    pg = scheme in (Scheme.POSTGRES, Scheme.COCKROACH)
    serial = "BIGSERIAL" if pg else "INTEGER"
    await conn.execute(
        f"""CREATE TABLE consent_contact (
            id           {serial} PRIMARY KEY,
            created_at   BIGINT NOT NULL,
            merged_into  BIGINT,
            merged_by    TEXT,
            merged_at    BIGINT
        )"""
    )
    await conn.execute("CREATE INDEX consent_contact_merged_idx ON consent_contact (merged_into)")
    await conn.execute(
        """CREATE TABLE consent_identity (
            account      TEXT NOT NULL,
            user_key     TEXT NOT NULL,
            remote_user  TEXT NOT NULL,
            chat_key     TEXT NOT NULL,
            chat         TEXT NOT NULL,
            contact      BIGINT NOT NULL,
            created_at   BIGINT NOT NULL,
            PRIMARY KEY (account, user_key)
        )"""
    )
    await conn.execute(
        "CREATE INDEX consent_identity_chat_idx ON consent_identity (account, chat_key)"
    )
    await conn.execute("CREATE INDEX consent_identity_contact_idx ON consent_identity (contact)")
    await conn.execute(
        """CREATE TABLE consent_text (
            hash         TEXT PRIMARY KEY,
            list         TEXT NOT NULL,
            version      TEXT NOT NULL,
            text         TEXT NOT NULL,
            first_seen   BIGINT NOT NULL
        )"""
    )
    await conn.execute("CREATE INDEX consent_text_version_idx ON consent_text (list, version)")
    await conn.execute(
        """CREATE TABLE consent_erasure (
            contact      BIGINT PRIMARY KEY,
            erased_at    BIGINT NOT NULL,
            erased_by    TEXT NOT NULL
        )"""
    )
    await conn.execute(
        f"""CREATE TABLE consent_event (
            id           {serial} PRIMARY KEY,
            contact      BIGINT NOT NULL,
            list         TEXT NOT NULL,
            account      TEXT NOT NULL,
            step         TEXT NOT NULL,
            at           BIGINT NOT NULL,
            text_hash    TEXT,
            evidence     TEXT NOT NULL DEFAULT '{{}}',
            trigger      TEXT NOT NULL,
            cause_key    TEXT,
            CHECK (step IN ('requested', 'confirmed', 'declined', 'withdrawn', 'expired',
                            'imported'))
        )"""
    )
    # One step per cause: a retried hook (the same message) records nothing twice.
    await conn.execute(
        "CREATE UNIQUE INDEX consent_event_cause_idx ON consent_event (account, list, cause_key)"
    )
    await conn.execute(
        "CREATE INDEX consent_event_state_idx ON consent_event (list, account, contact, id)"
    )
    await conn.execute("CREATE INDEX consent_event_contact_idx ON consent_event (contact, id)")
    if pg:
        await conn.execute(
            f"""CREATE FUNCTION consent_event_guard() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' AND EXISTS (
                    SELECT 1 FROM consent_erasure WHERE contact = OLD.contact
                ) THEN
                    RETURN OLD;
                END IF;
                IF TG_OP = 'DELETE' THEN
                    RAISE EXCEPTION '{ERASURE_ONLY}';
                END IF;
                RAISE EXCEPTION '{APPEND_ONLY}';
            END $$"""
        )
        await conn.execute(
            "CREATE TRIGGER consent_event_guard BEFORE UPDATE OR DELETE ON consent_event "
            "FOR EACH ROW EXECUTE PROCEDURE consent_event_guard()"
        )
        await conn.execute(
            "CREATE TRIGGER consent_event_no_truncate BEFORE TRUNCATE ON consent_event "
            "FOR EACH STATEMENT EXECUTE PROCEDURE consent_event_guard()"
        )
    else:
        await conn.execute(
            "CREATE TRIGGER consent_event_no_update BEFORE UPDATE ON consent_event "
            f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
        )
        await conn.execute(
            "CREATE TRIGGER consent_event_no_delete BEFORE DELETE ON consent_event "
            "WHEN NOT EXISTS (SELECT 1 FROM consent_erasure WHERE contact = OLD.contact) "
            f"BEGIN SELECT RAISE(ABORT, '{ERASURE_ONLY}'); END"
        )
