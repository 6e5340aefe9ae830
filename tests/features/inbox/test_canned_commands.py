"""The ``canned`` command: list, show, add and remove a team's and one's own canned replies,
with usage answered on wrong arguments; on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bridge.db import InboxCanned, InboxConversation
from bridge.features.inbox.canned_commands import USAGE, canned_commands, find_canned
from bridge.features.inbox.config import InboxConfig
from bridge.seams import ConversationRef
from bridge.types import AccountID, RemoteChatID
from tests.db.support import database, databases
from tests.features.inbox.test_replies import FakeServices, team

__all__ = ["database", "databases"]

ACC = AccountID("support-email")
CHAT = RemoteChatID("ann@example.org")
ANN, KIM, ADMIN = "@ann:example.com", "@kim:example.com", "@root:example.com"
CONFIG = InboxConfig(
    teams={
        "support": team(canned={"thanks": "Thanks, {customer}!"}),
        "sales": team(name="sales", members=(KIM,), canned={}),
    },
    accounts={},
    rules=(),
)


@dataclass
class Context:
    sender: str = ANN
    conversation: ConversationRef | None = None
    room_id: str = "!room:example.com"
    event_id: str = "$event"
    services: FakeServices = field(default_factory=lambda: FakeServices(admins={ADMIN}))


async def canned(command: str, sender: str = ANN, in_portal: bool = False) -> str:
    ref = ConversationRef(ACC, CHAT, "!room:example.com") if in_portal else None
    (cmd,) = canned_commands(CONFIG)
    return await cmd.run(Context(sender, ref), command.split())


@pytest.fixture
async def support_room(database: object) -> None:
    assert await InboxConversation.create(ACC, CHAT, "support", 1)


async def test_add_list_show_remove_a_team_reply(support_room: None) -> None:
    assert await canned("add hi Hello {customer}, {agent} here", in_portal=True) == (
        "Saved !hi for team support."
    )
    assert await find_canned(CONFIG, "hi", team="support", sender=KIM) == (
        "Hello {customer}, {agent} here"
    )
    listing = await canned("list", in_portal=True)
    assert "!hi — Hello {customer}, {agent} here" in listing
    assert "!thanks — Thanks, {customer}!" in listing
    assert await canned("show !hi --team support") == (
        "!hi (team support):\nHello {customer}, {agent} here"
    )
    assert await canned("remove --team support hi") == "Removed !hi."
    assert await canned("show hi", in_portal=True) == "No canned reply !hi; see canned list."


async def test_added_overrides_yaml_and_remove_brings_it_back(support_room: None) -> None:
    assert await canned("add --team support thanks Many thanks!") == (
        "Saved !thanks for team support."
    )
    assert await canned("show thanks --team support") == "!thanks (team support):\nMany thanks!"
    assert await canned("remove thanks", in_portal=True) == (
        "Removed !thanks (the config's text applies again)."
    )
    assert await canned("remove thanks", in_portal=True) == (
        "!thanks of team support is in the config; change it there."
    )
    assert await canned("show thanks", in_portal=True) == (
        "!thanks (team support):\nThanks, {customer}!"
    )


async def test_personal_replies(database: object) -> None:
    assert await canned("add --mine sig Best, {agent}") == "Saved !sig as your own."
    assert await canned("list") == "Your own canned replies:\n• !sig — Best, {agent}"
    assert await canned("list", sender=KIM) == (
        "You have no canned replies (name a team with --team <name>)."
    )
    assert await canned("show sig") == "!sig (your own):\nBest, {agent}"
    assert await canned("remove --mine sig") == "Removed !sig."
    assert await InboxCanned.all(owner=ANN) == []


async def test_only_the_team_or_admins_change_its_replies(database: object) -> None:
    refused = "Only members and leads of team sales (or admins) change its replies."
    assert await canned("add --team sales hi Hello") == refused
    assert await canned("remove --team sales hi") == refused
    assert await canned("add --team sales hi Hello", sender=KIM) == "Saved !hi for team sales."
    assert await canned("remove --team sales hi", sender=ADMIN) == "Removed !hi."


async def test_bad_texts_codes_and_teams(database: object) -> None:
    assert (await canned("add --mine x Hi {name}")).startswith(
        "Not added: unknown placeholder {name}"
    )
    assert (await canned("add --mine x Hi {")).startswith("Not added: bad braces")
    assert (await canned("add --mine bad.code Hi")).startswith("'bad.code' is not a short code")
    assert await canned("add --team nope x Hi") == (
        "There is no team 'nope' (teams: support, sales)."
    )
    assert await canned("add x Hi") == (
        "Name the team with --team <name> (or use --mine), or run this in a conversation's room."
    )


@pytest.mark.parametrize(
    "command",
    ["", "list extra", "show", "show a b", "add", "add code", "remove", "remove a b", "frob",
     "add --team", "add --mine --team support x y", "list --mine", "add --colour x y"],
)  # fmt: skip
async def test_usage_on_wrong_arguments(database: object, command: str) -> None:
    assert await canned(command) == USAGE


async def test_the_command_answers_from_its_inbox(support_room: None) -> None:
    (cmd,) = canned_commands(CONFIG)
    assert cmd.name == "canned" and cmd.level == "staff"
    ref = ConversationRef(ACC, CHAT, "!room:example.com")
    answer = await cmd.run(Context(ANN, ref), ["show", "thanks"])
    assert answer == "!thanks (team support):\nThanks, {customer}!"
