"""The bridge process killed with SIGKILL at random moments while numbered messages stream
both ways through every connector, then started again on the same PostgreSQL database."""

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
    numbers,
    run_streams,
    seed_for,
    settle,
    wait_until,
)
from tests.infra.staff import StaffClient

KILLS = 2
PING_MARGIN = 2.0
"""Seconds before Synapse's own next retry the held transactions must come: the bridge's ping
at start makes Synapse retry at once."""


async def test_sigkill_at_random_moments(
    fault_stack: FaultStack,
    fault_staff: StaffClient,
    fault_conversations: list[Conversation],
) -> None:
    seed = seed_for("sigkill")
    rng = random.Random(seed)
    bridge = fault_stack.stack.bridge
    convs = begin(fault_conversations, "kill")
    kills: list[tuple[float, float]] = []

    async def killer() -> None:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            bridge.kill()
            down = rng.uniform(0.0, 1.5)
            await asyncio.sleep(down)
            await bridge.astart()
            kills.append((down, time.monotonic()))

    await asyncio.gather(run_streams(fault_staff, convs, N, seed), killer())
    await settle(fault_staff, convs, seed)
    repeats = await check(fault_staff, convs, N, seed, crashes=len(kills))
    assert len(kills) == KILLS
    print(f"sigkill: {KILLS} kills, repeats of the message in flight per channel: {repeats}")


async def test_homeserver_backoff_ends_with_the_ping(
    fault_stack: FaultStack,
    fault_staff: StaffClient,
    fault_conversations: list[Conversation],
) -> None:
    """Staff write while the bridge is unreachable; Synapse fails to push and retries after
    2, 4, 8, 16 s. The bridge crashes meanwhile and starts again (that takes seconds): its
    ping at start makes Synapse retry at once instead of at the end of its backoff."""
    seed = seed_for("ping")
    st, proxy = fault_stack.stack, fault_stack.proxy
    convs = begin(fault_conversations, "ping")
    proxy.unreachable = True
    try:
        failed = len(proxy.pushes)
        for conv in convs:
            conv.sent_out[0] = await fault_staff.send_text(conv.room_id, f"{conv.tag} out 0")
        # Synapse's fourth failed push, 14 s after the first: its next retry is 16 s later,
        # longer than the bridge takes to start again.
        await wait_until(
            "Synapse's fourth failed push", lambda: len(proxy.pushes) - failed >= 4, 60
        )
        st.bridge.kill()
        pings, pushes = len(proxy.pings), len(proxy.pushes)
        await st.bridge.astart()
        up = time.monotonic()
    finally:
        proxy.unreachable = False  # the bridge is up: reachable, ping or not
    await wait_until(
        "the homeserver's held transactions at the bridge",
        lambda: any(p.status == 200 for p in proxy.pushes[pushes:]),
        60,
    )
    came = next(p.at for p in proxy.pushes[pushes:] if p.status == 200)
    # Synapse's own next retry: 2**k s after its k-th failure in a row.
    misses = [p for p in proxy.pushes[failed:] if p.status != 200 and p.at < came]
    retry_due = misses[-1].at + 2 ** len(misses)
    print(
        f"ping: {len(misses)} failed pushes; held transactions came {came - up:.1f}s after "
        f"the bridge was up, {retry_due - came:.1f}s before Synapse's own retry"
    )
    assert len(proxy.pings) > pings, "the bridge did not ping the homeserver at start"
    assert came < retry_due - PING_MARGIN, (
        f"the held transactions came {came - up:.1f}s after the bridge was up, no sooner than "
        f"Synapse's backoff (FAULT_SEED={seed}); pushes: {proxy.pushes[failed:]}"
    )
    await settle(fault_staff, convs, seed)
    for conv in convs:
        got = numbers(conv.received(), conv.tag, "out")
        assert got == [0], f"{conv.label}: {got} (FAULT_SEED={seed})"
