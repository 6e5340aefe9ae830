"""The traffic measurements: remote -> Matrix (through the bridge and straight to Synapse) and
Matrix -> remote (through the bridge and through the bare appservice), with the CPU each
process used meanwhile."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .cpu import CpuSnapshot
from .endpoints import Arrivals
from .load import LoadResult, Send, alternating, closed_loop
from .stack import Portal, Stack


@dataclass
class Measured:
    load: LoadResult
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds used during the run: bridge, bridge_db, synapse, synapse_db."""

    def as_dict(self) -> dict[str, Any]:
        return {**self.load.as_dict(), "cpu_seconds": self.cpu}


async def _cpu_groups(stack: Stack) -> dict[str, list[int]]:
    backends = await stack.db_backend_pids()
    return {
        "bridge": [stack.bridge_pid],
        "bridge_db": backends.get("bridge", []),
        "synapse": [stack.synapse_pid],
        "synapse_db": backends.get("synapse", []),
    }


async def _measured(stack: Stack, run: Any) -> Measured:
    groups = await _cpu_groups(stack)
    before = CpuSnapshot.take(groups)
    load: LoadResult = await run()
    after_groups = await _cpu_groups(stack)
    merged = {k: sorted(set(groups[k]) | set(after_groups[k])) for k in groups}
    return Measured(load, CpuSnapshot.take(merged).used_since(before))


def bridge_sender(stack: Stack, portals: list[Portal]) -> Send:
    """Customer messages POSTed to the bridge's webhook endpoint, message ``i`` into portal
    ``i % len(portals)``; they arrive when Synapse pushes them to the observer."""

    async def send(index: int, marker: str) -> None:
        portal = portals[index % len(portals)]
        await stack.send_webhook(portal.chat, portal.customer, marker, f"message {marker}")

    return send


def direct_sender(stack: Stack, portals: list[Portal]) -> Send:
    """The same messages sent by the ghosts straight to Synapse with the appservice token,
    into other portal rooms of the same making."""

    async def send(index: int, marker: str) -> None:
        portal = portals[index % len(portals)]
        await stack.send_direct(portal.room_id, portal.ghost, f"message {marker}")

    return send


def staff_sender(stack: Stack, room_id: str) -> Send:
    """Staff messages in ``room_id``; they arrive when the receiver gets the HTTP request
    for them (from the bridge or from the bare appservice)."""

    async def send(index: int, marker: str) -> None:
        await stack.staff_send(room_id, f"answer {marker}")

    return send


async def bulk(
    stack: Stack, tag: str, arrivals: Arrivals, send: Send, messages: int, concurrency: int
) -> Measured:
    """A closed-loop run with the CPU every process used meanwhile."""

    async def run() -> LoadResult:
        return await closed_loop(arrivals, tag, messages, concurrency, send)

    return await _measured(stack, run)


async def one_at_a_time(
    tag: str, messages: int, paths: dict[str, tuple[Arrivals, Send]]
) -> dict[str, Measured]:
    """Latency runs: one message in flight, the paths taken in turn (see ``alternating``)."""
    results = await alternating(tag, messages, list(paths.values()))
    return {name: Measured(result) for name, result in zip(paths, results, strict=True)}
