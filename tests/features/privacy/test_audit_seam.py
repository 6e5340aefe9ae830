"""What the audit log hears through the seam (``Seams.audit``): admin commands from the core
(sub-command words only, the room's customer as a keyed hash) and every consent step of the
ledger; an admin finds them by naming the person, and a failing sink fails nothing."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, cast

import pytest
from mautrix.util.async_db import Database

from bridge.core.commands import _record
from bridge.db import Portal
from bridge.db.privacy import AuditEntry, person_key
from bridge.features.consent.registry import ImportProof
from bridge.features.privacy.audit import Audit
from bridge.seams import AuditRecord, Command, Seams
from tests.features.consent.support import HOOK, registry
from tests.features.privacy.erase_support import ADMIN, SECRET, T0, Ctx, FakeServices


def _command(name: str, args: str = "") -> Command:
    async def run(ctx: Any, words: list[str]) -> str:
        return ""

    return Command(name, args, "admin", "", run)


def test_a_command_is_told_without_numbers_addresses_or_names() -> None:
    portal = Portal("hooks", "+4915112345678", "!r:example.com")
    contact = _command("contact", "merge <contact> <other>")
    record = _record(ADMIN, contact, ["Merge", "12", "ann@example.org", "other"], portal)
    assert record == AuditRecord(
        ADMIN, "command contact", (("hooks", "+4915112345678"),), {"args": "Merge … … …"}
    )
    assert _record(ADMIN, _command("deadletters"), [], None).people == ()


async def test_a_failing_sink_is_logged_and_the_next_still_hears(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard: list[AuditRecord] = []

    class Broken:
        async def record(self, record: AuditRecord) -> None:
            raise RuntimeError("database gone")

    class Ear:
        async def record(self, record: AuditRecord) -> None:
            heard.append(record)

    seams = Seams(cast(Any, None), cast(Any, None))
    seams.add_audit_sink(Broken())
    seams.add_audit_sink(Ear())
    with caplog.at_level(logging.ERROR):
        await seams.audit(AuditRecord(ADMIN, "command x"))
    assert [r.action for r in heard] == ["command x"]
    assert "An audit sink failed on command x" in caplog.text


async def test_consent_steps_and_commands_are_found_by_the_person(database: Database) -> None:
    services = FakeServices(levels={ADMIN: "admin"})
    audit = Audit(cast(Any, services), cast(Any, SimpleNamespace(channels={HOOK: None})), SECRET)
    consent = registry()
    consent.audit = audit.record_seam
    contact = await consent.contact_for(HOOK, "ann", create=True)
    assert contact is not None
    await consent.request(contact, "newsletter", HOOK, {"message": "m1"}, "keyword NEWS", "m1")
    await consent.confirm(contact, "newsletter", HOOK, {"press": "p1"}, "button", "p1")
    await consent.confirm(contact, "newsletter", HOOK, {"press": "p1"}, "button", "p1")  # again
    proof = ImportProof(T0, "2026-01", "crm export 2026-01", by="@lea:example.com")
    await consent.import_identity(HOOK, "bob", "newsletter", proof)
    await audit.record_seam(
        _record(
            ADMIN,
            _command("template", "[send] <name>"),
            ["send", "ann"],
            Portal(HOOK, "ann", "!r:x"),
        )
    )

    entries = await AuditEntry.recent(10)
    assert [(e.actor, e.action) for e in reversed(entries)] == [
        ("customer", "consent requested"),
        ("customer", "consent confirmed"),  # once: the repeat recorded nothing
        ("@lea:example.com", "consent imported"),
        (ADMIN, "command template"),
    ]
    assert entries[-1].detail == {"list": "newsletter", "account": HOOK, "trigger": "keyword"}
    assert all("ann" not in str(e) and "bob" not in str(e) for e in entries)
    ann = person_key(SECRET, "audit", HOOK, "ann")
    assert [e.subject for e in entries].count(ann) == 3

    answer = await audit.command(Ctx(ADMIN, services), [f"{HOOK}:ann"])
    assert "consent requested" in answer and "command template" in answer
    assert "consent imported" not in answer  # Bob's
    refused = await audit.command(Ctx("@clerk:example.com", services), [])
    assert refused.startswith("Only admins")
