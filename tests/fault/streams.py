"""Numbered message streams in both directions through every connector at once, and the
exact check at the end: every number exactly once and in order, per conversation."""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import Callable
from urllib.parse import quote

from tests.fault.channels import CONVERSATIONS, Conversation
from tests.fault.conftest import FaultStack
from tests.infra.staff import StaffClient

N = 12
"""Messages per direction and conversation. Telegram allows a bot about one message a second
per chat (the bridge keeps to that), so a stream takes at least N seconds."""
PACE = (0.02, 0.12)
"""Seconds between two messages of one stream (uniformly random): a busy conversation."""
SETTLE_TIMEOUT = 180.0


def seed_for(name: str) -> int:
    """``FAULT_SEED`` replays a run; otherwise a fresh seed (printed, and in every failure)."""
    seed = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(2**32))
    print(f"{name}: FAULT_SEED={seed}")
    return seed


async def open_conversations(fs: FaultStack, staff: StaffClient) -> list[Conversation]:
    started = time.monotonic()
    convs = [cls(fs.stack, staff) for cls in CONVERSATIONS]
    await asyncio.gather(*(c.open() for c in convs))
    print(f"conversations opened in {time.monotonic() - started:.1f}s")
    return convs


def begin(convs: list[Conversation], tag: str) -> list[Conversation]:
    """The conversations, ready for a test's streams tagged ``tag``."""
    for conv in convs:
        conv.begin(tag)
    return convs


async def customer_stream(
    conv: Conversation, n: int, rng: random.Random, *, twice: bool = False
) -> None:
    for i in range(n):
        await conv.send(f"{conv.tag} in {i}", twice=twice)
        conv.sent_in.append(i)
        await asyncio.sleep(rng.uniform(*PACE))


async def staff_stream(staff: StaffClient, conv: Conversation, n: int, rng: random.Random) -> None:
    for i in range(n):
        conv.sent_out[i] = await staff.send_text(conv.room_id, f"{conv.tag} out {i}")
        await asyncio.sleep(rng.uniform(*PACE))


async def run_streams(
    staff: StaffClient, convs: list[Conversation], n: int, seed: int, *, twice: bool = False
) -> None:
    started = time.monotonic()
    rng = random.Random(seed)
    tasks = []
    for conv in convs:
        tasks.append(customer_stream(conv, n, random.Random(rng.random()), twice=twice))
        tasks.append(staff_stream(staff, conv, n, random.Random(rng.random())))
    await asyncio.gather(*tasks)
    print(f"{convs[0].tag}: streams sent in {time.monotonic() - started:.1f}s")


async def wait_until(what: str, condition: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


async def settle(
    staff: StaffClient, convs: list[Conversation], seed: int, marker: str = "end"
) -> None:
    """A last message each way per conversation; per-conversation order means everything
    sent before it has been handled once it arrived."""

    async def one(conv: Conversation) -> None:
        await conv.send(f"{conv.tag} in {marker}")
        await staff.send_text(conv.room_id, f"{conv.tag} out {marker}")
        body = f"{conv.tag} in {marker}"
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while body not in await latest_bodies(staff, conv.room_id):
            assert time.monotonic() < deadline, f"{conv.label}: no {body!r} (FAULT_SEED={seed})"
            await asyncio.sleep(0.2)
        await wait_until(
            f"{conv.label}: staff's {marker!r} marker at the customer (FAULT_SEED={seed})",
            lambda: any(t.endswith(f"{conv.tag} out {marker}") for t in conv.deliveries()),
            SETTLE_TIMEOUT,
        )

    started = time.monotonic()
    await asyncio.gather(*(one(c) for c in convs))
    print(f"{convs[0].tag}: settled in {time.monotonic() - started:.1f}s")


async def latest_bodies(staff: StaffClient, room_id: str) -> list[str]:
    """The bodies of the room's latest events. Read from the room, not from /sync: a sync
    after a burst of events is "limited" and leaves some out. An encrypted client syncs first
    (room keys come with ``/sync``) and reads them decrypted."""
    if staff.encrypted:
        await staff.sync_once(0)
        events = await staff.room_messages(room_id, limit=100)
        return [e.get("content", {}).get("body", "") for e in events]
    path = f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?dir=b&limit=100"
    chunk = (await staff.api("GET", path)).get("chunk", [])
    return [e.get("content", {}).get("body", "") for e in chunk]


def numbers(texts: list[str], tag: str, direction: str) -> list[int]:
    pattern = re.compile(rf"(?:^|\s){re.escape(tag)} {direction} (\d+)$")
    return [int(m.group(1)) for t in texts if (m := pattern.search(t.strip()))]


def collapse(seq: list[int]) -> list[int]:
    return [x for i, x in enumerate(seq) if i == 0 or seq[i - 1] != x]


async def check(
    staff: StaffClient,
    convs: list[Conversation],
    n: int,
    seed: int,
    *,
    crashes: int = 0,
    never_pushed: dict[str, set[int]] | None = None,
) -> dict[str, int]:
    """Assert, per conversation, that the customer's numbers reached the Matrix room exactly
    once and in order, and staff's numbers reached the customer the same way. ``crashes``:
    how often the bridge was killed. A channel without an idempotency key cannot tell a
    message sent just before a crash from one never sent; there (only) the message in flight
    at a crash may arrive twice, right after itself. ``never_pushed``: staff's numbers the
    homeserver never handed to the bridge (per conversation), not expected at the customer.
    Returns the repeats per channel."""
    problems: list[str] = []
    repeats: dict[str, int] = {}
    want = list(range(n))
    for conv in convs:
        events = await staff.room_messages(conv.room_id)
        bodies = [
            e["content"].get("body", "")
            for e in events
            if e.get("type") == "m.room.message" and e.get("sender") != staff.user_id
        ]
        got_in = numbers(bodies, conv.tag, "in")
        if got_in != want:
            problems.append(f"{conv.label} remote -> Matrix: {_diff(got_in, n)}")
        got_out = numbers(conv.received(), conv.tag, "out")
        every = numbers(conv.deliveries(), conv.tag, "out")
        skipped = (never_pushed or {}).get(conv.label, set())
        want_out = [i for i in want if i not in skipped]
        if conv.exactly_once_out or not crashes:
            if got_out != want_out:
                problems.append(f"{conv.label} Matrix -> remote: {_diff(got_out, n)}")
        else:
            once = collapse(got_out)
            extra = len(got_out) - len(once)
            repeats[conv.account] = extra
            if once != want_out or extra > crashes:
                problems.append(
                    f"{conv.label} Matrix -> remote ({crashes} crashes, {extra} repeats): "
                    f"{_diff(got_out, n)}"
                )
        if collapse(sorted(every)) != want_out:
            problems.append(f"{conv.label} deliveries lost something: {_diff(every, n)}")
    assert not problems, f"FAULT_SEED={seed}\n" + "\n".join(problems)
    return repeats


def _diff(got: list[int], n: int) -> str:
    missing = sorted(set(range(n)) - set(got))
    doubled = sorted({x for x in got if got.count(x) > 1})
    return f"missing {missing}, doubled {doubled}, order {got}"
