"""``claim``, wired on the seams with a real database on both backends: from the team room the
longest waiting conversation or a line of the queue view (the one read there, even when the
queue changed since), the claimer invited and the conversation's room told; inside a
conversation's room ``assign me``; racing claims; who may claim and the usage."""

from __future__ import annotations

import asyncio

from bridge.db import InboxConversation
from bridge.features.inbox.assignment import now_ms
from bridge.features.inbox.claims import USAGE
from bridge.features.inbox.jobs import tick
from tests.db.support import database, databases
from tests.features.inbox.test_module import ACC, ADMIN, ANN, SAM, Ctx, Wired, row, wired
from tests.features.inbox.test_rooms import wired_desk

__all__ = ["database", "databases", "wired"]

MINUTE = 60_000
TEAM_ROOM = "!team-sales:x"


async def in_team_room(wired: Wired, sender: str, command: str) -> str:
    name, *args = command.split()
    ctx = Ctx(wired.services, sender, TEAM_ROOM, None, event_id=f"$claim-{now_ms()}")
    return await wired.commands[name].run(ctx, args)


async def waiting(wired: Wired, *chats: str) -> None:
    """Sales conversations (assigned by hand) waiting 10, 9, ... minutes, then the queue view
    brought up to date by the periodic job."""
    now = now_ms()
    for n, chat in enumerate(chats):
        assert await InboxConversation.create(ACC, chat, "sales", now - (10 - n) * MINUTE)
    await tick(wired_desk(wired))


def view(wired: Wired) -> str:
    """The queue view of team sales as it reads now (posted, then edited)."""
    edits = [text for room, _, text in wired.services.edits if room == TEAM_ROOM]
    posted = [t for t in wired.services.texts(TEAM_ROOM) if t.startswith("📋")]
    return (posted + edits)[-1]


async def test_claim_from_the_team_room(wired: Wired) -> None:
    await waiting(wired, "c1", "c2", "c3")
    assert view(wired).splitlines()[1:] == [
        f"1. Customer c1 ({ACC}), waiting 10 min: https://matrix.to/#/!c1:x",
        f"2. Customer c2 ({ACC}), waiting 9 min: https://matrix.to/#/!c2:x",
        f"3. Customer c3 ({ACC}), waiting 8 min: https://matrix.to/#/!c3:x",
    ]
    wired.services.renamed.clear()
    assert await in_team_room(wired, SAM, "claim 2") == (
        f"👤 sam took Customer c2 ({ACC}): https://matrix.to/#/!c2:x"
    )
    assert (await row("c2")).assignee == SAM
    assert ("!c2:x", SAM) in wired.services.invites
    assert wired.services.texts("!c2:x") == ["👤 sam took this conversation."]
    assert wired.services.renamed == ["c2"]
    # The view was brought up to date at once: its lines are numbered again.
    assert [line[:14] for line in view(wired).splitlines()[1:]] == [
        "1. Customer c1", "2. Customer c3",
    ]  # fmt: skip
    assert await in_team_room(wired, SAM, "claim 3") == (
        "The queue view of team sales has no line 3 (it shows 2 lines)."
    )
    assert (await in_team_room(wired, SAM, "claim")).startswith("👤 sam took Customer c1 ")
    assert (await row("c1")).assignee == SAM
    assert (await in_team_room(wired, SAM, "claim 1")).startswith("👤 sam took Customer c3 ")
    assert await in_team_room(wired, SAM, "claim") == "Nobody waits in the queue of team sales."
    assert view(wired) == "📋 Queue of team sales: nobody waits."


async def test_a_line_is_the_conversation_read_there(wired: Wired) -> None:
    await waiting(wired, "c1", "c2")
    # Taken inside its room and resolved before the view was brought up to date.
    assert await wired.ask(ADMIN, "assign me", "c1") == "👤 root took this conversation."
    assert (await wired.ask(SAM, "resolve", "c2")).startswith("✅")
    assert await in_team_room(wired, SAM, "claim 1") == (
        "root has the conversation of line 1 already."
    )
    assert await in_team_room(wired, SAM, "claim 2") == (
        "Line 2 is no longer in the queue of team sales."
    )
    assert (await row("c2")).assignee is None
    await InboxConversation.unassign(ACC, "c1", now_ms())
    assert await in_team_room(wired, SAM, "claim 1") == f"👤 sam took Customer c1 ({ACC}): " + (
        "https://matrix.to/#/!c1:x"
    )
    assert await in_team_room(wired, SAM, "claim 1") == (
        "The queue view of team sales has no line 1 (it shows no lines)."
    )


async def test_racing_claims(wired: Wired) -> None:
    await waiting(wired, "c1", "c2", "c3")
    # Both read line 3; the loser is told who has it, or (if the view was brought up to date
    # before it read it) that line 3 is gone.
    answers = await asyncio.gather(
        in_team_room(wired, SAM, "claim 3"), in_team_room(wired, ADMIN, "claim 3")
    )
    won = [answer for answer in answers if answer.startswith("👤")]
    assert len(won) == 1 and won[0].endswith(f"Customer c3 ({ACC}): https://matrix.to/#/!c3:x")
    (lost,) = set(answers) - set(won)
    assert lost in ("sam has the conversation of line 3 already.",
                    "root has the conversation of line 3 already.",
                    "The queue view of team sales has no line 3 (it shows 2 lines).")  # fmt: skip
    winner = SAM if won[0].startswith("👤 sam") else ADMIN
    assert (await row("c3")).assignee == winner
    answers = await asyncio.gather(*(in_team_room(wired, ADMIN, "claim") for _ in range(2)))
    assert sorted(answers) == [
        f"👤 root took Customer c1 ({ACC}): https://matrix.to/#/!c1:x",
        f"👤 root took Customer c2 ({ACC}): https://matrix.to/#/!c2:x",
    ]
    assert [(await row(chat)).assignee for chat in ("c1", "c2")] == [ADMIN, ADMIN]


async def test_claim_inside_a_conversation_and_refusals(wired: Wired) -> None:
    await waiting(wired, "c1")
    assert await wired.ask(SAM, "claim 1", "c1") == USAGE
    assert await wired.ask(ANN, "claim", "c1") == "Only the members of team sales may do this."
    assert await wired.ask(SAM, "claim", "c1") == "👤 sam took this conversation."
    assert await wired.ask(SAM, "claim", "c1") == "This conversation is yours already."
    assert await wired.ask(SAM, "claim") == (
        "Send this in a team room or in a conversation's room."
    )
    assert await in_team_room(wired, ANN, "claim") == (
        "Only the members of team sales may claim its conversations."
    )
    for wrong in ("claim 0", "claim two", "claim 1 2", "claim -1", "claim ²"):
        assert await in_team_room(wired, SAM, wrong) == USAGE
    assert USAGE.startswith("Usage: claim [n]")


async def test_before_the_team_room_exists(wired: Wired) -> None:
    assert await in_team_room(wired, SAM, "claim") == (
        "Send this in a team room or in a conversation's room."
    )
