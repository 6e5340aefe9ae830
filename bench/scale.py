"""Scale: a bridge database with many portals. Fills it through the bridge's own database
layer, then times the bridge process's start-up, reads its memory, and times portal look-ups
(by portal key and by room id) through the row classes the core uses."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
from mautrix.util.async_db import Connection, Database
from ruamel.yaml import YAML

from bridge import db as dbm
from bridge.db import Portal
from bridge.db.keys import digest
from tests.infra.bridge_proc import BridgeProcess

from .cpu import rss_mb
from .stack import ACCOUNT, Stack
from .stats import median, percentile

log = logging.getLogger("bench.scale")

CHUNK = 5000
STARTED = "Bridge started"
STARTUP_TIMEOUT = 120.0
POLL = 0.01
SETTLE_SECONDS = 1.0
"""Wait after start-up before reading the memory, so lazy start-up work is counted."""


@dataclass
class ScalePoint:
    """Figures for one database size."""

    portals: int
    startup_s: list[float]
    rss_mb: list[float]
    lookup_key_p50_ms: float
    lookup_key_p99_ms: float
    lookup_room_p50_ms: float
    lookup_room_p99_ms: float
    lookup_cached_p50_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "startup_median_s": median(self.startup_s),
            "rss_median_mb": median(self.rss_mb),
        }


def _chat(i: int) -> str:
    return f"scale-chat-{i}"


def _room(i: int) -> str:
    return f"!scale{i:07d}:localhost"


async def _fill(db: Database, start: int, stop: int) -> None:
    """Portal rows ``start`` .. ``stop - 1`` in chunks, one transaction per chunk."""
    now = int(time.time() * 1000)
    q = (
        "INSERT INTO portal (account, chat, room_id, name, topic, is_group, metadata, "
        "created_at, chat_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )
    for first in range(start, stop, CHUNK):
        rows = [
            (ACCOUNT, _chat(i), _room(i), f"Customer {i}", f"Webhook conversation {i}", False,
             "{}", now, digest(_chat(i)))
            for i in range(first, min(first + CHUNK, stop))
        ]  # fmt: skip
        conn: Connection
        async with db.acquire() as conn, conn.transaction():
            await conn.executemany(q, rows)


@dataclass
class Lookups:
    """Look-up times (ms) of random existing portals: from the database (the core's row
    cache emptied first, as for a portal not used lately) and from the row cache."""

    by_key: list[float]
    by_room: list[float]
    cached: list[float]


async def _lookups(count: int, portals: int) -> Lookups:
    rng = random.Random(portals)
    out = Lookups([], [], [])
    for _ in range(count):
        i = rng.randrange(portals)
        Portal.forget_cached()
        t = time.perf_counter()
        found = await Portal.get(ACCOUNT, _chat(i))
        out.by_key.append((time.perf_counter() - t) * 1000)
        assert found is not None and found.room_id == _room(i)
        Portal.forget_cached()
        t = time.perf_counter()
        found = await Portal.get_by_room(_room(i))
        out.by_room.append((time.perf_counter() - t) * 1000)
        assert found is not None and found.chat == _chat(i)
        t = time.perf_counter()
        found = await Portal.get(ACCOUNT, _chat(i))
        out.cached.append((time.perf_counter() - t) * 1000)
    return out


async def _startups(
    stack: Stack, config: Path, log_path: Path, times: int
) -> tuple[list[float], list[float]]:
    """Start the bridge on ``config`` ``times`` times: seconds from starting the process
    until it logged that it started and its HTTP listener answered, and its resident memory
    (MB) a moment later."""
    startups: list[float] = []
    memory: list[float] = []
    for _ in range(times):
        proc = BridgeProcess(config, stack.bridge.port, log_path)
        marker = proc.log_text().count(STARTED)
        started = time.perf_counter()
        proc.start()
        try:
            while proc.log_text().count(STARTED) == marker or not await _live(proc.url):
                assert proc.proc is not None
                if proc.proc.poll() is not None:
                    raise RuntimeError(f"the bridge exited:\n{proc.log_tail()}")
                if time.perf_counter() - started > STARTUP_TIMEOUT:
                    raise TimeoutError(f"the bridge did not start:\n{proc.log_tail()}")
                await asyncio.sleep(POLL)
            startups.append(time.perf_counter() - started)
            await asyncio.sleep(SETTLE_SECONDS)
            assert proc.proc is not None
            memory.append(rss_mb(proc.proc.pid))
        finally:
            await asyncio.to_thread(proc.stop)
    return startups, memory


async def _live(url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/_matrix/mau/live", timeout=aiohttp.ClientTimeout(total=1)) as r,
        ):
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


def _config_with_db(stack: Stack, url: str, name: str) -> Path:
    yaml = YAML()
    data = yaml.load(stack.config_path.read_text())
    data["database"]["url"] = url
    path = stack.workdir / f"config-{name}.yaml"
    with path.open("w") as f:
        yaml.dump(data, f)
    return path


async def measure_scale(
    stack: Stack, kind: str, sizes: list[int], lookups: int, startups: int
) -> list[ScalePoint]:
    """For each size in ``sizes`` (ascending) grow one database of ``kind`` (``postgres``
    or ``sqlite``) to that many portals and measure. The main bridge must be stopped (the
    bridge started here takes its port and registration)."""
    if kind == "postgres":
        await asyncio.to_thread(stack.postgres.create_database, "bridge_scale")
        url = stack.bridge_db_url("bridge_scale")
    else:
        url = f"sqlite:{stack.workdir / 'scale.db'}"
    config = _config_with_db(stack, url, f"scale-{kind}")
    db = Database.create(url, upgrade_table=dbm.upgrade_table, log=log)  # type: ignore[arg-type]
    await db.start()  # creates the schema, as the bridge's first start would
    dbm.init(db)
    points: list[ScalePoint] = []
    filled = 0
    try:
        for size in sizes:
            started = time.perf_counter()
            await _fill(db, filled, size)
            filled = size
            if kind == "postgres":
                await db.execute("ANALYZE portal")
            log.info("%s: %d portals in %.1fs", kind, size, time.perf_counter() - started)
            found = await _lookups(lookups, size)
            starts, memory = await _startups(
                stack, config, stack.workdir / f"bridge-scale-{kind}.log", startups
            )
            points.append(
                ScalePoint(
                    portals=size,
                    startup_s=starts,
                    rss_mb=memory,
                    lookup_key_p50_ms=percentile(found.by_key, 50),
                    lookup_key_p99_ms=percentile(found.by_key, 99),
                    lookup_room_p50_ms=percentile(found.by_room, 50),
                    lookup_room_p99_ms=percentile(found.by_room, 99),
                    lookup_cached_p50_ms=percentile(found.cached, 50),
                )
            )
    finally:
        await db.stop()
    return points
