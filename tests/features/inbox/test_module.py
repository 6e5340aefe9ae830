"""The inbox wired on the seams, with a recording stand-in for the core's services and a real
database on both backends: routing and assignment of a new conversation, its retry, reopening,
the first response, the commands and the periodic job."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest
from mautrix.util.async_db import Database

from bridge import app
from bridge.config import parse
from bridge.connector import ConfigError
from bridge.db import InboxConversation, Portal
from bridge.events import RemoteChat, RemoteMessage, RemoteUser
from bridge.features.inbox.module import INBOX, InboxOptions
from bridge.seams import Command, ConversationRef, Inbound, Origin, Outgoing, Seams
from bridge.types import AccountID, MessageID, RemoteChatID, RemoteUserID
from tests.db.support import database, databases
from tests.test_config import example

__all__ = ["database", "databases"]

ACC = AccountID("support-webhook")
ANN, BOB, LEA, SAM = (f"@{n}:example.com" for n in ("ann", "bob", "lea", "sam"))
ADMIN = "@root:example.com"
SECTION: dict[str, Any] = {
    "teams": {
        "support": {"members": [ANN, BOB], "leads": [LEA], "assignment": "round_robin"},
        "sales": {"members": [SAM], "invite": "team"},
    },
    "accounts": {ACC: "support"},
    "routing": [{"team": "sales", "keywords": ["price"]}],
    "tick": "1s",
}


def options(section: Any) -> InboxOptions | None:
    config = parse(example(lambda data: data.update(features={"inbox": section})))
    return INBOX.parse_config(config.features["inbox"], config)


@dataclass
class FakeServices:
    notices: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Transaction id -> (room, text): a repeated txn posts nothing new."""
    invites: list[tuple[str, str]] = field(default_factory=list)
    admins: set[str] = field(default_factory=lambda: {ADMIN})
    calls: list[str] = field(default_factory=list)
    """In order: ``send_text:<reason>``, ``notice``, ``invite``."""

    async def send_text(self, *args: Any, **kwargs: Any) -> bool:
        self.calls.append(f"send_text:{kwargs.get('reason')}")
        return True

    async def notice(self, room_id: str, text: str, *, txn: str | None = None) -> str | None:
        self.calls.append("notice")
        self.notices.setdefault(txn or str(len(self.notices)), (room_id, text))
        return "$event"

    async def invite(self, room_id: str, user: str, account: str) -> bool:
        self.calls.append("invite")
        self.invites.append((room_id, user))
        return True

    async def displayname(self, room_id: str, user: str) -> str:
        return user[1:].split(":")[0]

    def level(self, actor: str, account: str | None = None) -> str:
        return "admin" if actor in self.admins else "staff"

    def texts(self, room_id: str) -> list[str]:
        return [text for room, text in self.notices.values() if room == room_id]

    # The team rooms' services (tests/features/inbox/test_rooms.py checks what they get).
    renamed: list[str] = field(default_factory=list)
    state: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    edits: list[tuple[str, str, str]] = field(default_factory=list)

    async def bot_room(
        self, key: str, name: str, topic: str, invite: list[str], *, space: bool = False
    ) -> str:
        return f"!{key}:x"

    async def join_room(self, alias_or_id: str) -> str:
        return f"!joined-{alias_or_id.lstrip('#!')}"

    async def set_state(
        self, room_id: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> None:
        self.state[(room_id, event_type, state_key)] = content

    async def edit_notice(self, room_id: str, event_id: str, text: str, *, txn: str) -> None:
        self.edits.append((room_id, event_id, text))

    async def rename(self, conversation: ConversationRef) -> None:
        self.renamed.append(conversation.chat)


@dataclass
class Ctx:
    services: FakeServices
    sender: str
    room_id: str
    conversation: ConversationRef | None
    event_id: str = "$command"


@dataclass
class Wired:
    seams: Seams
    services: FakeServices
    commands: dict[str, Command]

    async def customer(self, chat: str, text: str, mid: str, *, first: bool = False) -> None:
        event = RemoteMessage(
            chat=RemoteChat(RemoteChatID(chat)),
            sender=RemoteUser(RemoteUserID(f"user-{chat}")),
            message_id=MessageID(mid),
            text=text,
        )
        await self.seams.inbound(Inbound(ref(chat), event, first_contact=first))

    async def ask(self, sender: str, command: str, chat: str | None = None) -> str:
        name, *args = command.split()
        room = f"!{chat}:x" if chat else "!dm:x"
        ctx = Ctx(self.services, sender, room, ref(chat) if chat else None)
        return await self.commands[name].run(ctx, args)


def ref(chat: str) -> ConversationRef:
    return ConversationRef(ACC, RemoteChatID(chat), f"!{chat}:x")


async def row(chat: str) -> InboxConversation:
    found = await InboxConversation.get(ACC, chat)
    assert found is not None
    return found


@pytest.fixture
async def wired(database: Database) -> Wired:
    return await wire(SECTION)


async def wire(section: Any, services: FakeServices | None = None) -> Wired:
    """The inbox of ``section`` set up on the seams, with portals for chats c1 to c4."""
    config = parse(example(lambda data: data.update(features={"inbox": section})))
    services = services or FakeServices()
    seams = Seams(config, services)
    opts = INBOX.parse_config(config.features["inbox"], config)
    assert opts is not None
    INBOX.setup(seams, opts)
    for chat in ("c1", "c2", "c3", "c4"):
        await Portal(ACC, chat, f"!{chat}:x", name=f"Customer {chat}").insert()
    return Wired(seams, services, {c.name: c for c in seams.commands})


def test_parse_config() -> None:
    parsed = options(SECTION)
    assert parsed is not None
    assert parsed.config.tick == 1
    assert parsed.hours == {"support": None, "sales": None}
    assert options(None) is None
    assert INBOX in app.FEATURES
    hours = copy.deepcopy(SECTION)
    hours["teams"]["sales"]["hours"] = {"timezone": "Mars/Olympus", "mon": "09:00-17:00"}
    with pytest.raises(ConfigError) as e:
        options(hours)
    assert e.value.key.startswith("features.inbox.teams.sales.hours")
    with pytest.raises(ConfigError) as e:
        options({**SECTION, "tick": "soon"})
    assert e.value.key == "features.inbox.tick"


async def test_new_conversations_are_routed_assigned_and_announced(wired: Wired) -> None:
    await wired.customer("c1", "hello", "m1", first=True)
    await wired.customer("c2", "hi there", "m2", first=True)
    await wired.customer("c3", "what is the price?", "m3", first=True)
    assert [(r.team, r.assignee) for r in [await row("c1"), await row("c2"), await row("c3")]] == [
        ("support", ANN), ("support", BOB), ("sales", None),
    ]  # fmt: skip
    assert wired.services.texts("!c1:x") == [
        "📥 New conversation for team support; assigned to ann"
    ]
    assert wired.services.texts("!c3:x") == [
        "📥 New conversation for team sales; waiting in the queue"
    ]
    invited = wired.services.invites
    assert (
        ("!c1:x", ANN) in invited and ("!c1:x", LEA) in invited and ("!c1:x", BOB) not in invited
    )
    assert ("!c3:x", SAM) in invited  # invite: team
    # The first message retried: nothing new is stored or posted.
    before = dict(wired.services.notices)
    await wired.customer("c1", "hello", "m1", first=True)
    assert wired.services.notices == before and (await row("c1")).assignee == ANN


async def test_reopen_pending_and_first_response(wired: Wired) -> None:
    await wired.customer("c1", "hello", "m1", first=True)
    await wired.seams.delivered(Outgoing(ref("c1"), Origin.STAFF, ANN, "hi"))
    first = await row("c1")
    assert first.waiting_since is None and first.first_response_at is not None
    assert await wired.ask(ANN, "resolve", "c1") == "✅ ann resolved this conversation."
    await wired.customer("c1", "one more thing", "m2")
    again = await row("c1")
    assert (again.status, again.assignee, again.waiting_since is not None) == ("open", ANN, True)
    assert (
        wired.services.texts("!c1:x")[-1] == "🔄 Reopened by the customer's message; back to ann"
    )
    assert (await wired.ask(ANN, "pending", "c1")).startswith("⏳ ann set")
    await wired.customer("c1", "here you are", "m3")
    assert (await row("c1")).status == "open"


async def test_commands(wired: Wired) -> None:
    await wired.customer("c3", "price please", "m1", first=True)
    assert await wired.ask(ANN, "assign me", "c3") == "Only the members of team sales may do this."
    assert await wired.ask(SAM, "assign", "c3") == "Usage: assign @user | me"
    assert await wired.ask(SAM, "status") == "Send this in a conversation's room."
    assert "Customer c3" in await wired.ask(SAM, "queue")
    assert await wired.ask(SAM, "assign me", "c3") == "👤 sam took this conversation."
    assert await wired.ask(ADMIN, "assign me", "c3") == (
        "sam has this conversation; `assign @user` gives it to someone."
    )
    assert await wired.ask(SAM, "queue sales") == "Nobody waits in the queue of team sales."
    assert (await wired.ask(SAM, "inbox")).startswith("Your conversations (1):\n• Customer c3")
    assert (await wired.ask(SAM, "status", "c3")).startswith(
        "Team sales, open, assigned to sam.\nThe customer waits since "
    )
    assert (await wired.ask(SAM, "unassign", "c3")).startswith("👤 sam put this")
    assert await wired.ask(SAM, "snooze soon", "c3") == (
        "Usage: snooze <duration: 30m, 2h, 1d> | "
        "snooze until [YYYY-MM-DD | tomorrow | monday…sunday] [HH:MM]"
    )
    assert await wired.ask(LEA, "assign @lea:example.com", "c3") == (
        "Only the members of team sales may do this."
    )


@pytest.mark.parametrize(
    "command",
    [
        "assign", "assign a b", "unassign x", "resolve x", "reopen x", "pending x", "snooze",
        "status x", "inbox x", "queue a b", "away x", "available x", "stats a b", "transfer",
    ],
)  # fmt: skip
async def test_wrong_arguments_answer_the_usage(wired: Wired, command: str) -> None:
    await wired.customer("c3", "price please", "m1", first=True)
    assert (await wired.ask(SAM, command, "c3")).startswith(f"Usage: {command.split()[0]}")


async def test_automatic_replies_are_queued_before_anyone_is_told(database: Database) -> None:
    """Staff who answer as soon as they are invited or see the notice are queued after the
    welcome (and after the reopened reply): the customer never gets the welcome second."""
    section = copy.deepcopy(SECTION)
    section["teams"]["support"]["replies"] = {
        "welcome": {"default": "Hello!"},
        "reopened": {"default": "Welcome back!"},
    }
    wired = await wire(section)
    await wired.customer("c1", "hello", "m1", first=True)
    calls = wired.services.calls
    assert calls[0] == "send_text:welcome" and {"notice", "invite"} <= set(calls[1:])
    assert (await wired.ask(ANN, "resolve", "c1")).startswith("✅")
    calls.clear()
    await wired.customer("c1", "me again", "m2")
    assert calls[0] == "send_text:reopened" and "notice" in calls[1:]


async def test_a_conversation_from_before_the_inbox_is_routed_by_its_next_message(
    wired: Wired,
) -> None:
    await wired.customer("c7", "about my old order", "m1")  # no first contact, no row
    c7 = await row("c7")
    assert (c7.team, c7.status, c7.assignee) == ("support", "open", ANN)
    assert wired.services.calls.count("send_text:welcome") == 0  # no first contact: no welcome


async def test_capacity_away_and_snooze(wired: Wired) -> None:
    assert (await wired.ask(ANN, "away")).startswith("You are away")
    assert (await wired.ask(BOB, "away")).startswith("You are away")
    await wired.customer("c1", "hello", "m1", first=True)
    assert (await row("c1")).assignee is None
    assert (await wired.ask(BOB, "available")).startswith("You are available")
    assert (await row("c1")).assignee == BOB
    assert wired.services.texts("!c1:x")[-1] == "👤 Assigned to bob"
    assert (await wired.ask(BOB, "snooze 1s", "c1")).startswith("💤 bob snoozed")
    assert (await row("c1")).status == "snoozed"
    await InboxConversation.set_status(ACC, "c1", "snoozed", 1, snoozed_until=2)  # due
    (job,) = wired.seams.jobs
    assert (job.name, job.interval, job.at_start) == ("inbox", 1, True)
    await job.run()
    assert (await row("c1")).status == "open"
    assert wired.services.texts("!c1:x")[-1] == "⏰ Snooze ended; the conversation is open again"
