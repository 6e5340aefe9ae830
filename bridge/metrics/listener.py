"""The metrics listener: ``GET /metrics`` (Prometheus text format) and ``GET /status``
(JSON: the bridge's version and uptime, the homeserver's reachability, each channel account's
connector state). A listener of its own, so that it can stay on a private address while the
appservice listener faces the homeserver."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from .. import __version__
from .registry import BridgeMetrics

log = logging.getLogger("bridge.metrics")

Accounts = Callable[[], dict[str, dict[str, Any]]]
"""Each channel account: ``{"type", "title", "state", "message"}``."""


class MetricsListener:
    def __init__(self, metrics: BridgeMetrics, accounts: Accounts) -> None:
        self.metrics = metrics
        self.accounts = accounts
        self.app = web.Application()
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/status", self._status)
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        log.info("Metrics and status listen on %s:%d", host, port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.scrape())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status())

    def status(self) -> dict[str, Any]:
        reach = self.metrics.reachability
        return {
            "version": __version__,
            "uptime_seconds": round(self.metrics.uptime(), 3),
            "homeserver": {"reachable": reach.reachable, "last_seen": reach.last_ok},
            "channels": self.accounts(),
        }
