"""Messages the bridge starts itself, across SIGKILL: templates sent with a command and
automatic replies queued by a feature's inbound hook are durable queue items of their
conversation, so each reaches the customer exactly once (on a channel without an idempotency
key, the one in flight at a crash may repeat, as a staff message may) and shows in the room
exactly once, after what triggered it."""

from __future__ import annotations

import asyncio
import random
import re
import time

from tests.e2e.helpers import customer_msg, join_invite_named
from tests.fault.channels import Conversation, _until_accepted
from tests.fault.conftest import WELCOME, FaultStack
from tests.fault.streams import collapse, seed_for, wait_until
from tests.infra.staff import StaffClient

KILLS = 2
TEMPLATES = 6
NEW_CUSTOMERS = 6
TIMEOUT = 180.0


async def _kill_at_random(fs: FaultStack, rng: random.Random, kills: list[float]) -> None:
    bridge = fs.stack.bridge
    for _ in range(KILLS):
        await asyncio.sleep(rng.uniform(0.3, 2.0))
        bridge.kill()
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        await bridge.astart()
        kills.append(time.monotonic())


def _bodies(events: list[dict]) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    return [
        (e["content"].get("body", ""), e)
        for e in events
        if e.get("type") == "m.room.message" and isinstance(e.get("content"), dict)
    ]


async def test_sigkill_during_templates(
    fault_stack: FaultStack, fault_staff: StaffClient, fault_conversations: list[Conversation]
) -> None:
    seed = seed_for("template-kill")
    rng = random.Random(seed)
    sim = fault_stack.stack.whatsapp
    sim.add_template("fault_ticket", "en_US", "Ticket {{1}} is ready.")
    conv = next(c for c in fault_conversations if c.account == "wa")
    tag = f"tpl{seed % 10_000}"
    commands: list[str] = []
    kills: list[float] = []

    async def staff() -> None:
        for i in range(TEMPLATES):
            text = f"!bridge template fault_ticket en_US {tag}-{i}"
            commands.append(await fault_staff.send_text(conv.room_id, text))
            await asyncio.sleep(rng.uniform(0.1, 0.6))

    await asyncio.gather(staff(), _kill_at_random(fault_stack, rng, kills))
    pattern = re.compile(rf"Ticket {tag}-(\d+) is ready\.")
    number = getattr(conv, "number")  # noqa: B009

    def delivered() -> list[int]:
        return [
            int(m.group(1))
            for s in sim.sent
            if s.to == number and s.type == "template"
            and (m := pattern.fullmatch(s.rendered or ""))
        ]  # fmt: skip

    await wait_until(
        f"every template at the customer (FAULT_SEED={seed})",
        lambda: set(delivered()) == set(range(TEMPLATES)),
        TIMEOUT,
    )
    got = delivered()
    once = collapse(got)
    assert once == list(range(TEMPLATES)), f"FAULT_SEED={seed}: order or loss: {got}"
    assert len(got) - len(once) <= len(kills), f"FAULT_SEED={seed}: repeated: {got}"

    async def room() -> list[tuple[str, dict]]:  # type: ignore[type-arg]
        return _bodies(await fault_staff.room_messages(conv.room_id))

    def answers(bodies: list[tuple[str, dict]]) -> list[str]:  # type: ignore[type-arg]
        return [
            e["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id", "")
            for body, e in bodies
            if body == "Sent."
        ]

    deadline = time.monotonic() + TIMEOUT
    while sorted(set(answers(await room())) & set(commands)) != sorted(commands):
        assert time.monotonic() < deadline, f"FAULT_SEED={seed}: not every command answered"
        await asyncio.sleep(0.3)
    bodies = await room()
    shown = [
        int(m.group(1))
        for body, _ in bodies
        if body.startswith("📨 Template fault_ticket") and (m := pattern.search(body))
    ]
    assert shown == list(range(TEMPLATES)), f"FAULT_SEED={seed}: room shows {shown}"
    replies = [a for a in answers(bodies) if a in commands]
    assert sorted(replies) == sorted(commands), f"FAULT_SEED={seed}: answers {replies}"


async def test_sigkill_during_automatic_replies(
    fault_stack: FaultStack, fault_staff: StaffClient
) -> None:
    seed = seed_for("welcome-kill")
    rng = random.Random(seed)
    st = fault_stack.stack
    chats = [f"welcome-{seed % 100_000}-{i}" for i in range(NEW_CUSTOMERS)]
    kills: list[float] = []

    async def customers() -> None:
        for chat in chats:
            payload = customer_msg(chat, f"{chat} first", f"{chat}:first")
            await _until_accepted(
                f"first message of {chat}",
                lambda p=payload: st.peer.send("hooks", p),  # type: ignore[misc]
                ok=lambda answer: answer[0] == 200,
            )
            await asyncio.sleep(rng.uniform(0.1, 0.5))

    await asyncio.gather(customers(), _kill_at_random(fault_stack, rng, kills))

    def welcomes(chat: str, seen: list[dict]) -> int:  # type: ignore[type-arg]
        return sum(1 for p in seen if p.get("chat_id") == chat and p.get("text") == WELCOME)

    await wait_until(
        f"a welcome for every new customer (FAULT_SEED={seed})",
        lambda: all(welcomes(c, st.peer.received) >= 1 for c in chats),
        TIMEOUT,
    )
    for chat in chats:
        # The webhook protocol's idempotency key lets the peer drop a repeat: exactly once.
        assert welcomes(chat, st.peer.received) == 1, f"FAULT_SEED={seed}: {chat}"
        room_id = await join_invite_named(fault_staff, f"Customer {chat}")
        deadline = time.monotonic() + TIMEOUT
        while True:
            bodies = [b for b, _ in _bodies(await fault_staff.room_messages(room_id))]
            auto = [i for i, b in enumerate(bodies) if b.startswith("🤖") and WELCOME in b]
            if auto:
                break
            assert time.monotonic() < deadline, f"FAULT_SEED={seed}: no welcome in {chat}"
            await asyncio.sleep(0.3)
        first = bodies.index(f"{chat} first")
        assert len(auto) == 1 and auto[0] > first, f"FAULT_SEED={seed}: {chat}: {bodies}"
