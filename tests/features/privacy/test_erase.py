"""``privacy erase``: the plan, the confirmation (requester only, within the window), and the
durable run with fake services: every step idempotent, a run killed midway finishes with the
same end state, and nothing of the person is left in the tables."""

from __future__ import annotations

from typing import Any, cast

import pytest
from mautrix.util.async_db import Database

from bridge.db import ConsentIdentity, Ghost, Message, Portal
from bridge.db.privacy import AuditEntry, PrivacyJob, Suppression, person_key
from bridge.features.consent.registry import erased
from bridge.features.privacy.subject import Identity, find_subject
from tests.features.privacy.erase_support import (
    ADMIN,
    CLERK,
    GHOST,
    GROUP,
    OTHER_ADMIN,
    ROOM,
    SECRET,
    T0,
    Clock,
    Crash,
    Ctx,
    FakeServices,
    config,
    erasure,
    job_rows,
    seed_person,
    timelines,
)

ADMINS = {ADMIN: "admin", OTHER_ADMIN: "admin"}
ERASED = {"$name", "$invite", "$join", "$new", "$a1", "$a2", "$gjoin", "$g1"}
"""The events an erasure redacts, without the staff's (``erase_staff_replies``)."""
STAFFS = {"$s1", "$r1"}


async def _request(services: FakeServices, clock: Clock, sender: str = ADMIN) -> str:
    command, _ = erasure(services, clock)
    return await command.run(Ctx(sender, services), ["hooks:user-ann"])


async def test_the_plan_names_everything_and_changes_nothing(database: Database) -> None:
    contact = await seed_person()
    services, clock = FakeServices(levels=ADMINS), Clock()
    answer = await _request(services, clock)
    assert answer.startswith("Erasure #1 of 'hooks:user-ann' would erase:"), answer
    assert "• 1 identities: hooks:user-ann" in answer
    assert "• 1 conversations of theirs (1 with a room)" in answer
    assert "their messages in 1 group rooms" in answer and "• 1 consent contacts" in answer
    assert "privacy erase confirm 1" in answer
    (job,) = await job_rows()
    assert (job.kind, job.state, job.actor) == ("erase", "pending", ADMIN)
    assert job.plan["conversations"] == [["hooks", "ann", ROOM]]
    assert job.plan["groups"] == [GROUP]
    assert job.plan["ghosts"] == [["hooks", "user-ann", GHOST]]
    assert job.plan["contacts"] == [contact]
    (entry,) = await AuditEntry.recent(10)
    assert entry.action == "erase requested" and "ann" not in str(entry)
    # the person by their remote user, and the chat the core names its customer by
    assert entry.subject is not None and sorted(entry.subject.split()) == sorted(
        person_key(SECRET, "audit", "hooks", remote) for remote in ("user-ann", "ann")
    )
    assert await Ghost.get("hooks", "user-ann") is not None and not services.redactions


@pytest.mark.parametrize(
    ("sender", "words", "expected"),
    [
        (ADMIN, ["hooks:nobody"], "The bridge holds nothing of 'hooks:nobody'."),
        (CLERK, ["hooks:user-ann"], "Only an admin of every channel account the person is on"),
        (ADMIN, [], "Usage: privacy erase <identity>"),
        (ADMIN, ["confirm", "7"], "There is no erasure #7."),
    ],
)
async def test_bad_requests_change_nothing(
    database: Database, sender: str, words: list[str], expected: str
) -> None:
    await seed_person()
    services = FakeServices(levels=ADMINS)
    command, _ = erasure(services, Clock())
    assert (await command.run(Ctx(sender, services), words)).startswith(expected)
    assert await job_rows() == [] and await AuditEntry.recent(10) == []


async def test_only_the_requester_confirms_within_the_window(database: Database) -> None:
    await seed_person()
    services, clock = FakeServices(levels=ADMINS), Clock()
    command, _ = erasure(services, clock)
    kicked: list[int] = []
    command.kick = lambda: kicked.append(1)
    await _request(services, clock)
    answer = await command.run(Ctx(OTHER_ADMIN, services), ["confirm", "1"])
    assert answer == f"Only {ADMIN}, who asked for erasure #1, may confirm it."
    assert (await PrivacyJob.get(1)).state == "pending"  # type: ignore[union-attr]
    answer = await command.run(Ctx(ADMIN, services), ["confirm", "1"])
    assert answer.startswith("Erasure #1 confirmed") and kicked == [1]
    again = await command.run(Ctx(ADMIN, services), ["confirm", "1"])
    assert again == "Erasure #1 is confirmed; nothing was changed." and kicked == [1]
    actions = [e.action for e in await AuditEntry.recent(10)]
    assert actions == ["erase confirmed", "erase requested"]


async def test_an_unconfirmed_erasure_expires(database: Database) -> None:
    await seed_person()
    services, clock = FakeServices(levels=ADMINS), Clock()
    command, runner = erasure(services, clock)
    await _request(services, clock)
    await _request(services, clock)
    clock.now += 15 * 60 * 1000 + 1
    answer = await command.run(Ctx(ADMIN, services), ["confirm", "1"])
    assert answer.startswith("Erasure #1 expired (not confirmed within 15 minutes)"), answer
    await runner.tick()
    jobs = await job_rows()
    assert [(j.state, j.plan) for j in jobs] == [("cancelled", {}), ("cancelled", {})]
    assert not services.redactions and await Ghost.get("hooks", "user-ann") is not None


async def test_cancel(database: Database) -> None:
    await seed_person()
    services, clock = FakeServices(levels=ADMINS), Clock()
    command, runner = erasure(services, clock)
    await _request(services, clock)
    assert await command.run(Ctx(ADMIN, services), ["cancel", "1"]) == (
        "Erasure #1 cancelled; nothing was erased."
    )
    await runner.tick()
    (job,) = await job_rows()
    assert (job.state, job.plan) == ("cancelled", {}) and not services.redactions


async def _confirmed(services: FakeServices, clock: Clock) -> None:
    command, _ = erasure(services, clock)
    await _request(services, clock)
    await command.run(Ctx(ADMIN, services), ["confirm", "1"])


async def _assert_erased(services: FakeServices, contact: int, database: Database) -> None:
    redacted = {event for _room, event in services.redactions}
    # Not the room's creation, nor the staff's membership, nor anything else in the group.
    assert redacted == ERASED | STAFFS
    assert {e.event_id for e in services.rooms[GROUP] if not e.redacted} == {"$gname", "$g2"}
    assert sorted(set(services.deleted_media)) == [
        "mxc://example.com/ann", "mxc://example.com/group-file", "mxc://example.com/offer",
        "mxc://example.com/photo",
    ]  # fmt: skip
    assert (ROOM, "m.room.name", {"name": "Erased conversation"}) in services.states
    assert (ROOM, "m.room.topic", {"topic": ""}) in services.states
    assert (ROOM, "m.room.canonical_alias", {}) in services.states
    assert all(room != GROUP for room, _type, _content in services.states)
    texts = [text for _room, text in services.notices.values()]
    assert texts.count("🗑 This conversation was erased at the person's request.") == 1
    (done,) = [t for t in texts if t.startswith("🗑 Erasure #1 done")]
    assert "1 conversations, 1 identities, 1 consent contacts" in done
    assert await Ghost.get("hooks", "user-ann") is None
    assert await Portal.get("hooks", "ann") is None and await Portal.get("hooks", "grp")
    assert await Portal.get("hooks", "bob") is not None
    assert await Ghost.get("hooks", "user-bob") is not None
    assert await ConsentIdentity.get("hooks", "user-ann") is None
    for table, where in (
        ("message", f"sender_mxid='{GHOST}'"),
        ("consent_event", f"contact={contact}"),
        ("consent_contact", f"id={contact}"),
    ):
        assert await database.fetchval(f"SELECT COUNT(*) FROM {table} WHERE {where}") == 0
    assert await database.fetchval("SELECT COUNT(*) FROM message") == 1  # the staff's in grp
    (job,) = await job_rows()
    assert (job.state, job.plan, job.progress) == ("done", {}, {})
    assert job.result["media_deleted"] == 4 and job.result["conversations"] == 1
    for account, remote in (("hooks", "user-ann"), ("hooks", "ann")):
        key = person_key(SECRET, "suppress", account, remote)
        assert await Suppression.contains(key)
    assert [e.action for e in await AuditEntry.recent(10)][0] == "erase done"


async def test_a_confirmed_erasure_runs_to_the_end(database: Database) -> None:
    contact = await seed_person()
    services, clock = FakeServices(levels=ADMINS, rooms=timelines()), Clock()
    await _confirmed(services, clock)
    _, runner = erasure(services, clock)
    await runner.tick()
    await _assert_erased(services, contact, database)
    assert services.retired == [("hooks", "user-ann", [ROOM, GROUP])]
    await runner.tick()  # nothing left to do
    assert len(services.notices) == 2


@pytest.mark.parametrize("kill", [0, 2, 5, 9, "telling"])
async def test_a_killed_run_goes_on_with_the_same_end(database: Database, kill: int | str) -> None:
    """Killed after some redactions (the media of events redacted before the kill were saved
    first), or before it told that it is done (no identifier is left by then); a new runner
    (after a restart) finishes it."""
    contact = await seed_person()
    services, clock = FakeServices(levels=ADMINS, rooms=timelines()), Clock()
    await _confirmed(services, clock)
    services.crash_on_done = kill == "telling"
    services.crash_after = kill if isinstance(kill, int) else None
    _, runner = erasure(services, clock)
    with pytest.raises(Crash):
        await runner.tick()
    (job,) = await job_rows()
    assert job.state == "running"
    if kill == "telling":
        assert job.plan == {} and set(job.progress) == {"step", "refs"}
        assert "ann" not in str(job.progress)
    else:
        assert job.plan
    services.crash_after = None
    _, restarted = erasure(services, clock)
    await restarted.tick()
    await _assert_erased(services, contact, database)


async def test_without_staff_replies_and_media_deletion(database: Database) -> None:
    await seed_person()
    services, clock = FakeServices(levels=ADMINS, rooms=timelines()), Clock()
    services.media_deletable = False
    await _confirmed(services, clock)
    _, runner = erasure(services, clock, staff_replies=False)
    await runner.tick()
    assert {event for _room, event in services.redactions} == ERASED
    (done,) = [t for _r, t in services.notices.values() if "done" in t]
    assert "0 files deleted" in done and "3 files stay in the media repository" in done


async def test_an_erased_person_is_suppressed(database: Database) -> None:
    await seed_person()
    services, clock = FakeServices(levels=ADMINS, rooms=timelines()), Clock()
    await _confirmed(services, clock)
    _, runner = erasure(services, clock)
    Suppression.secret = SECRET
    try:
        assert not await erased("hooks", "user-ann")
        await runner.tick()
        assert await erased("hooks", "user-ann") and await erased("hooks", "x", chat="ann")
        assert not await erased("hooks", "user-bob") and not await erased("tg", "user-ann")
    finally:
        Suppression.secret = None
    assert not await erased("hooks", "user-ann")  # without the privacy feature: nobody


async def test_a_direct_chat_is_found_by_its_only_writer(database: Database) -> None:
    """No consent record links a webhook's sender and chat: the message mappings do, for a
    chat that one remote user alone wrote in (not for a chat of two writers)."""
    await Portal("hooks", "c-chat", "!c:example.com").insert()
    await Portal("hooks", "shared", "!s:example.com").insert()
    await Ghost("hooks", "user-cleo", "@hooks_user-cleo:example.com").insert()
    for chat, mid, sender in (
        ("c-chat", "1", "user-cleo"), ("shared", "2", "user-cleo"), ("shared", "3", "user-dan"),
    ):  # fmt: skip
        await Message(
            "hooks", chat, mid, 0, f"${mid}", f"!{chat}", sender, f"@hooks_{sender}", T0
        ).insert()
    services = FakeServices(levels=ADMINS)
    for asked in ("hooks:user-cleo", "hooks:c-chat"):
        subject = await find_subject(asked, cast(Any, services), config())
        assert subject.identities == [Identity("hooks", "user-cleo", "c-chat")], asked
        assert [(p.account, p.chat) for p in subject.conversations] == [("hooks", "c-chat")]
        assert [g.remote_user for g in subject.ghosts] == ["user-cleo"]
