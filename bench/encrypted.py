"""The encrypted run (issue 15): the same bridge process carries messages through plain and
encrypted portal rooms, in blocks that take turns, each direction measured in a closed loop
with the bridge's CPU meanwhile.

The bench's Synapse was started with appservice encryption (MSC2409/MSC3202) and the bridge's
registration, made by ``bridge -g`` with ``encryption.allow``, carries ``org.matrix.msc3202``
and ``io.element.msc4190`` (``start_stack(e2ee=True)``). Synapse does not encrypt new rooms
by default here (``encryption_enabled_by_default_for_room_type`` is left out of
``E2EE_SETTINGS``), so the plain portal rooms, made first by the bench's bridge as it runs
everywhere else, stay plain. Then the bridge runs on the same config with ``encryption:
{allow: true, default: true}`` (same registration, port and database, as ``bench.inbox_e2e``
switches), makes the encrypted portal rooms and handles both kinds from then on: plain and
encrypted blocks meet the same process, caches and machine.

- remote -> Matrix: signed webhooks, message ``i`` into portal ``i % rooms``, timed until the
  observer has the event. In a plain room the observer reads the marker; in an encrypted one
  the body is ciphertext, so the ``n``-th ``m.room.encrypted`` event of a portal's ghost is
  taken as the ``n``-th message POSTed for that portal. That holds because the bridge keeps
  the order of a conversation and Synapse pushes a room's events to an appservice in order,
  and because the POSTs of one portal go one at a time (in both kinds of rooms, so that both
  are sent alike): the marker is queued right before its POST, the next POST of that portal
  waits until it was accepted. It is checked after the run: the staff's E2EE client decrypts
  every timed event and its marker must be the one it was taken for, or the benchmark fails.
- Matrix -> remote: staff messages, message ``i`` into room ``i % rooms``, timed until the
  receiver gets the connector's POST (plaintext there). In encrypted rooms the staff side is
  a matrix-nio E2EE device (``tests.infra.staff``): it shares its Megolm session once (and
  again when nio rotates it, every 100 messages) and encrypts each message locally in the
  bench's process; both kinds are sent by the same ``PUT /send``.

The figures (``bench.report``): throughput encrypted/plain per direction (goal >= 0.8) and the
bridge process's CPU per message encrypted/plain per direction (goal <= 2)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.infra.bridge_proc import BridgeProcess
from tests.infra.staff import StaffClient

from .endpoints import Arrivals
from .load import Send
from .stack import ARRIVAL_TIMEOUT, SETUP_CONCURRENCY, Portal, Stack
from .traffic import Measured, bulk

log = logging.getLogger("bench.encrypted")

ENCRYPTION = {"allow": True, "default": True}
PAUSE = 1.0
STARTED_PAUSE = 2.0
"""Seconds after the encrypted bridge's start (its device's keys, the first transactions)."""
KEY_SYNCS = 20
"""``/sync`` rounds the staff client may take to receive every room key before the check."""
HISTORY = 1_000_000
"""Events of a room read back for the check: all (staff messages are in the rooms too)."""


@dataclass
class GhostOrder:
    """Arrivals of encrypted ghost messages, told apart by their order per portal (see the
    module's docstring). Watches the observer's events."""

    arrivals: Arrivals
    queued: dict[str, deque[str]] = field(default_factory=dict)
    """Per ghost, the markers POSTed and not arrived yet, in order."""
    taken: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """Per room, (event id, marker) of every encrypted event taken for a marker."""

    def queue(self, ghost: str, marker: str) -> None:
        self.queued.setdefault(ghost, deque()).append(marker)

    def __call__(self, event: dict[str, Any], at: float) -> None:
        if event.get("type") != "m.room.encrypted":
            return
        waiting = self.queued.get(str(event.get("sender")))
        if not waiting:
            return
        marker = waiting.popleft()
        room_id = str(event.get("room_id"))
        self.arrivals.room_of[marker] = room_id
        self.taken.setdefault(room_id, []).append((str(event.get("event_id")), marker))
        self.arrivals.arrived(marker, at)


def customer_sender(stack: Stack, portals: list[Portal], order: GhostOrder | None) -> Send:
    """Customer messages, message ``i`` into portal ``i % len(portals)``, one POST at a time
    per portal; with ``order`` each marker is queued for its ghost first."""
    locks = {p.chat: asyncio.Lock() for p in portals}

    async def send(index: int, marker: str) -> None:
        portal = portals[index % len(portals)]
        async with locks[portal.chat]:
            if order is not None:
                order.queue(portal.ghost, marker)
            await stack.send_webhook(portal.chat, portal.customer, marker, f"message {marker}")

    return send


def staff_sender(stack: Stack, rooms: list[str], staff: StaffClient | None) -> Send:
    """Staff messages, message ``i`` into ``rooms[i % len(rooms)]``: plain with the bench's
    staff token, or Megolm-encrypted by ``staff``."""

    async def send(index: int, marker: str) -> None:
        room_id = rooms[index % len(rooms)]
        content = {"msgtype": "m.text", "body": f"answer {marker}"}
        if staff is None:
            await stack.staff_send(room_id, content["body"])
            return
        assert staff.nio.olm is not None and staff.crypto is not None
        if staff.nio.olm.should_share_group_session(room_id):  # none yet, or rotated
            encrypted = await staff.crypto.encrypt(room_id, "m.room.message", content)
        else:
            _, encrypted = staff.nio.encrypt(room_id, "m.room.message", content)
        path = f"/_matrix/client/v3/rooms/{room_id}/send/m.room.encrypted/{stack.txn()}"
        await stack.matrix("PUT", path, staff.access_token, encrypted)

    return send


async def _make_encrypted_portals(stack: Stack, order: GhostOrder, count: int) -> list[Portal]:
    """``count`` portal rooms made by the bridge with encryption on, joined by the staff."""
    sem = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def one(i: int) -> Portal:
        async with sem:
            chat, customer = f"enc-{i}", f"cenc-{i}"
            ghost, marker = stack.ghost_of(customer), f"bench-encsetup-{i}"
            fut = order.arrivals.expect(marker)
            order.queue(ghost, marker)
            await stack.send_webhook(chat, customer, marker, f"hello {marker}")
            await asyncio.wait_for(fut, ARRIVAL_TIMEOUT)
            room_id = order.arrivals.room_of[marker]
            await stack.matrix("POST", f"/_matrix/client/v3/join/{room_id}", stack.staff_token)
            return Portal(chat, customer, ghost, room_id)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def _check_order(staff: StaffClient, order: GhostOrder) -> int:
    """Decrypt every event taken for a marker and fail unless it carries that marker.
    Returns how many were checked."""
    checked = 0
    for room_id, taken in order.taken.items():
        bodies: dict[str, str] = {}
        for _ in range(KEY_SYNCS):
            await staff.sync_once(0)  # room keys arrive as to-device messages, 100 a sync
            history = await staff.room_messages(room_id, limit=HISTORY)
            bodies = {
                str(ev.get("event_id")): str((ev.get("content") or {}).get("body", ""))
                for ev in history
                if ev.get("type") == "m.room.message"
            }
            if all(event_id in bodies for event_id, _ in taken):
                break
        for event_id, marker in taken:
            if event_id not in bodies:
                raise RuntimeError(f"the staff client cannot decrypt {event_id} in {room_id}")
            if marker not in bodies[event_id].split():
                raise RuntimeError(
                    f"{event_id} was timed as {marker} but says {bodies[event_id]!r}"
                )
            checked += 1
    return checked


def _encrypted_config(stack: Stack) -> Path:
    yaml = YAML()
    data = yaml.load(stack.config_path.read_text())
    data["encryption"].update(ENCRYPTION)
    path = stack.workdir / "config-encrypted.yaml"
    with path.open("w") as f:
        yaml.dump(data, f)
    return path


async def _switch(stack: Stack, process: BridgeProcess) -> None:
    await asyncio.to_thread(stack.bridge.stop)
    stack.bridge = process
    await stack.bridge.astart()
    await asyncio.sleep(STARTED_PAUSE)


async def measure_encrypted(
    stack: Stack, messages: int, rooms: int, concurrency: int, repeat: int
) -> list[dict[str, Any]]:
    """``repeat`` runs of ``messages`` each way through plain and encrypted portal rooms
    (``rooms`` of each); the bridge runs on its own config again afterwards."""
    plain_portals = await stack.make_portals("p", rooms)
    plain_bridge = stack.bridge
    observed, received = stack.observer.arrivals, stack.receiver.arrivals
    order = GhostOrder(observed)
    stack.observer.watchers.append(order)
    logging.getLogger("nio").setLevel(logging.WARNING)  # it logs every event at INFO
    staff = await StaffClient.login(
        stack.synapse.base_url, stack.staff_id, stack.staff_password, encrypted=True
    )
    runs: list[dict[str, Any]] = []
    try:
        await _switch(stack, BridgeProcess(
            _encrypted_config(stack), plain_bridge.port, stack.workdir / "bridge-encrypted.log"
        ))  # fmt: skip
        enc_portals = await _make_encrypted_portals(stack, order, rooms)
        order.taken.clear()  # keys of the first message reach the staff only after its join
        await staff.sync_once(0)
        plain_rooms = [p.room_id for p in plain_portals]
        enc_rooms = [p.room_id for p in enc_portals]
        if not all([await staff.room_is_encrypted(r) for r in enc_rooms]) or any(
            [await staff.room_is_encrypted(r) for r in plain_rooms]
        ):
            raise RuntimeError(
                "the encrypted portal rooms are not (all) encrypted, or plain ones are"
            )
        paths: dict[str, dict[str, tuple[Arrivals, Send]]] = {
            "r2m": {
                "plain": (observed, customer_sender(stack, plain_portals, None)),
                "encrypted": (observed, customer_sender(stack, enc_portals, order)),
            },
            "m2r": {
                "plain": (received, staff_sender(stack, plain_rooms, None)),
                "encrypted": (received, staff_sender(stack, enc_rooms, staff)),
            },
        }
        warm = max(concurrency, 2 * rooms)
        for direction, pair in paths.items():
            for kind, (arrivals, send) in pair.items():
                await bulk(stack, f"warm{direction}{kind[0]}", arrivals, send, warm, concurrency)
        for rep in range(repeat):
            result: dict[str, Any] = {}
            for direction, pair in paths.items():
                out: dict[str, Any] = {}
                order_ = list(pair.items())
                for kind, (arrivals, send) in order_[::-1] if rep % 2 else order_:
                    await asyncio.sleep(PAUSE)
                    started = time.monotonic()
                    tag = f"enc{direction}{kind[0]}{rep}"
                    measured: Measured = await bulk(
                        stack, tag, arrivals, send, messages, concurrency
                    )
                    out[kind] = measured.as_dict()
                    log.info(
                        "repeat %d %s %s: %.1f msg/s, p50 %.1f ms, bridge CPU %.2f ms/msg "
                        "(%.1fs)", rep + 1, direction, kind, measured.load.per_second,
                        measured.load.p50_ms, measured.cpu["bridge"] / messages * 1000,
                        time.monotonic() - started,
                    )  # fmt: skip
                result[direction] = out
            runs.append(result)
        checked = await _check_order(staff, order)
        log.info("%d encrypted arrivals checked against their decrypted markers", checked)
    finally:
        stack.observer.watchers.remove(order)
        await staff.close()
        if stack.bridge is not plain_bridge:
            await _switch(stack, plain_bridge)
    return runs
