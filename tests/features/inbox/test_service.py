"""The inbox's service commands and timers, wired on the seams with a real database on both
backends: figures recorded by the delivered hook and ``resolve``, ``stats``, ``transfer``,
``snooze until``, the waiting-limit announcement (in the team room and the conversation's,
once per wait, retried after a failure) and the idle resolution."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from mautrix.util.async_db import Database

from bridge.db import InboxConversation, InboxResponse
from bridge.features.inbox.assignment import now_ms
from bridge.seams import Origin, Outgoing
from tests.db.support import database, databases
from tests.features.inbox.test_module import ACC, ANN, BOB, SAM, SECTION, Wired, ref, row, wire

__all__ = ["database", "databases"]

MINUTE = 60_000
TIMED: dict[str, Any] = copy.deepcopy(SECTION)
TIMED["teams"]["support"].update(waiting_limit="10m")
TIMED["teams"]["sales"].update(
    resolve_idle="1h", hours={"timezone": "Europe/Berlin", "weekly": {"mon-sun": "00:00-24:00"}}
)


@pytest.fixture
async def wired(database: Database) -> Wired:
    return await wire(TIMED)


async def staff_reply(wired: Wired, chat: str, sender: str = ANN) -> None:
    await wired.seams.delivered(Outgoing(ref(chat), Origin.STAFF, sender, "hello"))


async def test_replies_and_resolution_are_recorded(wired: Wired) -> None:
    await wired.customer("c1", "hello", "m1", first=True)
    await staff_reply(wired, "c1")
    await staff_reply(wired, "c1")  # nobody waited
    await wired.customer("c1", "and?", "m2")
    await staff_reply(wired, "c1")
    await wired.seams.delivered(Outgoing(ref("c1"), Origin.BRIDGE, "welcome", "hi"))
    assert await wired.ask(ANN, "resolve", "c1") == "✅ ann resolved this conversation."
    kinds = [figure.kind for figure in await InboxResponse.of(ACC, "c1")]
    assert kinds == ["first", "next", "resolution"]


async def test_stats(wired: Wired) -> None:
    await wired.customer("c1", "hello", "m1", first=True)
    await wired.customer("c2", "hello", "m2", first=True)
    await wired.customer("c3", "what is the price", "m3", first=True)
    await staff_reply(wired, "c1")
    first, second = (await wired.ask(ANN, "stats", "c1")).split("\n")
    assert first.startswith("Team support: 2 open, 0 unassigned; the longest wait is ")
    assert second.startswith("First responses today: 1, median ")
    assert (await wired.ask(SAM, "stats")).startswith("Team sales: 1 open, 1 unassigned;")
    assert (await wired.ask(SAM, "stats sales")).endswith(
        "First responses today: 0, median - (- in business hours)."
    )
    assert await wired.ask(SAM, "stats support") == (
        "Only the members of team support may see its figures."
    )
    assert (await wired.ask(SAM, "stats nowhere")).startswith("Usage: stats [team] (teams: ")


async def test_transfer(wired: Wired) -> None:
    await wired.customer("c1", "hello", "m1", first=True)
    assert (await row("c1")).assignee == ANN
    assert await wired.ask(ANN, "transfer sales", "c1") == (
        "➡️ ann transferred this conversation from team support to team sales; "
        "waiting in the queue."
    )
    moved = await row("c1")
    assert (moved.team, moved.assignee, moved.status) == ("sales", None, "open")
    assert ("!c1:x", SAM) in wired.services.invites  # sales invites the whole team
    assert await wired.ask(ANN, "transfer support", "c1") == (
        "Only the members of team sales may do this."
    )
    assert await wired.ask(SAM, "transfer sales", "c1") == (
        "This conversation is in team sales already."
    )
    assert (await wired.ask(SAM, "transfer nowhere", "c1")).startswith("There is no team")
    assert (await wired.ask(SAM, "transfer", "c1")).startswith("Usage: transfer <team>")
    # To a round-robin team: assigned at once.
    assert await wired.ask(SAM, "transfer support", "c1") == (
        "➡️ sam transferred this conversation from team sales to team support; assigned to bob."
    )
    assert (await row("c1")).assignee == BOB


async def test_snooze_until(wired: Wired) -> None:
    await wired.customer("c3", "price?", "m1", first=True)
    answer = await wired.ask(SAM, "snooze until 2099-12-24 09:00", "c3")
    assert answer == "💤 sam snoozed this conversation until Thu 2099-12-24 09:00 (Europe/Berlin)."
    assert (await row("c3")).status == "snoozed"
    assert (await wired.ask(SAM, "snooze until 2020-01-01 09:00", "c3")).endswith(
        "(a time to come, in Europe/Berlin)"
    )
    assert (await wired.ask(SAM, "snooze until 14:00", "c3")).startswith("💤 sam snoozed")
    # A weekday alone: that day's opening (sales is open around the clock: midnight).
    assert (await wired.ask(SAM, "snooze until monday", "c3")).startswith("💤 sam snoozed")
    until = (await row("c3")).snoozed_until
    assert until is not None and now_ms() < until <= now_ms() + 7 * 24 * 60 * MINUTE
    local = datetime.fromtimestamp(until / 1000, ZoneInfo("Europe/Berlin"))
    assert (local.weekday(), local.hour, local.minute) == (0, 0, 0)
    assert await wired.ask(SAM, "snooze until funday", "c3") == (
        "Usage: snooze <duration: 30m, 2h, 1d> | snooze until [YYYY-MM-DD | tomorrow | "
        "monday…sunday] [HH:MM] (a time to come, in Europe/Berlin)"
    )


def waits(wired: Wired, room_id: str) -> list[str]:
    return [text for text in wired.services.texts(room_id) if text.startswith("⌛")]


async def test_waiting_limit_is_announced_once_per_wait(wired: Wired) -> None:
    (job,) = wired.seams.jobs
    assert await InboxConversation.create(ACC, "c1", "support", now_ms() - 11 * MINUTE)
    await job.run()
    await job.run()
    assert waits(wired, "!team-support:x") == [
        f"⌛ Customer c1 ({ACC}) has waited 11m 00s for an answer (limit 10m 00s); "
        "assigned to ann. https://matrix.to/#/!c1:x"
    ]
    assert waits(wired, "!c1:x") == [
        "⌛ The customer has waited 11m 00s for an answer (limit 10m 00s)"
    ]
    assert await InboxConversation.over_waiting_limit("support", now_ms()) == []
    # Answered, then a new wait over the limit: told again.
    await staff_reply(wired, "c1")
    await InboxConversation.customer_wrote(ACC, "c1", now_ms() - 20 * MINUTE)
    await job.run()
    assert len(waits(wired, "!c1:x")) == 2 and waits(wired, "!c1:x")[1].startswith(
        "⌛ The customer has waited 20m"
    )
    assert waits(wired, "!team-support:x")[1].startswith(f"⌛ Customer c1 ({ACC}) has waited 20m")
    assert waits(wired, "!team-sales:x") == []


async def test_a_failed_announcement_is_retried_without_doubles(
    wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The homeserver fails once for the team room (c2, the longest waiting) and once for c1's
    room: the other conversation is announced all the same and the queue views updated; the
    next tick posts what failed, and nothing twice (the same transaction ids)."""
    (job,) = wired.seams.jobs
    await wired.ask(ANN, "away")
    await wired.ask(BOB, "away")  # nobody assigned: "assigned to nobody"
    assert await InboxConversation.create(ACC, "c1", "support", now_ms() - 11 * MINUTE)
    assert await InboxConversation.create(ACC, "c2", "support", now_ms() - 12 * MINUTE)
    post = wired.services.notice
    failures = [("!team-support:x", "c2"), ("!c1:x", "")]

    async def flaky(room_id: str, text: str, *, txn: str | None = None) -> str | None:
        for failure in failures:
            if room_id == failure[0] and failure[1] in text and text.startswith("⌛"):
                failures.remove(failure)
                raise ConnectionError("the homeserver is away")
        return await post(room_id, text, txn=txn)

    monkeypatch.setattr(wired.services, "notice", flaky)
    await job.run()
    assert waits(wired, "!team-support:x") == [
        f"⌛ Customer c1 ({ACC}) has waited 11m 00s for an answer (limit 10m 00s); "
        "assigned to nobody. https://matrix.to/#/!c1:x"
    ]  # posted before c1's room failed
    assert waits(wired, "!c2:x") == []
    assert wired.services.texts("!team-sales:x") == ["📋 Queue of team sales: nobody waits."]
    listed = await InboxConversation.over_waiting_limit("support", now_ms())
    assert sorted(r.chat for r in listed) == ["c1", "c2"]  # neither marked yet
    await job.run()
    await job.run()
    assert failures == []
    team = waits(wired, "!team-support:x")
    assert len(team) == 2 and team[1].startswith(f"⌛ Customer c2 ({ACC}) has waited 12m")
    assert len(waits(wired, "!c1:x")) == 1 and len(waits(wired, "!c2:x")) == 1
    assert await InboxConversation.over_waiting_limit("support", now_ms()) == []


async def test_idle_conversations_are_resolved(wired: Wired) -> None:
    (job,) = wired.seams.jobs
    assert await InboxConversation.create(ACC, "c3", "sales", now_ms() - 61 * MINUTE)
    assert await InboxConversation.create(ACC, "c4", "sales", now_ms() - 59 * MINUTE)
    await job.run()
    assert [(await row(chat)).status for chat in ("c3", "c4")] == ["resolved", "open"]
    assert wired.services.texts("!c3:x") == ["✅ Resolved after 1h 00m without activity"]
    (figure,) = await InboxResponse.of(ACC, "c3")
    assert figure.kind == "resolution" and figure.business_seconds >= 61 * 60
