"""The inbox's assignment engine, on SQLite and on a real PostgreSQL: floods, races, limits,
availability, waiting order and the way back of a reopened conversation."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import dataclass

import pytest
from mautrix.util.async_db import Database, UpgradeTable

import bridge.db
from bridge.db import InboxConversation, Portal
from bridge.features.inbox.assignment import Assignment
from tests.db.support import Databases, database, databases

__all__ = ["database", "databases"]

ACC = "acc"
FIVE = tuple(f"@agent{n}:example.com" for n in range(1, 6))
A, B, C = FIVE[:3]
POOL_OF_FIVE = {"min_size": 5, "max_size": 5}


@dataclass(frozen=True)
class Team:
    name: str
    members: tuple[str, ...]
    mode: str = "round_robin"
    limit: int | None = None


def engine(*teams: Team) -> Assignment:
    clock = itertools.count(1_000_000)
    return Assignment(teams, clock=lambda: next(clock))


async def new(chat: str, team: str = "support", at: int = 1) -> None:
    assert await InboxConversation.create(ACC, chat, team, at)


async def assignee(chat: str) -> str | None:
    conversation = await InboxConversation.get(ACC, chat)
    assert conversation is not None
    return conversation.assignee


@pytest.mark.parametrize("mode", ["round_robin", "least_open"])
async def test_a_flood_of_new_conversations_is_shared_evenly(
    databases: Databases, mode: str
) -> None:
    # Five connections, so that the assignments really run at once on both backends.
    db = Database.create(
        databases.url, upgrade_table=bridge.db.upgrade_table, db_args=POOL_OF_FIVE
    )
    bridge.db.init(db)
    await db.start()
    try:
        await flood(mode)
    finally:
        await db.stop()


async def flood(mode: str) -> None:
    inbox = engine(Team("support", FIVE, mode))

    async def arrive(n: int) -> list[tuple[str, str, str]]:
        await new(f"chat-{n}", at=n)
        return await inbox.assign_next("support")

    results = await asyncio.gather(*(arrive(n) for n in range(100)))
    assigned = [a for result in results for a in result]
    assert len(assigned) == 100
    assert len({(acc, chat) for acc, chat, _ in assigned}) == 100  # none twice
    assert Counter(mxid for _, _, mxid in assigned) == dict.fromkeys(FIVE, 20)
    for _, chat, mxid in assigned:
        assert await assignee(chat) == mxid
    assert await inbox.open_counts("support") == dict.fromkeys(FIVE, 20)
    assert await InboxConversation.queue("support") == []


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="support"):
        engine(Team("support", FIVE, "random"))


async def test_racing_claims_have_one_winner(database: Database) -> None:
    inbox = engine(Team("support", FIVE, "manual"))
    await new("chat")
    wins = await asyncio.gather(*(inbox.claim(ACC, "chat", mxid) for mxid in FIVE))
    assert wins.count(True) == 1
    assert await assignee("chat") == FIVE[wins.index(True)]
    assert not await inbox.claim(ACC, "chat", FIVE[0])
    assert await inbox.assign_next("support") == []  # manual: nobody is given one


async def test_racing_transfers_each_name_whom_they_took_it_from(database: Database) -> None:
    inbox = engine(Team("support", FIVE, "manual"))
    await new("chat")
    assert await inbox.claim(ACC, "chat", A)
    had = await asyncio.gather(
        *(InboxConversation.transfer(ACC, "chat", team, 2) for team in ("sales", "billing"))
    )
    assert sorted(had, key=str) == [A, None]  # the second took it from nobody


async def test_claims_racing_automatic_assignment_never_double(database: Database) -> None:
    inbox = engine(Team("support", (A, B)))
    for n in range(20):
        await new(f"chat-{n}", at=n)
    claims = [inbox.claim(ACC, f"chat-{n}", C) for n in range(20)]
    results = await asyncio.gather(inbox.assign_next("support"), *claims)
    automatic = results[0]
    claimed = {f"chat-{n}" for n, won in enumerate(results[1:]) if won}
    assert len(automatic) + len(claimed) == 20
    assert not claimed & {chat for _, chat, _ in automatic}
    for n in range(20):
        got = await assignee(f"chat-{n}")
        assert got == C if f"chat-{n}" in claimed else got in (A, B)


async def test_limits_and_availability(database: Database) -> None:
    inbox = engine(Team("support", (A, B, C), "least_open", limit=2))
    await inbox.set_available(C, False)
    for n in range(6):
        await new(f"chat-{n}", at=n)
    first = await inbox.assign_next("support")
    assert Counter(mxid for *_, mxid in first) == {A: 2, B: 2}
    assert len(await InboxConversation.queue("support")) == 2
    assert await inbox.assign_next("support") == []  # everyone available is full

    await inbox.set_available(C, True)
    assert [chat for _, chat, mxid in await inbox.assign_next("support")] == [
        "chat-4", "chat-5",
    ]  # fmt: skip
    assert await inbox.open_counts("support") == {A: 2, B: 2, C: 2}

    # Capacity frees up: the waiting ones go to who has room, longest waiting first.
    await new("chat-6", at=6)
    assert await inbox.assign_next("support") == []
    await inbox.unassign(ACC, "chat-0")
    await InboxConversation.set_status(ACC, "chat-1", "resolved", 100)
    given = await inbox.assign_next("support")
    assert [(chat, mxid) for _, chat, mxid in given] == [("chat-0", A), ("chat-6", B)]
    assert await inbox.open_counts("support") == {A: 2, B: 2, C: 2}
    assert inbox.teams_of(A) == ["support"]


async def test_the_limit_counts_every_team(database: Database) -> None:
    inbox = engine(Team("sales", (A,), limit=1), Team("support", (A,), limit=1))
    await new("sales-chat", team="sales")
    await new("support-chat", team="support")
    results = await asyncio.gather(inbox.assign_next("sales"), inbox.assign_next("support"))
    assert sum(len(r) for r in results) == 1


async def test_longest_waiting_first(database: Database) -> None:
    inbox = engine(Team("support", (A,), limit=1))
    await new("answered", at=1)
    await InboxConversation.staff_replied(ACC, "answered", 5)  # nobody waits: last
    await new("late", at=30)
    await new("early", at=20)
    await new("earliest", at=10)
    await InboxConversation.staff_replied(ACC, "earliest", 15)
    await InboxConversation.customer_wrote(ACC, "earliest", 25)  # waits again, since 25
    await InboxConversation.customer_wrote(ACC, "early", 40)  # waited already: unchanged
    queue = await InboxConversation.queue("support")
    assert [c.chat for c in queue] == ["early", "earliest", "late", "answered"]
    for chat in ("early", "earliest", "late", "answered"):
        assert [c for _, c, _ in await inbox.assign_next("support")] == [chat]
        await InboxConversation.set_status(ACC, chat, "resolved", 50)
    answered = await InboxConversation.get(ACC, "answered")
    assert answered is not None and answered.first_response_at == 5
    assert answered.resolved_at == 50


async def test_a_reopened_conversation_goes_back_to_its_last_assignee(
    database: Database,
) -> None:
    inbox = engine(Team("support", (A, B), limit=1))
    await new("chat")
    assert await inbox.claim(ACC, "chat", A)
    await InboxConversation.set_status(ACC, "chat", "resolved", 10)
    await inbox.unassign(ACC, "chat")
    assert await inbox.reopen(ACC, "chat") == A
    assert await inbox.reopen(ACC, "chat") == A  # a retried hook changes nothing
    conversation = await InboxConversation.get(ACC, "chat")
    assert conversation is not None
    assert (conversation.status, conversation.assignee) == ("open", A)
    assert conversation.waiting_since is not None

    # Away: back to the queue, and the next available member gets it.
    await InboxConversation.set_status(ACC, "chat", "snoozed", 20, snoozed_until=99)
    assert [c.chat for c in await InboxConversation.due_snoozes(99)] == ["chat"]
    await inbox.set_available(A, False)
    assert await inbox.reopen(ACC, "chat") is None
    conversation = await InboxConversation.get(ACC, "chat")
    assert conversation is not None
    assert (conversation.assignee, conversation.last_assignee) == (None, A)
    assert conversation.snoozed_until is None
    assert [(c, m) for _, c, m in await inbox.assign_next("support")] == [("chat", B)]

    # At the limit: queued as well.
    await new("other")
    assert await inbox.claim(ACC, "other", A)
    await inbox.set_available(A, True)
    await InboxConversation.set_status(ACC, "chat", "resolved", 30)
    await InboxConversation.assign(ACC, "chat", A, 31)
    assert await inbox.reopen(ACC, "chat") is None
    assert await inbox.reopen(ACC, "missing") is None


async def test_assigned_to_lists_a_members_conversations(database: Database) -> None:
    inbox = engine(Team("support", (A,)))
    await new("one", at=2)
    await new("two", at=1)
    await inbox.assign_next("support")
    await InboxConversation.set_status(ACC, "one", "pending", 5)
    assert [c.chat for c in await InboxConversation.assigned_to(A)] == ["two", "one"]
    assert [c.chat for c in await InboxConversation.assigned_to(A, ["open"])] == ["two"]
    assert not await InboxConversation.create(ACC, "one", "support", 9)  # exists already
    with pytest.raises(ValueError):
        await InboxConversation.set_status(ACC, "one", "closed", 9)
    agent = await bridge.db.InboxAgent.get(A)
    assert agent is None or agent.available  # never switched: available
    await inbox.set_available(A, False)
    agent = await bridge.db.InboxAgent.get(A)
    assert agent is not None and agent.available is False


async def test_migration_on_an_existing_database(databases: Databases) -> None:
    before = UpgradeTable()
    before.upgrades = bridge.db.upgrade_table.upgrades[:5]
    old = Database.create(databases.url, upgrade_table=before)
    bridge.db.init(old)
    await old.start()
    await Portal("acc", "chat", "!room:example.com", created_at=1).insert()
    assert await old.fetchval("SELECT version FROM version") == 5
    await old.stop()

    db = await databases.open()
    assert await db.fetchval("SELECT version FROM version") == len(
        bridge.db.upgrade_table.upgrades
    )
    portal = await Portal.get("acc", "chat")
    assert portal is not None and portal.room_id == "!room:example.com"
    assert await db.fetchval("SELECT COUNT(*) FROM inbox_conversation") == 0
    inbox = engine(Team("support", (A,)))
    await new("chat")
    assert [m for *_, m in await inbox.assign_next("support")] == [A]
