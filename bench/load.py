"""Closed-loop load: ``concurrency`` senders, each sending one message and waiting until it
arrived (at the observer or the receiver) before sending the next, so the bridge and its
reference always have the same number of messages in flight."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from .endpoints import Arrivals
from .stats import percentile

Send = Callable[[int, str], Awaitable[None]]
"""Sends message ``index`` carrying ``marker``; returns when the sender's request is done."""

ARRIVAL_TIMEOUT = 120.0


@dataclass
class LoadResult:
    messages: int
    concurrency: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    mean_ms: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


async def closed_loop(
    arrivals: Arrivals, tag: str, messages: int, concurrency: int, send: Send
) -> LoadResult:
    """Latency is from just before the send to the arrival; throughput is the messages over
    the time from the first send to the last arrival."""
    counter = itertools.count()
    latencies: list[float] = []

    async def sender() -> None:
        while (index := next(counter)) < messages:
            marker = f"bench-{tag}-{index}"
            arrived = arrivals.expect(marker)
            sent = time.perf_counter()
            try:
                await send(index, marker)
                at = await asyncio.wait_for(arrived, ARRIVAL_TIMEOUT)
            finally:
                arrivals.forget(marker)
            latencies.append(at - sent)

    start = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(min(concurrency, messages))))
    seconds = time.perf_counter() - start
    ms = [x * 1000 for x in latencies]
    return LoadResult(
        messages=messages,
        concurrency=concurrency,
        seconds=seconds,
        per_second=messages / seconds if seconds else 0.0,
        p50_ms=percentile(ms, 50),
        p99_ms=percentile(ms, 99),
        mean_ms=sum(ms) / len(ms) if ms else 0.0,
    )


async def alternating(
    tag: str,
    messages: int,
    paths: list[tuple[Arrivals, Send]],
    after: Callable[[str], Awaitable[None]] | None = None,
) -> list[LoadResult]:
    """One message at a time, taking the paths in turn (message ``i`` of each path goes
    right after message ``i`` of the one before), so that every path meets the same load of a
    shared machine. One result per path; its throughput counts only its own messages' time.
    ``after`` is awaited with each message's marker once it arrived (not timed): to let what
    a message set off after its arrival finish before the next is sent."""
    latencies: list[list[float]] = [[] for _ in paths]
    for index in range(messages):
        for n, (arrivals, send) in enumerate(paths):
            marker = f"bench-{tag}{n}-{index}"
            arrived = arrivals.expect(marker)
            sent = time.perf_counter()
            try:
                await send(index, marker)
                at = await asyncio.wait_for(arrived, ARRIVAL_TIMEOUT)
            finally:
                arrivals.forget(marker)
            latencies[n].append(at - sent)
            if after is not None:
                await after(marker)
    results = []
    for own in latencies:
        ms = [x * 1000 for x in own]
        seconds = sum(own)
        results.append(
            LoadResult(
                messages=messages,
                concurrency=1,
                seconds=seconds,
                per_second=messages / seconds if seconds else 0.0,
                p50_ms=percentile(ms, 50),
                p99_ms=percentile(ms, 99),
                mean_ms=sum(ms) / len(ms) if ms else 0.0,
            )
        )
    return results
