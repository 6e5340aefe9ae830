"""Team rooms, spaces and the status in the room list: the namer's mapping and the texts, then
the inbox wired on the seams (the recording services of ``test_module``, a real database on
both backends): the team room and space made once, a new conversation announced and put in
the space, the queue view posted once and edited when it changes, rooms renamed; a team room
named in the config joined."""

from __future__ import annotations

import asyncio
import copy
from functools import partial

import pytest
from mautrix.util.async_db import Database

from bridge.db import InboxConversation, Portal
from bridge.db.inbox import InboxTeam
from bridge.features.inbox.desk import Desk
from bridge.features.inbox.jobs import tick
from bridge.features.inbox.rooms import TeamRoomDesk, queue_text, room_name, snippet, waited
from bridge.seams import ConversationRef
from bridge.types import RemoteChatID
from tests.db.support import database, databases
from tests.features.inbox.test_module import (
    ACC,
    ANN,
    SAM,
    SECTION,
    FakeServices,
    Wired,
    options,
    ref,
    row,
    wired,
)

__all__ = ["database", "databases", "wired"]

MINUTE = 60_000


def conversation(
    status: str, assignee: str | None = None, waiting: int | None = 0
) -> InboxConversation:
    return InboxConversation(
        ACC, "c1", "support", status, assignee, None, waiting, None, 0, 0, None, None
    )


@pytest.mark.parametrize(
    ("status", "assignee", "name"),
    [
        ("open", ANN, "🟢 Customer"),
        ("open", None, "🟡 Customer"),
        ("pending", ANN, "⏸ Customer"),
        ("snoozed", ANN, "💤 Customer"),
        ("resolved", None, "✅ Customer"),
    ],
)
def test_room_name_shows_the_status(status: str, assignee: str | None, name: str) -> None:
    assert room_name(conversation(status, assignee), "Customer") == name


def test_room_name_without_inbox_row() -> None:
    assert room_name(None, "Customer") == "Customer"


def test_texts() -> None:
    assert waited(59_999) == "0 min"
    assert waited(125 * MINUTE) == "2 h 05 min"
    assert waited((26 * 60 + 3) * MINUTE) == "1 d 2 h"
    assert snippet("a\n  b") == "a b"
    assert snippet("x" * 100, 10) == "x" * 9 + "…"
    assert queue_text("support", [], 0) == "📋 Queue of team support: nobody waits."
    portal = Portal(ACC, "c1", "!c1:x", name="Customer c1")
    rows = [(conversation("open", waiting=0), portal), (conversation("open", waiting=None), None)]
    assert queue_text("support", rows, 3 * MINUTE) == (
        "📋 Queue of team support: 2 waiting, longest first\n"
        f"1. Customer c1 ({ACC}), waiting 3 min: https://matrix.to/#/!c1:x\n"
        f"2. c1 ({ACC}), answered"
    )
    # A customer's name cannot break the numbered lines.
    odd = Portal(ACC, "c1", None, name="Jane\n2. Doe")
    assert queue_text("support", [(conversation("open", waiting=None), odd)], 0).endswith(
        f"\n1. Jane 2. Doe ({ACC}), answered"
    )


async def test_team_room_and_space_made_once(wired: Wired) -> None:
    services = wired.services
    await tick(wired_desk(wired))
    rooms = await InboxTeam.rooms("support")
    assert (rooms.room_id, rooms.space_id) == ("!team-support:x", "!space-support:x")
    child = ("!space-support:x", "m.space.child", "!team-support:x")
    assert services.state[child] == {"via": ["example.com"]}
    assert services.texts("!team-support:x") == ["📋 Queue of team support: nobody waits."]
    await tick(wired_desk(wired))
    assert len(services.texts("!team-support:x")) == 1 and services.edits == []


def wired_desk(wired: Wired) -> Desk:
    """The inbox's desk, as the periodic job was given it (``partial(tick, desk)``)."""
    run = wired.seams.jobs[0].run
    assert isinstance(run, partial)
    desk = run.args[0]
    assert isinstance(desk, Desk)
    return desk


async def test_new_conversation_announced_and_in_the_space(wired: Wired) -> None:
    await wired.customer("c1", "Hello,\nmy order   is late", "m1", first=True)
    await wired.customer("c1", "Hello,\nmy order   is late", "m1", first=True)  # a retry
    texts = wired.services.texts("!team-support:x")
    assert texts == [
        f"📥 New conversation from c1 ({ACC}): “Hello, my order is late” https://matrix.to/#/!c1:x"
    ]
    assert ("!space-support:x", "m.space.child", "!c1:x") in wired.services.state
    assert "c1" in wired.services.renamed


async def test_queue_view_edited_when_it_changes(wired: Wired) -> None:
    await wired.customer("c1", "what is the price?", "m1", first=True)  # sales: by hand
    desk = wired_desk(wired)
    await tick(desk)
    view = "!team-sales:x"
    first = [t for t in wired.services.texts(view) if t.startswith("📋")]
    assert first == [
        "📋 Queue of team sales: 1 waiting, longest first\n"
        f"1. Customer c1 ({ACC}), waiting 0 min: https://matrix.to/#/!c1:x"
    ]
    await tick(desk)
    assert wired.services.edits == []
    wired.services.renamed.clear()
    assert await wired.ask(SAM, "assign me", "c1") == "👤 sam took this conversation."
    assert wired.services.renamed == ["c1"]
    await tick(desk)
    assert wired.services.edits == [
        ("!team-sales:x", "$event", "📋 Queue of team sales: nobody waits.")
    ]


async def test_namer_and_renames(wired: Wired) -> None:
    namer = wired.seams.room_namer
    assert namer is not None
    c1 = ref("c1")
    assert await namer(c1, "Customer c1") == "Customer c1"
    await wired.customer("c1", "hello", "m1", first=True)
    assert (await row("c1")).assignee == ANN
    assert await namer(c1, "Customer c1") == "🟢 Customer c1"
    wired.services.renamed.clear()
    assert (await wired.ask(ANN, "resolve", "c1")).startswith("✅")
    assert wired.services.renamed == ["c1"]
    assert await namer(c1, "Customer c1") == "✅ Customer c1"
    other = ConversationRef(ACC, RemoteChatID("c9"), None)
    assert await namer(other, "Someone") == "Someone"


async def test_the_namer_takes_a_row_just_stored(database: Database) -> None:
    """Inside ``stored`` the namer names from the row given (here one the database does not
    have); afterwards, an error inside included, it reads the database again."""
    parsed = options(SECTION)
    assert parsed is not None
    rooms = TeamRoomDesk(FakeServices(), parsed.config, "x")
    c1 = ref("c1")
    elsewhere: asyncio.Queue[asyncio.Future[str]] = asyncio.Queue()

    async def other_task() -> None:  # a rename of another task meanwhile reads what is stored
        (await elsewhere.get()).set_result(await rooms.namer(c1, "Customer"))

    task = asyncio.create_task(other_task())
    with rooms.stored(conversation("open", ANN)):
        assert await rooms.namer(c1, "Customer") == "🟢 Customer"
        assert await rooms.namer(ref("c2"), "Other") == "Other"  # another conversation
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        await elsewhere.put(answer)
        assert await answer == "Customer"
    await task
    assert await rooms.namer(c1, "Customer") == "Customer"
    with pytest.raises(RuntimeError), rooms.stored(conversation("resolved")):
        raise RuntimeError
    assert await rooms.namer(c1, "Customer") == "Customer"


async def test_a_configured_team_room_is_joined(database: Database) -> None:
    section = copy.deepcopy(SECTION)
    section["teams"]["sales"]["room"] = "#sales:example.com"
    opts = options(section)
    assert opts is not None
    services = FakeServices()
    rooms = TeamRoomDesk(services, opts.config, "example.com")
    stored = await rooms.rooms("sales")
    assert stored is not None
    assert (stored.room_id, stored.space_id) == ("!joined-sales:example.com", "!space-sales:x")
    assert await rooms.rooms("nobody") is None


async def test_the_lines_shown_are_stored(wired: Wired) -> None:
    await wired.customer("c1", "what is the price?", "m1", first=True)
    desk = wired_desk(wired)
    await tick(desk)
    assert (await InboxTeam.rooms("sales")).queue_shown == [(ACC, "c1")]
    # Stored before this column existed: the lines are stored at the next tick, the view
    # (the same text) left as it is.
    await InboxTeam.db.execute("UPDATE inbox_team SET queue_shown=NULL WHERE team='sales'")
    assert (await InboxTeam.rooms("sales")).queue_shown == []
    await tick(desk)
    assert (await InboxTeam.rooms("sales")).queue_shown == [(ACC, "c1")]
    assert wired.services.edits == []
