"""The inbox's outbound gates: notes never leave Matrix, whatever the sender prefix looks
like; short forms expand to canned replies (the sender's own first), unknown ones are
refused; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from bridge.db import InboxCanned, InboxConversation, Portal
from bridge.features.inbox.config import InboxConfig
from bridge.features.inbox.gates import CannedGate, NoteGate
from bridge.seams import PASS, ConversationRef, Internal, Origin, Outgoing, Refuse, Rewrite
from bridge.types import AccountID, RemoteChatID
from tests.db.support import database, databases
from tests.features.inbox.test_replies import FakeServices, team

__all__ = ["database", "databases"]

ACC = AccountID("support-email")
CHAT = RemoteChatID("ann@example.org")
REF = ConversationRef(ACC, CHAT, "!room:example.com")
SAM = "@sam:example.com"
CANNED = {"thanks": "Thank you, {customer}! {agent} of {team}", "bye": "Bye"}


def staff(text: str, sender: str = SAM) -> Outgoing:
    return Outgoing(REF, Origin.STAFF, sender, text)


NOTES = [
    "// call her back tomorrow",
    "note: she is a reseller",
    "Sam: // call her back",
    "Sam:   //call her back",
    "Sam: Note: VIP customer",
    "Sam: NOTE: VIP customer",
    "Dr. Sam: Who: // a name with the separator in it",
    "Sam Q. Public (support): note: long names too",
]


@pytest.mark.parametrize("text", NOTES)
async def test_notes_stay_internal(text: str) -> None:
    assert await NoteGate().check(staff(text)) == Internal()


@pytest.mark.parametrize(
    ("template", "text"),
    [
        ("[{displayname}] ", "[Sam] // note"),
        ("[{displayname}] ", "[Dr] Who] note: x"),
        ("{mxid}: ", f"{SAM}: // note"),
        ("{displayname} ({mxid}): ", f"Sam ({SAM}): note: x"),
        ("", "// note"),
        ("— ", "— note: x"),
    ],
)
async def test_notes_stay_internal_with_any_prefix_template(template: str, text: str) -> None:
    assert await NoteGate(template).check(staff(text)) == Internal()


@pytest.mark.parametrize(
    "text",
    [
        "Sam: hello, see https://example.com/note: x",
        "Sam: please note: we close at five",
        "Sam: a\n// on the second line",
        "Sam: * Sam // waves",
        "Sam: ",
    ],
)
async def test_ordinary_messages_pass(text: str) -> None:
    assert await NoteGate().check(staff(text)) is PASS


async def test_bridge_messages_are_never_notes() -> None:
    outgoing = Outgoing(REF, Origin.BRIDGE, "welcome", "// not a note", reason="welcome")
    assert await NoteGate().check(outgoing) is PASS


def canned_gate(services: FakeServices | None = None) -> CannedGate:
    config = InboxConfig(
        teams={"support": team(canned=CANNED), "sales": team(name="sales", canned={})},
        accounts={},
        rules=(),
    )
    return CannedGate(services or FakeServices(names={SAM: "Sam"}), config)


async def conversation(team_name: str = "support", name: str | None = "Ann") -> None:
    await Portal(ACC, CHAT, REF.room_id, name=name).insert()
    assert await InboxConversation.create(ACC, CHAT, team_name, 1)


async def test_canned_expands_with_placeholders(database: object) -> None:
    await conversation()
    verdict = await canned_gate().check(staff("Sam: !thanks"))
    assert verdict == Rewrite("Sam: Thank you, Ann! Sam of support", None)
    assert await canned_gate().check(staff("Sam:  !BYE ")) == Rewrite("Sam: Bye", None)


async def test_canned_without_a_prefix_and_a_nameless_customer(database: object) -> None:
    await conversation(name=None)
    assert await canned_gate().check(staff("!thanks")) == Rewrite(
        "Thank you, ! Sam of support", None
    )


async def test_unknown_code_is_refused(database: object) -> None:
    await conversation()
    verdict = await canned_gate().check(staff("Sam: !thnaks"))
    assert verdict == Refuse("no canned reply !thnaks; see canned list")


async def test_only_a_whole_short_form_is_canned(database: object) -> None:
    await conversation()
    gate = canned_gate()
    for text in ("Sam: !thanks a lot", "Sam: see !thanks", "Sam: !!", "Sam: hi!", "Sam: !"):
        assert await gate.check(staff(text)) is PASS, text


async def test_personal_overrides_team_and_added_overrides_yaml(database: object) -> None:
    await conversation()
    gate = canned_gate()
    await InboxCanned("support", None, "bye", "Goodbye from {team}", SAM, 1).save()
    assert await gate.check(staff("Sam: !bye")) == Rewrite("Sam: Goodbye from support", None)
    await InboxCanned(None, SAM, "bye", "Cheers, {customer}", SAM, 2).save()
    assert await gate.check(staff("Sam: !bye")) == Rewrite("Sam: Cheers, Ann", None)
    other = "@kim:example.com"
    assert await gate.check(staff("Kim: !bye", other)) == Rewrite(
        "Kim: Goodbye from support", None
    )


async def test_other_teams_replies_do_not_apply(database: object) -> None:
    await conversation("sales")
    assert await canned_gate().check(staff("Sam: !thanks")) == Refuse(
        "no canned reply !thanks; see canned list"
    )


async def test_conversations_outside_the_inbox_and_bridge_messages_pass(database: object) -> None:
    gate = canned_gate()
    assert await gate.check(staff("Sam: !thanks")) is PASS
    await conversation()
    bridge = Outgoing(REF, Origin.BRIDGE, "feature", "!thanks", reason="x")
    assert await gate.check(bridge) is PASS
