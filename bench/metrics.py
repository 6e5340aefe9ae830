"""The metrics scrape (issue 16): ``GET /metrics`` of a configured bridge whose database holds
many portals (100,000 by default) must take under 10 ms.

The bridge object is built from a config with the metrics listener on, its database filled
through the same statement as the scale part, its queue loaded as at a start, and its metrics
listener started; the homeserver and the connectors are not needed to scrape, so they are not
started (the connectors' states are set as if all were connected). Every series a running
bridge has is there: each account's counters and histograms, and the features' figures for
ten teams and a broadcast list. The scrape reads memory only (``bridge/metrics/registry.py``),
so the portals should not matter; the part shows that they do not. The reference, timed in
turn with it on the same listener and the same client connection: a trivial ``GET`` that
answers an empty 200."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bridge.config import parse
from bridge.core.bridge import Bridge
from tests.infra.bridge_proc import write_bridge_config
from tests.infra.ports import LOOPBACK, free_port

from .scale import _fill
from .stack import SERVER_NAME
from .stats import percentile

log = logging.getLogger("bench.metrics")

WARM_UP = 20
TEAMS = 10


async def measure_metrics(workdir: Path, portals: int, scrapes: int) -> dict[str, Any]:
    """Median and p99 ms of ``scrapes`` scrapes and as many trivial requests, taken in turn,
    with ``portals`` portals in the bridge's (SQLite) database."""
    port = free_port()
    data = write_bridge_config(
        workdir / "config-metrics.yaml", hs_url=f"http://{LOOPBACK}:1", domain=SERVER_NAME,
        db_url=f"sqlite:{workdir / 'metrics.db'}", staff=[], admins=[],
        outbound_url=f"http://{LOOPBACK}:1/inbox", secret="bench-metrics-secret-bench-metrics",
        metrics=f"{LOOPBACK}:{port}",
    )  # fmt: skip
    config = parse(data)
    bridge = Bridge(config)
    await bridge.db.start()
    try:
        started = time.perf_counter()
        await _fill(bridge.db, 0, portals)
        filled = await bridge.db.fetchval("SELECT COUNT(*) FROM portal")
        assert filled == portals, (filled, portals)
        log.info("metrics: %d portals in %.1fs", portals, time.perf_counter() - started)
        await bridge.dispatcher.load_pending()
        _series(bridge, list(config.channels))
        bridge.metrics_listener.app.router.add_get("/trivial", _trivial)
        await bridge.metrics_listener.start(LOOPBACK, port)
        try:
            scrape_ms, trivial_ms, size = await _timed(f"http://{LOOPBACK}:{port}", scrapes)
        finally:
            await bridge.metrics_listener.stop()
    finally:
        await bridge.db.stop()
    result = {
        "portals": portals,
        "scrapes": scrapes,
        "scrape_bytes": size,
        "scrape_p50_ms": percentile(scrape_ms, 50),
        "scrape_p99_ms": percentile(scrape_ms, 99),
        "trivial_p50_ms": percentile(trivial_ms, 50),
        "trivial_p99_ms": percentile(trivial_ms, 99),
    }
    log.info(
        "metrics: scrape p50 %.2f ms (p99 %.2f ms, %d bytes), trivial GET p50 %.2f ms",
        result["scrape_p50_ms"], result["scrape_p99_ms"], size, result["trivial_p50_ms"],
    )  # fmt: skip
    return result


def _series(bridge: Bridge, accounts: list[str]) -> None:
    """The series a bridge that ran a while has: messages, failures and latencies of every
    account, connector states, features' figures."""
    m = bridge.metrics
    m.live.states = lambda: {account: "connected" for account in accounts}
    now_ms = int(time.time() * 1000)
    for account in accounts:
        for direction in ("in", "out"):
            m.bridged(account, direction, now_ms - 300)
            for reason in ("temporary", "permanent", "refused"):
                m.failed(account, direction, reason)
            m.buried(f"rm:{account}/chat", "remote" if direction == "in" else "outbound")
        m.consent("newsletter", account, "confirmed")
        m.consent("newsletter", account, "withdrawn")
    for n in range(TEAMS):
        m.conversations(f"team-{n}", 40, 3)
        m.first_response(f"team-{n}", 120)
    m.broadcast("newsletter", {"sent": 900, "failed": 10, "pending": 90})
    m.reachability.ok()


async def _trivial(request: web.Request) -> web.Response:
    return web.Response()


async def _timed(url: str, scrapes: int) -> tuple[list[float], list[float], int]:
    scrape_ms: list[float] = []
    trivial_ms: list[float] = []
    size = 0
    async with aiohttp.ClientSession() as session:
        for n in range(WARM_UP + scrapes):
            for path, out in (("/metrics", scrape_ms), ("/trivial", trivial_ms)):
                t = time.perf_counter()
                async with session.get(url + path) as r:
                    body = await r.read()
                took = (time.perf_counter() - t) * 1000
                assert r.status == 200, (path, r.status)
                if path == "/metrics":
                    assert b"bridge_connector_state" in body and b"bridge_queue_depth" in body
                    size = len(body)
                if n >= WARM_UP:
                    out.append(took)
    return scrape_ms, trivial_ms, size
