"""The first message of new conversations end to end, with the team inbox off and on: the
bench's bridge process run on its own config, then on the same config with the inbox of
``bench.inbox.SECTION`` (same registration, port and database; the five members are users of
Synapse, so their invitations are real).

Each first message is a signed webhook for a chat the bridge has not seen, timed until the
observer has it: the bridge makes the portal room (named through the inbox's room namer when
the inbox is on), sends the message, and only then runs the inbound hooks (routing,
assignment, invitations, notices, the team room's announcement). So this shows what the inbox
adds to the first message's arrival; the work of routing and assignment itself is timed
in-process by ``bench.inbox``, because the room's creation on this path varies by far more
than the 2 ms to be judged. Before the next message the run waits, with the inbox on, for the
conversation's announcement in the team room (the hook's last request), then ``SETTLE``
seconds (off too), so that each first message meets an idle bridge; after the run every
conversation must be assigned, or the benchmark fails. One bridge process at a time holds the
registration, so the two configurations run as two blocks (the inbox first in odd repeats),
not message by message in turn."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mautrix.util.async_db import Database
from ruamel.yaml import YAML

from tests.infra.bridge_proc import BridgeProcess

from .inbox import FIRST_TEXTS, MEMBERS, SECTION
from .load import Send, alternating
from .stack import Stack

log = logging.getLogger("bench.inbox")

SETTLE = 0.2
"""Seconds after each first message's arrival (with the inbox: after its announcement in the
team room, the hook's last request) before the next is sent."""
POLL = 0.005
WARM_UP = 3
CHECK_TIMEOUT = 30.0
STARTED_PAUSE = 2.0
"""Seconds after a start, for the inbox's first periodic run (it makes the team rooms)."""


def _config_with_inbox(stack: Stack) -> Path:
    yaml = YAML()
    data = yaml.load(stack.config_path.read_text())
    data["features"] = {"inbox": SECTION}
    path = stack.workdir / "config-inbox-e2e.yaml"
    with path.open("w") as f:
        yaml.dump(data, f)
    return path


async def _members(stack: Stack) -> None:
    """The inbox's members as users of Synapse, so that their invitations are real."""
    for mxid in MEMBERS:
        localpart = mxid[1:].split(":")[0]
        await stack.synapse.aregister_user(localpart, secrets.token_hex(8))


def first_sender(stack: Stack, tag: str) -> Send:
    """Message ``i`` is the first of chat ``tag-i``: a new conversation each."""

    async def send(index: int, marker: str) -> None:
        text = f"{marker} {FIRST_TEXTS[index % len(FIRST_TEXTS)]}"
        await stack.send_webhook(f"{tag}-{index}", f"customer-{tag}-{index}", marker, text)

    return send


async def assigned(stack: Stack, tag: str, expected: int) -> None:
    """Wait until the inbox has assigned each of the ``expected`` conversations of ``tag``
    (its hooks run after the messages arrived); fail the benchmark if it does not."""
    db = Database.create(stack.bridge_db, log=log)  # type: ignore[arg-type]
    await db.start()  # the bridge made the schema
    try:
        deadline = time.monotonic() + CHECK_TIMEOUT
        while True:
            done = await db.fetchval(
                "SELECT COUNT(*) FROM inbox_conversation WHERE chat LIKE $1 "
                "AND assignee IS NOT NULL",
                f"{tag}-%",
            )
            if done == expected:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the inbox assigned {done} of {expected} conversations")
            await asyncio.sleep(0.2)
    finally:
        await db.stop()


async def _settle(marker: str) -> None:
    await asyncio.sleep(SETTLE)


def _announced(stack: Stack) -> Callable[[str], Awaitable[None]]:
    """Waits until the team room's announcement of the conversation of ``marker`` arrived
    (it quotes the first message, marker and all), then ``SETTLE``."""
    arrivals = stack.observer.arrivals

    async def wait(marker: str) -> None:
        portal_room = arrivals.room_of[marker]
        deadline = time.monotonic() + CHECK_TIMEOUT
        while arrivals.room_of[marker] == portal_room:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no announcement of {marker} in the team room")
            await asyncio.sleep(POLL)
        await _settle(marker)

    return wait


async def _switch(stack: Stack, processes: dict[str, BridgeProcess], name: str) -> None:
    """Run the bridge of ``name`` (``off``/``on``) in place of the one running."""
    await asyncio.to_thread(stack.bridge.stop)
    stack.bridge = processes[name]
    await stack.bridge.astart()
    await asyncio.sleep(STARTED_PAUSE)


async def measure_first_messages(stack: Stack, count: int, repeat: int) -> list[dict[str, Any]]:
    """``repeat`` runs of ``count`` first messages with the inbox off and on (latencies in
    ms); the bridge runs on its own config again afterwards."""
    await _members(stack)
    processes = {
        "off": stack.bridge,
        "on": BridgeProcess(
            _config_with_inbox(stack), stack.bridge.port, stack.workdir / "bridge-inbox.log"
        ),
    }
    runs: list[dict[str, Any]] = []
    try:
        for rep in range(repeat):
            result: dict[str, Any] = {}
            for name in ("on", "off") if rep % 2 else ("off", "on"):
                started = time.monotonic()
                await _switch(stack, processes, name)
                tag, arrivals = f"first{name}{rep}", stack.observer.arrivals
                warm = first_sender(stack, f"warm{tag}")
                after = _announced(stack) if name == "on" else _settle
                await alternating(f"warm{tag}", min(WARM_UP, count), [(arrivals, warm)], after)
                send = first_sender(stack, tag)
                [load] = await alternating(tag, count, [(arrivals, send)], after)
                result[name] = load.as_dict()
                if name == "on":
                    await assigned(stack, tag, count)
                log.info(
                    "repeat %d first messages, inbox %s: p50 %.1f ms, p99 %.1f ms (%.1fs)",
                    rep + 1, name, load.p50_ms, load.p99_ms, time.monotonic() - started,
                )  # fmt: skip
            runs.append(result)
    finally:
        if stack.bridge is not processes["off"]:
            await _switch(stack, processes, "off")
    return runs
