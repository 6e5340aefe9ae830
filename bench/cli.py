"""``python -m bench``: run every measurement, print the table, write the JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.infra.postgres import PostgresServer

from .broadcast import measure_broadcast
from .catchup import measure_catchup
from .encrypted import measure_encrypted
from .endpoints import Arrivals
from .inbox import measure_inbox
from .inbox_e2e import measure_first_messages
from .load import Send
from .media import measure_media
from .metrics import measure_metrics
from .report import build_figures, table
from .scale import measure_scale
from .stack import Stack, start_stack
from .startup import measure_startup, startup_figures
from .traffic import (
    Measured,
    bridge_sender,
    bulk,
    direct_sender,
    one_at_a_time,
    staff_sender,
)

log = logging.getLogger("bench")

PAUSE = 1.0
"""Seconds between runs, so one run's leftovers (echoes, Synapse background work) settle."""
STACK_PARTS = ("traffic", "media", "inbox-e2e", "encrypted", "scale")
"""The parts that need the whole stack; the local ones need at most a PostgreSQL."""
LOCAL_PARTS = ("inbox", "broadcast", "metrics", "startup", "catchup")


@dataclass
class Options:
    messages: int = 1000
    latency_messages: int = 200
    concurrency: int = 10
    rooms: int = 100
    repeat: int = 3
    portals: int = 100_000
    scale_reference: int = 100
    scale_dbs: list[str] = field(default_factory=lambda: ["postgres", "sqlite"])
    startups: int = 3
    lookups: int = 1000
    media_mb: int = 100
    inbox_first: int = 300
    inbox_floods: int = 5
    inbox_e2e: int = 30
    inbox_dbs: list[str] = field(default_factory=lambda: ["postgres", "sqlite"])
    enc_messages: int = 500
    enc_rooms: int = 10
    broadcast_recipients: int = 100_000
    broadcast_reference: int = 1000
    broadcast_rate: float = 1000.0
    broadcast_dbs: list[str] = field(default_factory=lambda: ["sqlite"])
    metrics_scrapes: int = 200
    catchup_rooms: int = 1000
    bridge_db: str = "postgres"
    json: str = "bench-results.json"
    workdir: str | None = None
    keep: bool = False
    skip: list[str] = field(default_factory=list)
    profile: str | None = None

    @classmethod
    def quick(cls) -> Options:
        return cls(
            messages=20, latency_messages=10, concurrency=4, rooms=3, repeat=1, portals=2000,
            scale_dbs=["sqlite"], startups=1, lookups=100, media_mb=8, inbox_first=20,
            inbox_floods=1, inbox_e2e=3, enc_messages=20, enc_rooms=2, broadcast_recipients=200,
            broadcast_reference=50, metrics_scrapes=30, catchup_rooms=20,
        )  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> Options:
    d = Options()
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the bridge against references measured in the same run.",
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that it all works")
    p.add_argument("--messages", type=int, help=f"messages per bulk run ({d.messages})")
    p.add_argument(
        "--latency-messages", type=int,
        help=f"messages per one-at-a-time run ({d.latency_messages})",
    )  # fmt: skip
    p.add_argument(
        "--concurrency", type=int, help=f"messages in flight in bulk runs ({d.concurrency})"
    )
    p.add_argument("--rooms", type=int, help=f"rooms of the many-rooms run ({d.rooms})")
    p.add_argument("--repeat", type=int, help=f"repeats of every traffic run ({d.repeat})")
    p.add_argument("--portals", type=int, help=f"portals in the scale database ({d.portals})")
    p.add_argument(
        "--scale-db", action="append", choices=["postgres", "sqlite"],
        help="database(s) for the scale figures (both by default)",
    )  # fmt: skip
    p.add_argument(
        "--bridge-db", choices=["postgres", "sqlite"], help="the bridge's database in traffic runs"
    )
    p.add_argument(
        "--media-mb", type=int, help=f"size of the file moved each way in MB ({d.media_mb})"
    )
    p.add_argument(
        "--inbox-first", type=int,
        help=f"first messages through the inbox per repeat ({d.inbox_first})",
    )  # fmt: skip
    p.add_argument(
        "--inbox-floods", type=int,
        help=f"floods of each assignment mode per repeat ({d.inbox_floods})",
    )  # fmt: skip
    p.add_argument(
        "--inbox-e2e", type=int,
        help=f"first messages end to end with the inbox off and on, per repeat ({d.inbox_e2e})",
    )  # fmt: skip
    p.add_argument(
        "--inbox-db", action="append", choices=["postgres", "sqlite"],
        help="database(s) for the inbox figures (both by default)",
    )  # fmt: skip
    p.add_argument("--enc-messages", type=int, help=f"messages each way a run ({d.enc_messages})")
    p.add_argument(
        "--enc-rooms", type=int, help=f"plain and encrypted portal rooms each ({d.enc_rooms})"
    )
    p.add_argument(
        "--broadcast-recipients", type=int,
        help=f"recipients of the broadcast measured ({d.broadcast_recipients})",
    )  # fmt: skip
    p.add_argument(
        "--broadcast-reference", type=int,
        help=f"recipients of the reference broadcast, for memory ({d.broadcast_reference})",
    )  # fmt: skip
    p.add_argument(
        "--broadcast-rate", type=float,
        help=f"configured broadcast rate, messages a second ({d.broadcast_rate:g})",
    )  # fmt: skip
    p.add_argument(
        "--broadcast-db", action="append", choices=["postgres", "sqlite"],
        help="database(s) for the broadcast figures (sqlite by default)",
    )  # fmt: skip
    p.add_argument(
        "--metrics-scrapes", type=int,
        help=f"scrapes of /metrics, and as many trivial requests ({d.metrics_scrapes})",
    )  # fmt: skip
    p.add_argument(
        "--catchup-rooms", type=int,
        help=f"active rooms read back by the measured catch-up ({d.catchup_rooms})",
    )  # fmt: skip
    p.add_argument("--skip", action="append", choices=[*STACK_PARTS, *LOCAL_PARTS], default=[])
    p.add_argument("--json", help=f"where to write the figures ({d.json})")
    p.add_argument("--workdir", help="keep all files here (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument(
        "--profile", metavar="PATH",
        help="record the bridge with py-spy during the traffic runs (collapsed stacks)",
    )  # fmt: skip
    args = p.parse_args(argv)
    opts = Options.quick() if args.quick else Options()
    for name in ("messages", "latency_messages", "concurrency", "rooms", "repeat", "portals",
                 "media_mb", "inbox_first", "inbox_floods", "inbox_e2e", "enc_messages",
                 "enc_rooms", "broadcast_recipients",
                 "broadcast_reference", "broadcast_rate", "metrics_scrapes", "catchup_rooms",
                 "bridge_db", "json",
                 "workdir",
                 "profile"):  # fmt: skip
        value = getattr(args, name)
        if value is not None:
            setattr(opts, name, value)
    if args.scale_db:
        opts.scale_dbs = args.scale_db
    if args.inbox_db:
        opts.inbox_dbs = args.inbox_db
    if args.broadcast_db:
        opts.broadcast_dbs = args.broadcast_db
    opts.keep = args.keep
    opts.skip = args.skip
    return opts


async def _pause() -> None:
    await asyncio.sleep(PAUSE)


async def traffic_repeat(stack: Stack, opts: Options, rep: int) -> dict[str, Any]:
    """One repeat of every traffic run. Bulk runs go one after the other, the bridge first in
    odd repeats and the reference first in even ones, so slow drift on a shared machine
    favours neither; one-at-a-time runs take the bridge and its reference in turn."""
    b_all, d_all = stack.portals["b"], stack.portals["d"]
    observed, received = stack.observer.arrivals, stack.receiver.arrivals
    n, lat, conc = opts.messages, opts.latency_messages, opts.concurrency
    result: dict[str, Any] = {}

    def logged(name: str, path: str, measured: Measured, took: float) -> None:
        load = measured.load
        log.info(
            "repeat %d %s %s: %.1f msg/s, p50 %.1f ms, p99 %.1f ms (%.1fs)",
            rep + 1, name, path, load.per_second, load.p50_ms, load.p99_ms, took,
        )  # fmt: skip

    async def bulk_pair(name: str, runs: dict[str, tuple[Arrivals, Send]]) -> None:
        out: dict[str, Any] = {}
        order = list(runs.items())
        for path, (arrivals, send) in order[::-1] if rep % 2 else order:
            started = time.monotonic()
            tag = name.replace("_", "") + f"{path[0]}{rep}"
            measured = await bulk(stack, tag, arrivals, send, n, conc)
            logged(name, path, measured, time.monotonic() - started)
            out[path] = measured.as_dict()
            await _pause()
        result[name] = out

    async def alternating_pair(name: str, paths: dict[str, tuple[Arrivals, Send]]) -> None:
        started = time.monotonic()
        order = dict(list(paths.items())[::-1]) if rep % 2 else paths
        measured = await one_at_a_time(name.replace("_", "") + str(rep), lat, order)
        for path, m in measured.items():
            logged(name, path, m, time.monotonic() - started)
        result[name] = {path: measured[path].as_dict() for path in paths}
        await _pause()

    await alternating_pair("r2m_seq", {
        "bridge": (observed, bridge_sender(stack, b_all[:1])),
        "direct": (observed, direct_sender(stack, d_all[:1])),
    })  # fmt: skip
    await bulk_pair("r2m_1room", {
        "bridge": (observed, bridge_sender(stack, b_all[:1])),
        "direct": (observed, direct_sender(stack, d_all[:1])),
    })  # fmt: skip
    await bulk_pair("r2m_rooms", {
        "bridge": (observed, bridge_sender(stack, b_all)),
        "direct": (observed, direct_sender(stack, d_all)),
    })  # fmt: skip
    await alternating_pair("m2r_seq", {
        "bridge": (received, staff_sender(stack, b_all[0].room_id)),
        "bare": (received, staff_sender(stack, stack.bare_room)),
    })  # fmt: skip
    return result


async def run(opts: Options) -> dict[str, Any]:
    started = time.monotonic()
    load_before = os.getloadavg()
    workdir = _workdir(opts)
    log.info("Working in %s", workdir)
    stack = None
    postgres = None
    if not set(STACK_PARTS) <= set(opts.skip):
        e2ee = "encrypted" not in opts.skip
        stack = await start_stack(workdir, bridge_db=opts.bridge_db, e2ee=e2ee)
        postgres = stack.postgres
    elif _local_postgres(opts):
        postgres = PostgresServer(workdir)
        await postgres.astart()
    runs: list[dict[str, Any]] = []
    scale: dict[str, list[dict[str, Any]]] = {}
    media: dict[str, Any] = {}
    inbox: list[dict[str, Any]] = []
    inbox_e2e: list[dict[str, Any]] = []
    encrypted: list[dict[str, Any]] = []
    broadcast: dict[str, Any] = {}
    metrics: list[dict[str, Any]] = []
    startup: dict[str, list[float]] = {}
    catchup: list[dict[str, Any]] = []
    ok = False
    try:
        if stack is not None and "traffic" not in opts.skip:
            t = time.monotonic()
            await stack.make_portals("b", opts.rooms)
            await stack.make_portals("d", opts.rooms)
            stack.bare_room = await stack.make_bare_room()
            log.info("%d portal rooms ready in %.1fs", 2 * opts.rooms, time.monotonic() - t)
            await warm_up(stack, opts)
            profiler = _start_profiler(opts.profile, stack.bridge_pid) if opts.profile else None
            for rep in range(opts.repeat):
                runs.append(await traffic_repeat(stack, opts, rep))
            if profiler is not None:
                await asyncio.to_thread(_stop_profiler, profiler)
        if stack is not None and "media" not in opts.skip:
            t = time.monotonic()
            media = await measure_media(stack, opts.media_mb)
            log.info("media transfers done in %.1fs", time.monotonic() - t)
        if stack is not None and "inbox-e2e" not in opts.skip:
            t = time.monotonic()
            inbox_e2e = await measure_first_messages(stack, opts.inbox_e2e, opts.repeat)
            log.info("first messages with the inbox off and on in %.1fs", time.monotonic() - t)
        if stack is not None and "encrypted" not in opts.skip:
            t = time.monotonic()
            encrypted = await measure_encrypted(
                stack, opts.enc_messages, opts.enc_rooms, opts.concurrency, opts.repeat
            )
            log.info("plain and encrypted rooms in %.1fs", time.monotonic() - t)
        if stack is not None and "scale" not in opts.skip:
            await asyncio.to_thread(stack.bridge.stop)
            sizes = sorted({min(opts.scale_reference, opts.portals), opts.portals})
            for kind in opts.scale_dbs:
                t = time.monotonic()
                points = await measure_scale(stack, kind, sizes, opts.lookups, opts.startups)
                scale[kind] = [p.as_dict() for p in points]
                log.info("scale on %s done in %.1fs", kind, time.monotonic() - t)
        if "inbox" not in opts.skip:
            for rep in range(opts.repeat):
                inbox.append(
                    await measure_inbox(
                        workdir, postgres, opts.inbox_dbs, opts.inbox_first, opts.inbox_floods,
                        rep,
                    )
                )  # fmt: skip
        if "broadcast" not in opts.skip:
            t = time.monotonic()
            sizes = (min(opts.broadcast_reference, opts.broadcast_recipients),
                     opts.broadcast_recipients)  # fmt: skip
            broadcast = await measure_broadcast(
                workdir, postgres, opts.broadcast_dbs, sizes, opts.broadcast_rate
            )
            log.info("broadcasts done in %.1fs", time.monotonic() - t)
        if "metrics" not in opts.skip:
            for rep in range(opts.repeat):
                part = workdir / f"metrics-{rep}"
                part.mkdir()
                metrics.append(await measure_metrics(part, opts.portals, opts.metrics_scrapes))
        if "startup" not in opts.skip:
            startup = await measure_startup(workdir, opts.startups)
        if "catchup" not in opts.skip:
            assert postgres is not None
            t = time.monotonic()
            catchup = await measure_catchup(workdir, postgres, opts.catchup_rooms, opts.repeat)
            log.info("catch-ups done in %.1fs", time.monotonic() - t)
        ok = True
    finally:
        if stack is not None:
            await stack.close()
        elif postgres is not None:
            await postgres.astop()
        if ok and not opts.keep and not opts.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not ok:
            log.error("Logs are kept in %s", workdir)
    figures = build_figures(
        runs, scale, asdict(opts), media, inbox, inbox_e2e, broadcast, encrypted, metrics, catchup
    ) + startup_figures(startup)
    return {
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "options": asdict(opts),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "duration_s": round(time.monotonic() - started, 1),
        "figures": {f.key: f.as_dict() for f in figures},
        "runs": runs,
        "scale": scale,
        "media": media,
        "inbox": inbox,
        "inbox_e2e": inbox_e2e,
        "encrypted": encrypted,
        "broadcast": broadcast,
        "metrics": metrics,
        "startup": startup,
        "catchup": catchup,
    }


def _local_postgres(opts: Options) -> bool:
    """Whether a part that runs without the stack wants a PostgreSQL."""
    return (
        ("inbox" not in opts.skip and "postgres" in opts.inbox_dbs)
        or ("broadcast" not in opts.skip and "postgres" in opts.broadcast_dbs)
        or "catchup" not in opts.skip
    )


def _start_profiler(path: str, pid: int) -> subprocess.Popen[bytes]:
    py_spy = Path(sys.executable).with_name("py-spy")
    cmd = [str(py_spy), "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
           "--output", path, "--nonblocking"]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL)


def _stop_profiler(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(60)


def _workdir(opts: Options) -> Path:
    if not opts.workdir:
        return Path(tempfile.mkdtemp(prefix="bridge-bench-"))
    workdir = Path(opts.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


async def warm_up(stack: Stack, opts: Options) -> None:
    """A few messages on every path first, so connection pools and caches are warm."""
    count = max(opts.concurrency, 5)
    b, d = stack.portals["b"], stack.portals["d"]
    observed, received = stack.observer.arrivals, stack.receiver.arrivals
    await bulk(stack, "warmb", observed, bridge_sender(stack, b), count, opts.concurrency)
    await bulk(stack, "warmd", observed, direct_sender(stack, d), count, opts.concurrency)
    await one_at_a_time("warmm", 3, {
        "bridge": (received, staff_sender(stack, b[0].room_id)),
        "bare": (received, staff_sender(stack, stack.bare_room)),
    })  # fmt: skip
    await _pause()


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    opts = parse_args(argv)
    results = asyncio.run(run(opts))
    print(table(list(results["figures"].values())))
    print(f"\n{results['duration_s']:.0f}s; figures written to {opts.json}")
    Path(opts.json).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0
