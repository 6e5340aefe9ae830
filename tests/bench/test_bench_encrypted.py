"""How the encrypted run tells its arrivals apart without reading them (the whole run is in
the quick benchmark, tests/bench/test_bench_smoke.py): the n-th encrypted event of a ghost is
its n-th queued marker, nothing else counts, and every taken event is kept for the check."""

from __future__ import annotations

from typing import Any

from bench.encrypted import GhostOrder
from bench.endpoints import Arrivals

GHOST_A, GHOST_B = "@bridge_hooks_a:localhost", "@bridge_hooks_b:localhost"


def _event(n: int, sender: str, room: str, type_: str = "m.room.encrypted") -> dict[str, Any]:
    return {"type": type_, "sender": sender, "room_id": room, "event_id": f"$e{n}"}


async def test_encrypted_events_are_taken_in_order_per_ghost() -> None:
    arrivals = Arrivals()
    order = GhostOrder(arrivals)
    futures = {m: arrivals.expect(m) for m in ("bench-x-0", "bench-x-1", "bench-x-2")}
    order.queue(GHOST_A, "bench-x-0")
    order.queue(GHOST_B, "bench-x-1")
    order.queue(GHOST_A, "bench-x-2")

    order(_event(1, "@staff:localhost", "!a"), 1.0)  # someone else's encrypted message
    order(_event(2, GHOST_A, "!a", "m.room.member"), 2.0)  # not a message
    order(_event(3, GHOST_A, "!a"), 3.0)
    order(_event(4, GHOST_A, "!a"), 4.0)
    order(_event(5, GHOST_B, "!b"), 5.0)
    order(_event(6, GHOST_A, "!a"), 6.0)  # nothing queued any more: not taken

    assert {m: f.result() for m, f in futures.items()} == {
        "bench-x-0": 3.0,
        "bench-x-2": 4.0,
        "bench-x-1": 5.0,
    }
    assert order.taken == {
        "!a": [("$e3", "bench-x-0"), ("$e4", "bench-x-2")],
        "!b": [("$e5", "bench-x-1")],
    }
    assert arrivals.room_of == {"bench-x-0": "!a", "bench-x-2": "!a", "bench-x-1": "!b"}
