"""Everything delivered twice: every appservice transaction (right after the first answer,
and the whole lot again at the end), every webhook of the webhook, Telegram and WhatsApp
channels, every mail (appended to the mailbox twice), every Telegram polling batch."""

from __future__ import annotations

from tests.fault.channels import Conversation
from tests.fault.conftest import FaultStack
from tests.fault.streams import N, begin, check, run_streams, seed_for, settle
from tests.fault.telegram import FaultyTelegramSimulator
from tests.infra.staff import StaffClient


async def test_every_delivery_twice(
    fault_stack: FaultStack,
    fault_staff: StaffClient,
    fault_conversations: list[Conversation],
) -> None:
    seed = seed_for("duplicates")
    st, proxy = fault_stack.stack, fault_stack.proxy
    polling = st.telegram
    assert isinstance(polling, FaultyTelegramSimulator)
    convs = begin(fault_conversations, "dup")
    pushes, recorded = len(proxy.pushes), len(proxy.recorded)
    redelivered = polling.redelivered
    hook_deliveries = len(st.telegram_hook.webhook_deliveries)
    proxy.duplicate = polling.redeliver = True
    try:
        await run_streams(fault_staff, convs, N, seed, twice=True)
        await settle(fault_staff, convs, seed)
        # The homeserver sends every transaction of this test once more.
        answers = await proxy.replay(recorded)
        await settle(fault_staff, convs, seed, marker="after replay")
    finally:
        proxy.duplicate = polling.redeliver = False
    await check(fault_staff, convs, N, seed)
    assert answers and set(answers) == {200}, f"replayed transactions answered {set(answers)}"
    repeats = [p for p in proxy.pushes[pushes:] if p.repeat]
    assert repeats and all(p.status == 200 for p in repeats)
    assert polling.redelivered - redelivered >= N
    hook = [d for d in st.telegram_hook.webhook_deliveries[hook_deliveries:] if d.ok]
    assert len(hook) >= 2 * N
    print(
        f"duplicates: {len(repeats)} transactions pushed twice, {len(answers)} replayed, "
        f"{polling.redelivered - redelivered} Telegram updates polled twice"
    )
