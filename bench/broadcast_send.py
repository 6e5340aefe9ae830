"""The measured process of the broadcast figures (``bench.broadcast`` starts one per size, in a
fresh interpreter): it opens the prepared database as the bridge does, builds the production
Telegram connector of the config (pointed at the parent's Telegram simulator, its own limiter
raised above the configured rate) behind the core's ``DirectServices`` (the path of
``Services.send_direct``), and the broadcast engine standalone; then it broadcasts to the list
and waits for the end. A thread samples the process's resident memory meanwhile.

It prints one JSON line: the counts, the snapshot's and the sending phase's wall time (the
sending phase starts when the snapshot is complete and ends when ``Engine.wait`` returns), and
the resident memory before the broadcast and at its peak during it.

Two things are set here that the running bridge does not do: the connector's client-side
limiter (fixed at Telegram's documented 30/s overall in ``capabilities.py``) gets twice the
configured rate, so that the engine's pacing is what is measured; and the engine's snapshot is
timed by wrapping ``Engine._snapshot``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bridge.config import Config, parse
from bridge.connector import Capabilities, ConnectorState, NetworkConnector
from bridge.connectors.telegram.client import RateLimiter
from bridge.core.services.direct import DirectServices
from bridge.features.broadcast.engine import Content, Engine
from bridge.features.broadcast.module import BROADCAST
from bridge.features.consent.module import CONSENT
from bridge.features.consent.registry import Registry

from .inbox import open_db

log = logging.getLogger("bench.broadcast")

SAMPLE_EVERY = 0.02
TEXT = "Spring news: everything 20% off until Sunday."
BY = "@staff:localhost"


def read_config(path: str | Path) -> Config:
    """The bench's bridge config (its tokens never generated: no homeserver is used)."""
    from ruamel.yaml import YAML

    return parse(YAML(typ="safe").load(Path(path).read_text()))


class Host:
    """A connector's ``BridgeHost`` for sending only: nothing comes in."""

    def __init__(self, account: str, http: aiohttp.ClientSession) -> None:
        self.log = logging.getLogger(f"bridge.channel.{account}")
        self._http = http

    @property
    def http(self) -> aiohttp.ClientSession:
        return self._http

    async def handle_remote_event(self, event: Any) -> bool:
        return False

    def add_route(self, method: str, path: str, handler: Any) -> str:
        raise RuntimeError("the benchmark serves no routes")

    def set_state(self, state: ConnectorState) -> None:
        return None

    async def load_data(self) -> dict[str, Any]:
        return {}

    async def save_data(self, data: dict[str, Any]) -> None:
        return None

    async def find_chat(self, message_ids: list[str]) -> None:
        return None

    async def portal_metadata(self, chat: str) -> dict[str, Any]:
        return {}


class BenchServices(DirectServices):
    """The core's direct sends (``DirectServices``, unchanged) and what the engine asks besides,
    without a homeserver: no room, so no notices."""

    def __init__(self, config: Config, connectors: dict[str, NetworkConnector]) -> None:
        super().__init__(config, connectors, None, None, None, None, None)  # type: ignore[arg-type]

    def channel_title(self, account: str) -> str:
        return self.connectors[account].title

    def capabilities(self, account: str) -> Capabilities | None:
        found = self.connectors.get(account)
        return found.capabilities if found is not None else None

    async def notice(self, room_id: str, text: str, *, txn: str | None = None) -> str | None:
        return None

    async def edit_notice(self, room_id: str, event_id: str, text: str, *, txn: str) -> None:
        return None


class TimedEngine(Engine):
    """The engine, with the end of its snapshot noted."""

    snapshot_started = snapshot_done = 0.0

    async def _snapshot(self, found: Any) -> None:
        self.snapshot_started = time.monotonic()
        await super()._snapshot(found)
        self.snapshot_done = time.monotonic()


class Sampler:
    """The process's resident memory, sampled in a thread from ``start`` to ``stop``."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def cpu(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            self.peak = max(self.peak, self.rss())
            self.samples += 1

    def start(self) -> None:
        self.peak = self.rss()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def raise_limits(connector: NetworkConnector, overall: float) -> None:
    """Let the connector's own limiter send up to ``overall`` a second (see the docstring)."""
    rates = {**connector.capabilities.rate_limits, "global": overall}
    connector.capabilities = dataclasses.replace(connector.capabilities, rate_limits=rates)
    connector.client.limiter = RateLimiter(rates)  # type: ignore[attr-defined]


async def send(config_path: str, account: str, list_: str, rate: float) -> dict[str, Any]:
    config = read_config(config_path)
    db = await open_db(config)
    http = aiohttp.ClientSession()
    channel = config.channels[account]  # type: ignore[index]
    connector = channel.connector(channel.id, channel.options, Host(account, http))  # type: ignore[arg-type]
    raise_limits(connector, rate * 2)
    try:
        consent = CONSENT.parse_config(config.features["consent"], config)
        options = BROADCAST.parse_config(config.features["broadcast"], config)
        assert consent is not None and options is not None
        services = BenchServices(config, {account: connector})
        # What the engine uses of ``Services`` (the rest needs a homeserver).
        engine = TimedEngine(options, Registry(consent), services)  # type: ignore[arg-type]
        sampler = Sampler()
        before = sampler.rss()
        sampler.start()
        started, cpu = time.monotonic(), sampler.cpu()
        id_ = await engine.broadcast(list_, Content(TEXT), by=BY)
        counts = await engine.wait(id_)
        ended, cpu = time.monotonic(), sampler.cpu() - cpu
        sampler.stop()
    finally:
        await connector.stop()
        await http.close()
        await db.stop()
    sending = ended - engine.snapshot_done
    return {
        "counts": counts,
        "rate": engine.rate(account),
        "snapshot_s": engine.snapshot_done - engine.snapshot_started,
        "sending_s": sending,
        "total_s": ended - started,
        "cpu_s": cpu,
        "per_second": counts.get("sent", 0) / sending if sending > 0 else 0.0,
        "rss_before_mb": before / 2**20,
        "rss_peak_mb": sampler.peak / 2**20,
        "rss_samples": sampler.samples,
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.broadcast_send")
    p.add_argument("config")
    p.add_argument("--account", required=True)
    p.add_argument("--list", required=True)
    p.add_argument("--rate", type=float, required=True)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result = asyncio.run(send(args.config, args.account, args.list, args.rate))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
