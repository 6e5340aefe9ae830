"""PostgreSQL restarted (every connection of the bridge dropped, the server away for a
moment) while numbered messages stream both ways through every connector."""

from __future__ import annotations

import asyncio
import random
import time

from tests.e2e.helpers import customer_msg
from tests.fault.as_proxy import Push
from tests.fault.channels import Conversation
from tests.fault.conftest import FaultStack
from tests.fault.streams import N, begin, check, run_streams, seed_for, settle
from tests.infra.staff import StaffClient

RESTARTS = 2
RECOVERY_BOUND = 10.0
"""Seconds after PostgreSQL is back within which the bridge accepts a webhook again."""
HELD_BOUND = 3.0
"""Seconds after PostgreSQL is back within which the homeserver sends the transactions the
bridge refused meanwhile: the bridge pings it once its database works (the homeserver's
own backoff would wait 2, 4, 8 s ...)."""


async def test_postgres_restarted_mid_stream(
    fault_stack: FaultStack,
    fault_staff: StaffClient,
    fault_conversations: list[Conversation],
) -> None:
    seed = seed_for("postgres")
    rng = random.Random(seed)
    st = fault_stack.stack
    convs = begin(fault_conversations, "pg")
    recoveries: list[float] = []
    outages: list[tuple[float, float]] = []

    async def restarts() -> None:
        for n in range(RESTARTS):
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            began = time.monotonic()
            await fault_stack.postgres.arestart(downtime=rng.uniform(0.5, 2.5))
            back = time.monotonic()
            outages.append((began, back))
            probe = customer_msg("fault-pg-probe", f"probe {n}", f"pg-probe-{n}")
            while (await st.peer.send(st.account, probe))[0] != 200:
                assert time.monotonic() - back < 60, "the bridge never recovered"
                await asyncio.sleep(0.1)
            recoveries.append(time.monotonic() - back)

    await asyncio.gather(run_streams(fault_staff, convs, N, seed), restarts())
    await settle(fault_staff, convs, seed)
    await check(fault_staff, convs, N, seed)
    assert st.bridge.proc is not None and st.bridge.proc.poll() is None, "the bridge exited"
    held = _held(fault_stack.proxy.pushes, outages)
    print(
        f"postgres: webhooks accepted again {[f'{r:.1f}s' for r in recoveries]}, "
        f"transactions the homeserver held flowed {[f'{h:.1f}s' for h in held]} after restarts"
    )
    assert max(recoveries) < RECOVERY_BOUND, f"{recoveries} (FAULT_SEED={seed})"
    assert all(h < HELD_BOUND for h in held), f"{held} (FAULT_SEED={seed})"


def _held(pushes: list[Push], outages: list[tuple[float, float]]) -> list[float]:
    """Per outage in which the bridge refused transactions: how long after PostgreSQL was
    back the homeserver's next transaction came."""
    held = []
    for began, back in outages:
        refused = False
        for push in pushes:
            if push.at < began:
                continue
            if push.status != 200:
                refused = True
            elif refused and push.at > back:
                held.append(push.at - back)
                break
    return held
