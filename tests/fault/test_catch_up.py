"""Staff messages the homeserver stored but never pushed, made certain: the proxy between
Synapse and the bridge answers their transactions without passing them on (as a homeserver
killed between advancing its appservice position and storing the transaction loses them).
The bridge reads the rooms back and sends every one exactly once, in the room's order."""

from __future__ import annotations

import asyncio
import random
import time

from tests.fault.channels import Conversation
from tests.fault.conftest import CATCH_UP_INTERVAL, FaultStack
from tests.fault.streams import (
    begin,
    check,
    customer_stream,
    numbers,
    seed_for,
    settle,
    wait_until,
)
from tests.infra.staff import StaffClient

N = 4


async def _swallow_one(
    fs: FaultStack, staff: StaffClient, convs: list[Conversation], number: int
) -> None:
    """Staff's message ``number`` in every conversation, lost between homeserver and bridge."""
    proxy = fs.proxy
    proxy.swallow = True
    try:
        for conv in convs:
            conv.sent_out[number] = await staff.send_text(conv.room_id, f"{conv.tag} out {number}")
        lost = {conv.sent_out[number] for conv in convs}
        await wait_until(
            "the homeserver's push of the staff messages",
            lambda: lost <= {e.get("event_id") for e in proxy.swallowed},
            30,
        )
    finally:
        proxy.swallow = False


async def test_lost_messages_go_out_in_order_after_the_homeserver_restarts(
    fault_stack: FaultStack,
    fault_staff: StaffClient,
    fault_conversations: list[Conversation],
) -> None:
    seed = seed_for("catch-up")
    rng = random.Random(seed)
    convs = begin(fault_conversations, "cu")
    await _swallow_one(fault_stack, fault_staff, convs, 0)
    # Killed and started again: Synapse (on SQLite) numbers its transactions anew, and the
    # bridge queues its catch-ups before the first new transaction's events.
    synapse = fault_stack.stack.synapse
    await asyncio.to_thread(synapse.kill)
    await synapse.astart()

    async def staff_rest(conv: Conversation) -> None:
        for i in range(1, N):
            conv.sent_out[i] = await fault_staff.send_text(conv.room_id, f"{conv.tag} out {i}")

    await asyncio.gather(
        *(staff_rest(c) for c in convs),
        *(customer_stream(c, N, random.Random(rng.random())) for c in convs),
    )
    await settle(fault_staff, convs, seed)
    await check(fault_staff, convs, N, seed)


async def test_a_lost_message_is_found_by_the_periodic_look(
    fault_stack: FaultStack,
    fault_staff: StaffClient,
    fault_conversations: list[Conversation],
) -> None:
    """No restart, no failed request: nothing tells the bridge that something was lost; the
    periodic catch-up (every ``CATCH_UP_INTERVAL`` here) reads the rooms active since."""
    convs = begin(fault_conversations, "cp")
    started = time.monotonic()
    await _swallow_one(fault_stack, fault_staff, convs, 0)
    for conv in convs:
        await wait_until(
            f"{conv.label}: the lost message at the customer",
            lambda conv=conv: numbers(conv.received(), conv.tag, "out") == [0],
            2 * CATCH_UP_INTERVAL + 30,
        )
    took = time.monotonic() - started
    print(f"catch-up: the periodic look delivered the lost messages within {took:.1f}s")
    await asyncio.sleep(CATCH_UP_INTERVAL + 1)  # one more look: nothing is sent twice
    assert {c.label: numbers(c.deliveries(), c.tag, "out") for c in convs} == {
        c.label: [0] for c in convs
    }
