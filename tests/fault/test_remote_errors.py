"""The far side of every channel answers with rate limits and server errors for a while (and
the mailbox server restarts) while numbered messages stream both ways."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from tests.fault.channels import Conversation
from tests.fault.conftest import FaultStack
from tests.fault.streams import (
    N,
    begin,
    check,
    run_streams,
    seed_for,
    settle,
    wait_until,
)
from tests.fault.telegram import FaultyTelegramSimulator
from tests.infra.staff import StaffClient

ROUNDS = 3
PER_ROUND = 1
"""Faults of each kind per channel and round."""
SMTP_CODES = (421, 451, 452)


async def test_rate_limits_and_server_errors(
    fault_stack: FaultStack,
    fault_staff: StaffClient,
    fault_conversations: list[Conversation],
) -> None:
    seed = seed_for("remote-errors")
    rng = random.Random(seed)
    st = fault_stack.stack
    telegrams: list[FaultyTelegramSimulator] = []
    for sim in (st.telegram, st.telegram_hook):
        assert isinstance(sim, FaultyTelegramSimulator)
        telegrams.append(sim)
    convs = begin(fault_conversations, "flaky")
    wa_before = Counter(r.code for r in st.whatsapp.rejected)
    vk = st.simulators["vk"]
    vk_before = Counter(r.code for r in vk.rejected)
    smtp_before = len(st.smtp.rejections)
    max_sim = st.simulators["max"]
    max_before = (max_sim.refusals("too.many.requests"), max_sim.refusals("service.unavailable"))
    tg_before = [(t.server_errors, _storms(t)) for t in telegrams]
    injected = 0
    streamed = asyncio.Event()

    def unmet() -> list[str]:
        """The kinds of fault injected so far that were not all answered yet."""
        wa = Counter(r.code for r in st.whatsapp.rejected) - wa_before
        left = [f"webhook {st.peer.fail_next}"] if st.peer.fail_next else []
        for t, (errors, storms) in zip(telegrams, tg_before, strict=True):
            if (t.server_errors - errors, _storms(t) - storms) != (injected, injected):
                left.append(f"telegram {t.server_errors - errors}/{_storms(t) - storms}")
        if wa[130429] != injected or wa[1] + wa[2] != injected:
            left.append(f"whatsapp {dict(wa)}")
        vk_codes = Counter(r.code for r in vk.rejected) - vk_before
        if vk_codes[6] != injected or vk_codes[10] != injected:
            left.append(f"vk {dict(vk_codes)}")
        if len(st.smtp.rejections) - smtp_before != injected:
            left.append(f"smtp {len(st.smtp.rejections) - smtp_before}")
        max_now = (max_sim.refusals("too.many.requests"), max_sim.refusals("service.unavailable"))
        if tuple(now - before for now, before in zip(max_now, max_before, strict=True)) != (
            injected, injected,
        ):  # fmt: skip
            left.append(f"max {max_now} after {max_before}")
        return left

    async def inject() -> None:
        nonlocal injected
        for n in range(ROUNDS):
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            st.peer.fail_next += [rng.choice([429, 500, 502, 503]) for _ in range(PER_ROUND)]
            for sim in telegrams:
                sim.fail_next(PER_ROUND, rng.choice([500, 502]))
                sim.rate_limit_storm(PER_ROUND, retry_after=1)
            st.whatsapp.storm(PER_ROUND, code=130429)
            st.whatsapp.fail_next(PER_ROUND, code=rng.choice([1, 2]))
            st.smtp.fail_next(PER_ROUND, code=rng.choice(SMTP_CODES))
            vk.storm(PER_ROUND, 6)  # too many requests per second
            vk.storm(PER_ROUND, 10)  # internal server error
            max_sim.fail(PER_ROUND, 429)
            max_sim.fail(PER_ROUND, 503, "service.unavailable")
            injected += PER_ROUND
            if n == 1:
                # The mailbox server restarts: the IMAP connection drops, mail waits there.
                await st.dovecot.arestart(downtime=rng.uniform(0.5, 1.5))
            if n < ROUNDS - 1:
                # The next round once this one was met, while the streams run; after them the
                # end markers meet what is left.
                try:
                    await wait_until(
                        f"round {n} met (FAULT_SEED={seed})",
                        lambda: not unmet() or streamed.is_set(),
                        60,
                    )
                except AssertionError as e:
                    raise AssertionError(f"{e}; not met: {unmet()}") from None

    async def streams() -> None:
        await run_streams(fault_staff, convs, N, seed)
        streamed.set()

    await asyncio.gather(streams(), inject())
    await settle(fault_staff, convs, seed)
    await check(fault_staff, convs, N, seed)
    assert not unmet(), f"faults not met: {unmet()} (FAULT_SEED={seed})"
    assert injected == ROUNDS * PER_ROUND


def _storms(sim: FaultyTelegramSimulator) -> int:
    return sum(x.scope == "storm" for x in sim.throttled)
