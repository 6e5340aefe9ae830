"""The consent registry and its ledger on SQLite and PostgreSQL: the database refuses to
change the ledger, the state follows the latest step, merged contacts are seen together,
imports need their proof, subscribers come page by page."""

from __future__ import annotations

import dataclasses
import re

import pytest
from mautrix.util.async_db import Database

from bridge.db.consent import ConsentContact, ConsentEvent, ConsentText
from bridge.features.consent.config import text_hash
from bridge.features.consent.registry import ConsentError, ImportProof
from tests.features.consent.support import CONFIG, HOOK, MAIL, NEWS, ORDERS, T0, registry


async def test_the_ledger_refuses_update_and_delete(database: Database) -> None:
    reg = registry()
    contact = await reg.contact_for(HOOK, "ann", create=True)
    assert contact is not None
    assert await reg.confirm(contact, "newsletter", HOOK, {"message_id": "m1"}, "button")
    for statement in (
        "UPDATE consent_event SET step='withdrawn'",
        "UPDATE consent_event SET evidence='{}' WHERE contact=$1",
        "DELETE FROM consent_event",
    ):
        args = (contact,) if "$1" in statement else ()
        with pytest.raises(Exception, match="consent_event"):
            await database.execute(statement, *args)
    (event,) = await ConsentEvent.history([contact])
    assert (event.step, event.evidence) == ("confirmed", {"message_id": "m1"})


async def test_only_an_erased_contact_s_rows_may_be_deleted(database: Database) -> None:
    reg = registry()
    ann = await reg.contact_for(HOOK, "ann", create=True)
    bob = await reg.contact_for(HOOK, "bob", create=True)
    assert ann is not None and bob is not None
    for contact in (ann, bob):
        await reg.confirm(contact, "newsletter", HOOK, {}, "button")
    await database.execute(
        "INSERT INTO consent_erasure (contact, erased_at, erased_by) VALUES ($1, 1, 'test')", ann
    )
    await database.execute("DELETE FROM consent_event WHERE contact=$1", ann)
    assert await ConsentEvent.history([ann]) == []
    with pytest.raises(Exception, match="consent_erasure"):
        await database.execute("DELETE FROM consent_event WHERE contact=$1", bob)
    assert len(await ConsentEvent.history([bob])) == 1


async def test_state_follows_the_latest_step(database: Database) -> None:
    reg = registry()
    ann = await reg.contact_for(HOOK, "ann", create=True)
    assert ann is not None
    assert (await reg.state(ann, "newsletter", HOOK)).step is None
    steps = [
        (reg.request, "requested", False),
        (reg.confirm, "confirmed", True),
        (reg.withdraw, "withdrawn", False),
        (reg.request, "requested", False),
        (reg.confirm, "confirmed", True),
    ]
    for step, name, confirmed in steps:
        assert await step(ann, "newsletter", HOOK, {}, "test")
        state = await reg.state(ann, "newsletter", HOOK)
        assert (state.step, state.confirmed) == (name, confirmed)
        assert state.text_hash == NEWS.hash  # a withdrawal names the text consented to
    # per list and per channel
    assert not (await reg.state(ann, "order-updates", HOOK)).confirmed
    assert not (await reg.state(ann, "newsletter", MAIL)).confirmed
    await reg.decline(ann, "order-updates", HOOK, {}, "button")
    assert await reg.confirmed_lists(ann, HOOK) == ["newsletter"]
    text = await ConsentText.get(NEWS.hash)
    assert text is not None and (text.list, text.version, text.text) == (
        "newsletter", "2026-01", NEWS.text,
    )  # fmt: skip


async def test_unknown_lists_are_refused(database: Database) -> None:
    reg = registry()
    ann = await reg.contact_for(HOOK, "ann", create=True)
    assert ann is not None
    with pytest.raises(ConsentError, match="no consent list 'nope'"):
        await reg.confirm(ann, "nope", HOOK, {}, "test")
    with pytest.raises(ConsentError, match="no contact 999"):
        await reg.confirm(999, "newsletter", HOOK, {}, "test")
    with pytest.raises(ConsentError, match="no step 'imported'"):
        await reg.step("imported", ann, "newsletter", HOOK, {}, "test")
    with pytest.raises(ConsentError, match="no contact 999"):
        await reg.withdraw(999, "newsletter", HOOK, {}, "test")


async def test_contacts_enter_only_when_asked_to(database: Database) -> None:
    reg = registry()
    assert await reg.contact_for(HOOK, "ann") is None
    ann = await reg.contact_for(HOOK, "ann", chat="chat-1", create=True)
    assert ann is not None
    assert await reg.contact_for(HOOK, "ann", create=True) == ann
    assert await reg.contact_for(HOOK, "ann") == ann
    assert await reg.contact_for(MAIL, "ann") is None
    (identity,) = await reg.identities(ann)
    assert (identity.account, identity.remote_user, identity.chat) == (HOOK, "ann", "chat-1")


async def test_merged_contacts_are_seen_together(database: Database) -> None:
    reg = registry()
    hook = await reg.contact_for(HOOK, "ann", create=True)
    mail = await reg.contact_for(MAIL, "ann@example.org", create=True)
    other = await reg.contact_for(HOOK, "bob", create=True)
    assert hook is not None and mail is not None and other is not None
    await reg.confirm(mail, "newsletter", MAIL, {}, "link")
    await reg.confirm(hook, "order-updates", HOOK, {}, "button")
    await reg.merge(hook, mail, "@admin:example.com")
    assert await reg.contact_for(MAIL, "ann@example.org") == hook
    assert await reg.root(mail) == hook
    assert {i.account for i in await reg.identities(hook)} == {HOOK, MAIL}
    assert (await reg.state(hook, "newsletter", MAIL)).confirmed
    history = await ConsentEvent.history(await ConsentContact.members(hook))
    # the rows stay as written
    assert [(e.contact, e.list) for e in history] == [
        (mail, "newsletter"),
        (hook, "order-updates"),
    ]
    # a withdrawal through the merged identity ends the consent seen through it
    await reg.withdraw(hook, "newsletter", MAIL, {}, "opt-out")
    assert not (await reg.state(mail, "newsletter", MAIL)).confirmed
    merged = await ConsentContact.get(mail)
    assert merged is not None and merged.merged_by == "@admin:example.com"
    with pytest.raises(ConsentError, match="merged into"):
        await reg.merge(other, mail, "@admin:example.com")
    with pytest.raises(ConsentError, match="itself"):
        await reg.merge(hook, hook, "@admin:example.com")
    with pytest.raises(ConsentError, match="no contact 999"):
        await reg.merge(hook, 999, "@admin:example.com")
    # merging again folds what was merged before
    await reg.merge(other, hook, "@admin:example.com")
    assert await reg.root(mail) == other
    assert len(await reg.identities(other)) == 3


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"consented_at": 0}, "time the consent was given"),
        ({"consented_at": True}, "time the consent was given"),
        ({"consented_at": T0 + 10**9}, "time the consent was given"),
        ({"source": ""}, "source"),
        ({"source": "   "}, "source"),
        ({"version": ""}, "version"),
        ({"version": "2019"}, "version 2019 of list newsletter is unknown"),
    ],
)
async def test_imports_without_proof_are_refused(
    database: Database, changes: dict[str, object], error: str
) -> None:
    reg = registry()
    ann = await reg.contact_for(HOOK, "ann", create=True)
    assert ann is not None
    proof = ImportProof(T0 - 86400_000, "2026-01", "crm export 2026-02", "@admin:example.com")
    with pytest.raises(ConsentError, match=error):
        await reg.import_consent(ann, "newsletter", HOOK, dataclasses.replace(proof, **changes))
    with pytest.raises(ConsentError, match=error):
        await reg.import_identity(HOOK, "new", "newsletter", dataclasses.replace(proof, **changes))
    assert await ConsentEvent.history([ann]) == []
    assert await reg.contact_for(HOOK, "new") is None  # a refused import makes no contact
    assert await reg.import_consent(ann, "newsletter", HOOK, proof)
    new = await reg.import_identity(HOOK, "new", "newsletter", proof, chat="new-chat")
    assert (await reg.state(new, "newsletter", HOOK)).confirmed
    state = await reg.state(ann, "newsletter", HOOK)
    assert (state.step, state.confirmed, state.text_hash) == ("imported", True, NEWS.hash)


async def test_an_import_under_an_older_text_keeps_that_text(database: Database) -> None:
    reg = registry()
    ann = await reg.contact_for(HOOK, "ann", create=True)
    assert ann is not None
    old = "Newsletter, please (old form)."
    proof = ImportProof(T0 - 1, "2019", "paper form", "@admin:example.com", text=old)
    await reg.import_consent(ann, "newsletter", HOOK, proof)
    (event,) = await ConsentEvent.history([ann])
    assert event.text_hash == text_hash(old)
    assert event.evidence == {"consented_at": T0 - 1, "source": "paper form", "version": "2019"}
    assert event.trigger == "import by @admin:example.com"
    # the version is known now: a second import needs no text
    bob = await reg.contact_for(HOOK, "bob", create=True)
    assert bob is not None
    await reg.import_consent(bob, "newsletter", HOOK, dataclasses.replace(proof, text=None))
    assert (await reg.state(bob, "newsletter", HOOK)).text_hash == text_hash(old)


async def test_a_changed_text_under_the_same_version_is_reported(database: Database) -> None:
    assert await registry().store_texts() == []
    changed = dataclasses.replace(NEWS, text="Yes, send me the newsletter weekly.")
    config = dataclasses.replace(CONFIG, lists={"newsletter": changed, "order-updates": ORDERS})
    (warning,) = await registry(config).store_texts()
    assert "version 2026-01 has 2 different texts" in warning
    assert len(await ConsentText.of_version("newsletter", "2026-01")) == 2


async def test_a_cause_records_a_step_once(database: Database) -> None:
    reg = registry()
    ann = await reg.contact_for(HOOK, "ann", create=True)
    assert ann is not None
    await reg.confirm(ann, "newsletter", HOOK, {}, "button")
    await reg.confirm(ann, "order-updates", HOOK, {}, "button")
    first = await reg.withdraw_all(ann, HOOK, "opt-out", {"message_id": "m9"}, "stop:m9")
    again = await reg.withdraw_all(ann, HOOK, "opt-out", {"message_id": "m9"}, "stop:m9")
    assert first == again == ["newsletter", "order-updates"]
    assert [e.step for e in await ConsentEvent.history([ann])].count("withdrawn") == 2
    assert await reg.confirm(ann, "newsletter", HOOK, {}, "button", cause="token-1")
    assert not await reg.confirm(ann, "newsletter", HOOK, {}, "button", cause="token-1")


async def test_blocking_the_bot_withdraws(database: Database) -> None:
    reg = registry()
    ann = await reg.contact_for(HOOK, "ann", create=True)
    assert ann is not None
    await reg.confirm(ann, "newsletter", HOOK, {}, "button")
    assert await reg.blocked(HOOK, "ann", {"at": 5, "update_id": 77}) == ["newsletter"]
    assert await reg.blocked(HOOK, "ann", {"at": 5, "update_id": 77}) == ["newsletter"]
    assert await reg.blocked(HOOK, "nobody", {"at": 5}) == []
    latest = (await ConsentEvent.history([ann]))[-1]
    assert (latest.step, latest.trigger) == ("withdrawn", "blocked the bot")


async def test_subscribers_come_page_by_page(database: Database) -> None:
    reg = registry()
    expected = []
    for n in range(7):
        contact = await reg.contact_for(HOOK, f"user{n}", create=True)
        assert contact is not None
        await reg.confirm(contact, "newsletter", HOOK, {}, "button")
        if n % 3 == 1:
            await reg.withdraw(contact, "newsletter", HOOK, {}, "opt-out")
        else:
            expected.append(contact)
    late = await reg.contact_for(HOOK, "late", create=True)
    other = await reg.contact_for(MAIL, "late@example.org", create=True)
    assert late is not None and other is not None
    await reg.confirm(other, "newsletter", MAIL, {}, "link")  # another channel
    await reg.request(late, "newsletter", HOOK, {}, "deep link")  # not confirmed
    found = [s async for s in reg.subscribers("newsletter", HOOK, batch=2)]
    assert [s.contact for s in found] == expected
    assert [[i.remote_user for i in s.identities] for s in found][0] == ["user0"]
    assert [s.contact for s in await _all(reg, "newsletter", MAIL)] == [other]
    assert await _all(reg, "order-updates", HOOK) == []


async def _all(reg: object, list_: str, account: str) -> list[object]:
    return [s async for s in reg.subscribers(list_, account)]  # type: ignore[attr-defined]


async def test_subscribers_see_merged_contacts_as_one(database: Database) -> None:
    reg = registry()
    ids = []
    for name in ("ann", "ann-2", "bob", "cat"):
        contact = await reg.contact_for(HOOK, name, create=True)
        assert contact is not None
        ids.append(contact)
    ann, ann2, bob, cat = ids
    await reg.confirm(ann2, "newsletter", HOOK, {}, "button")  # only the second identity said yes
    await reg.confirm(bob, "newsletter", HOOK, {}, "button")
    await reg.confirm(cat, "newsletter", HOOK, {}, "button")
    await reg.merge(ann, ann2, "@admin:example.com")
    await reg.merge(cat, bob, "@admin:example.com")  # merged into a later contact
    await reg.withdraw(cat, "newsletter", HOOK, {}, "opt-out")  # ends bob's too: one person
    for batch in (1, 2, 100):
        found = [s async for s in reg.subscribers("newsletter", HOOK, batch=batch)]
        assert [(s.contact, sorted(i.remote_user for i in s.identities)) for s in found] == [
            (ann, ["ann", "ann-2"])
        ]


LOOKUPS = [
    ("SELECT id FROM consent_event WHERE account=$1 AND cause_key=$2 ORDER BY id",
     (HOOK, "k"), "consent_event_account_cause_idx"),
    ("SELECT e.id FROM consent_event e WHERE e.step = 'requested' AND e.at < $1 AND e.id > $2 "
     "AND NOT EXISTS (SELECT 1 FROM consent_event l WHERE l.list = e.list AND l.account = "
     "e.account AND l.contact = e.contact AND l.id > e.id) ORDER BY e.id LIMIT $3",
     (T0 * 2, 0, 5), "consent_event_requested_idx"),
    ("SELECT COUNT(*) FROM consent_event WHERE list=$1 AND account=$2 AND contact IN ($5) "
     "AND step='requested' AND at > $3 AND trigger=$4",
     ("newsletter", HOOK, 0, "form", 1), "consent_event_(state|contact)_idx"),
]  # fmt: skip
"""The ledger's lookups by cause, of open requests and the form's count (as ``ConsentEvent``
writes them) and the index each must use (a pattern: the form's count may go by the contact
alone) rather than scanning the ledger."""


@pytest.mark.parametrize(("query", "args", "index"), LOOKUPS)
async def test_ledger_lookups_use_an_index(
    database: Database, query: str, args: tuple[object, ...], index: str
) -> None:
    reg = registry()
    for n in range(30):  # some rows, so that a plan has something to choose from
        contact = await reg.contact_for(HOOK, f"u{n}", create=True)
        assert contact is not None
        await reg.request(contact, "newsletter", HOOK, {}, "form", cause=f"c{n}")
        await reg.confirm(contact, "newsletter", HOOK, {}, "link")
    async with database.acquire() as conn:
        if database.scheme == "sqlite":
            plan = "\n".join(str(r["detail"]) for r in await conn.fetch(
                f"EXPLAIN QUERY PLAN {query}", *args))  # fmt: skip
        else:  # too few rows to beat a scan on cost: forbid scans, an index must remain
            await conn.execute("ANALYZE consent_event")
            await conn.execute("SET enable_seqscan = off")
            try:
                plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {query}", *args))
            finally:
                await conn.execute("RESET enable_seqscan")
    assert re.search(index, plan), plan
