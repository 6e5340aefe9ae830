"""The homeserver killed (SIGKILL) at random moments mid-stream and started again, twice:
customers keep writing meanwhile (the bridge accepts and holds their messages), staff clients
wait and resend, and everything arrives once, in order, soon after the homeserver is back.
Staff messages the homeserver stored but never pushed to the bridge (it keeps them in memory
until it has made a transaction of them) are found by the bridge's catch-up: none is missing
from the expectations."""

from __future__ import annotations

import asyncio
import random
import time

from tests.fault.channels import Conversation
from tests.fault.conftest import FaultStack
from tests.fault.streams import (
    N,
    begin,
    check,
    latest_bodies,
    numbers,
    run_streams,
    seed_for,
    settle,
)
from tests.infra.staff import StaffClient

KILLS = 2
STREAM = 2 * N
"""Messages per stream here: enough that both kills fall inside the staff streams."""
RESUME_BOUND = 10.0
"""Seconds after the homeserver answers again within which the customer messages the bridge
held meanwhile start to arrive in their rooms."""


async def test_homeserver_killed_mid_stream(
    fault_stack: FaultStack,
    fault_staff: StaffClient,
    fault_conversations: list[Conversation],
) -> None:
    seed = seed_for("homeserver")
    rng = random.Random(seed)
    synapse = fault_stack.stack.synapse
    convs = begin(fault_conversations, "hs")
    resumed: list[float] = []
    drained = 0.0

    async def outage() -> None:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.2, 1.2))
            await asyncio.to_thread(synapse.kill)
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            await synapse.astart()
        await resumes()

    async def resumes() -> None:
        nonlocal drained
        up = time.monotonic()
        # Per room: the oldest customer message not there yet (the bridge accepted and held
        # it) must come soon; all of them sent so far (the backlog) a little later.
        await fault_staff.sync_once(0)
        first, last = {}, {}
        for conv in convs:
            have = set(_numbers_in(fault_staff, conv))
            missing = [i for i in conv.sent_in if i not in have]
            if missing:
                first[conv.label], last[conv.label] = missing[0], missing[-1]

        async def arrives(conv: Conversation, number: int) -> float:
            # Read the room, not /sync: a sync after a burst is "limited" and skips events.
            body = f"{conv.tag} in {number}"
            deadline = up + 120
            while body not in await latest_bodies(fault_staff, conv.room_id):
                assert time.monotonic() < deadline, f"{body!r} not in {conv.label}"
                await asyncio.sleep(0.2)
            return time.monotonic() - up

        held = [c for c in convs if c.label in first]
        resumed.extend(await asyncio.gather(*(arrives(c, first[c.label]) for c in held)))
        drained = max(await asyncio.gather(*(arrives(c, last[c.label]) for c in held)))
        print(
            f"homeserver: held per room {[last[c.label] - first[c.label] + 1 for c in held]}, "
            f"resumed {[f'{r:.1f}s' for r in resumed]}, drained {drained:.1f}s after restart"
        )

    await asyncio.gather(run_streams(fault_staff, convs, STREAM, seed), outage())
    await settle(fault_staff, convs, seed)
    # Synapse keeps the events for appservices in memory until it has made a transaction of
    # them: killed in between, it never pushes them; the bridge reads them back from the rooms.
    pushed = {e.get("event_id") for e in fault_stack.proxy.pushed_events()}
    never_pushed = {
        c.label: sorted(i for i, event_id in c.sent_out.items() if event_id not in pushed)
        for c in convs
    }
    print(f"homeserver: staff messages never pushed (found by the catch-up): {never_pushed}")
    await check(fault_staff, convs, STREAM, seed)
    assert resumed and max(resumed) < RESUME_BOUND, f"{resumed} (FAULT_SEED={seed})"


def _numbers_in(staff: StaffClient, conv: Conversation) -> list[int]:
    events = staff.find_events(lambda e: e.get("type") == "m.room.message", room_id=conv.room_id)
    return numbers([e["content"].get("body", "") for e in events], conv.tag, "in")
