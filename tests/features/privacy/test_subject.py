"""Finding a data subject from any identity of theirs: phone numbers and mail addresses over
every account that reaches them (a mail address's threads too), ``account:id``, consent
contacts with what was merged into them, and clear refusals for unknown or ambiguous names.
The audit log refuses changes."""

from __future__ import annotations

from typing import Any

import pytest
from mautrix.util.async_db import Database

from bridge.config import parse
from bridge.db import ConsentContact, ConsentIdentity, Ghost, Portal
from bridge.db.privacy import AuditEntry, PrivacyJob, Suppression, person_key
from bridge.features.privacy.config import parse_privacy_config
from bridge.features.privacy.subject import SubjectError, find_subject, identity_references
from tests.test_config import example

CONFIG = parse(example())
SECRET = b"k" * 32
T0 = 1_780_000_000_000


class Addresses:
    """``chat_for_address`` as the connectors answer it: WhatsApp takes phone numbers (digits
    only), email takes mail addresses (lower case), the others take neither."""

    def chat_for_address(self, account: str, address: str) -> str:
        if account == "support-whatsapp" and address.lstrip("+").replace(" ", "").isdigit():
            return address.lstrip("+").replace(" ", "")
        if account == "support-email" and "@" in address:
            return address.lower()
        raise ValueError("no address of that channel")


SERVICES: Any = Addresses()


async def portal(account: str, chat: str, *, group: bool = False) -> Portal:
    room = f"!{abs(hash((account, chat)))}:example.com"
    row = Portal(account, chat, room, "Ann", None, group, {}, T0)
    await row.insert()
    return row


async def ghost(account: str, user: str) -> Ghost:
    row = Ghost(account, user, f"@bridge_{account}_{user}:example.com", "Ann", None, {})
    await row.insert()
    return row


async def identity(account: str, user: str, contact: int | None = None) -> int:
    if contact is None:
        contact = (await ConsentContact.create(T0)).id
    await ConsentIdentity(account, user, user, contact, T0).insert()
    return contact


async def test_a_phone_number_finds_the_whatsapp_conversation(database: Database) -> None:
    await portal("support-whatsapp", "4915112345678")
    await ghost("support-whatsapp", "4915112345678")
    await portal("support-whatsapp", "4917000000000")  # someone else
    subject = await find_subject("+49 151 12345678", SERVICES, CONFIG)
    assert [p.chat for p in subject.conversations] == ["4915112345678"]
    assert [g.remote_user for g in subject.ghosts] == ["4915112345678"]
    assert [(i.account, i.chat) for i in subject.identities] == [
        ("support-whatsapp", "4915112345678")
    ]


async def test_a_mail_address_finds_every_thread_but_no_group(database: Database) -> None:
    await ghost("support-email", "ann@example.org")
    await portal("support-email", "ann@example.org/<1@example.org>")
    await portal("support-email", "ann@example.org/<2@example.org>")
    await portal("support-email", "anna@example.org/<3@example.org>")  # another address
    subject = await find_subject("Ann@Example.org", SERVICES, CONFIG)
    assert sorted(p.chat for p in subject.conversations) == [
        "ann@example.org/<1@example.org>",
        "ann@example.org/<2@example.org>",
    ]


async def test_a_contact_brings_its_merged_identities(database: Database) -> None:
    first = await identity("support-telegram", "111")
    second = await identity("support-whatsapp", "4915112345678")
    await ConsentContact.merge(first, second, "@admin:example.com", T0)
    await portal("support-telegram", "111")
    await portal("support-whatsapp", "4915112345678")
    for asked in (f"contact:{first}", f"#{second}", "support-telegram:111", "+4915112345678"):
        subject = await find_subject(asked, SERVICES, CONFIG)
        assert sorted(p.chat for p in subject.conversations) == ["111", "4915112345678"], asked
        assert subject.contacts == sorted([first, second])
    refs = (await find_subject("support-telegram:111", SERVICES, CONFIG)).references(SECRET)
    assert refs.split() == sorted(
        [
            person_key(SECRET, "audit", "support-telegram", "111"),
            person_key(SECRET, "audit", "support-whatsapp", "4915112345678"),
        ]
    )
    assert "111" not in refs and "4915" not in refs


async def test_unknown_and_ambiguous_identities_are_refused(database: Database) -> None:
    with pytest.raises(SubjectError, match="holds nothing of '4242'"):
        await find_subject("4242", SERVICES, CONFIG)
    with pytest.raises(SubjectError, match="at most"):
        await find_subject("x" * 600, SERVICES, CONFIG)
    with pytest.raises(SubjectError, match="holds nothing"):
        await find_subject("contact:999", SERVICES, CONFIG)
    await portal("support-telegram", "777")
    await portal("support-webhook", "777")
    with pytest.raises(SubjectError, match="support-telegram:777, support-webhook:777"):
        await find_subject("777", SERVICES, CONFIG)
    subject = await find_subject("support-webhook:777", SERVICES, CONFIG)
    assert [(p.account, p.chat) for p in subject.conversations] == [("support-webhook", "777")]


async def test_references_of_an_erased_person_are_still_found(database: Database) -> None:
    # Nothing is held any more; the audit references are computed from the identity itself.
    refs = await identity_references("support-webhook:gone", SERVICES, CONFIG, SECRET)
    assert refs == [person_key(SECRET, "audit", "support-webhook", "gone")]
    phone = await identity_references("+4915112345678", SERVICES, CONFIG, SECRET)
    assert phone == [person_key(SECRET, "audit", "support-whatsapp", "4915112345678")]


async def test_the_audit_log_is_append_only(database: Database) -> None:
    entry = await AuditEntry.append("@admin:example.com", "export", "ref1 ref2", {"files": 2})
    await AuditEntry.append("@admin:example.com", "report")
    with pytest.raises(Exception, match="append-only"):
        await database.execute("UPDATE privacy_audit SET actor='x' WHERE id=$1", entry.id)
    with pytest.raises(Exception, match="append-only"):
        await database.execute("DELETE FROM privacy_audit WHERE id=$1", entry.id)
    found = await AuditEntry.recent(10, subject="ref2")
    assert [(e.action, e.detail) for e in found] == [("export", {"files": 2})]
    assert [e.action for e in await AuditEntry.recent(10)] == ["report", "export"]


async def test_a_job_moves_once_and_suppression_holds(database: Database) -> None:
    job = await PrivacyJob.create("erase", "@admin:example.com", "!r:example.com", {"a": 1})
    again = await PrivacyJob.get(job.id)
    assert again is not None and await job.move("pending", "confirmed")
    assert not await again.move("pending", "cancelled")  # the other one won
    assert [j.id for j in await PrivacyJob.open("erase")] == [job.id]
    await Suppression.add(["k1", "k1", "k2"])
    assert await Suppression.contains("k1") and await Suppression.count() == 2


def test_the_config_names_the_bad_key() -> None:
    from bridge.connector import ConfigError

    assert parse_privacy_config(None, CONFIG) is None
    options = parse_privacy_config({"retention": {"teams": {"t": {"messages_days": 5}}}}, CONFIG)
    assert options is not None and options.retention.rule("support-email", "t").messages_days == 5
    for section, key in (
        ({"secret": "short"}, "features.privacy.secret"),
        ({"export_notes": "yes"}, "features.privacy.export_notes"),
        ({"retention": {"accounts": {"nope": {}}}}, "features.privacy.retention.accounts.nope"),
        (
            {"retention": {"default": {"messages_days": 0}}},
            "features.privacy.retention.default.messages_days",
        ),
        ({"bogus": 1}, "features.privacy.bogus"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse_privacy_config(section, CONFIG)
        assert caught.value.key == key
