"""Broadcasts as a feature module: its ``features.broadcast`` section checked at start-up
(it needs ``features.consent``: broadcasts go to a consent list's confirmed subscribers), the
broadcast rooms (a job at start), their room handler, the receipts hook and the supervisor job
that keeps every running broadcast's worker going. ``BROADCAST.engine`` after setup is the
API a benchmark or a script drives (``Engine.broadcast``, ``Engine.wait``)."""

from __future__ import annotations

from functools import partial
from typing import Any

from ...config import Config
from ...seams import PeriodicJob, Seams
from ..consent.module import CONSENT
from .api import add_operations
from .config import BroadcastConfig, parse_broadcast_config
from .engine import SUPERVISE_INTERVAL, Engine
from .receipts import ReceiptHook
from .report import report_progress
from .room import BroadcastRooms

ROOMS_INTERVAL = 600.0


class BroadcastFeature:
    name = "broadcast"

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.rooms: BroadcastRooms | None = None

    def parse_config(self, section: Any, config: Config) -> BroadcastConfig | None:
        return parse_broadcast_config(section, config)

    def setup(self, seams: Seams, options: BroadcastConfig) -> None:
        registry = CONSENT.registry
        if registry is None:  # the config check makes sure consent is on, and set up first
            raise RuntimeError("broadcasts need the consent feature set up before them")
        engine = self.engine = Engine(options, registry, seams.services)
        rooms = self.rooms = BroadcastRooms(engine, options, seams.services)
        seams.add_room_handler(rooms)
        add_operations(seams, engine, rooms)
        seams.add_inbound_hook(ReceiptHook())
        seams.add_job(PeriodicJob("broadcast-rooms", ROOMS_INTERVAL, rooms.ensure, True))
        seams.add_job(PeriodicJob("broadcast-worker", SUPERVISE_INTERVAL, engine.supervise, True))
        if seams.config.metrics is not None:
            report = partial(report_progress, seams.metrics, list(options.lists))
            seams.add_job(PeriodicJob("broadcast-metrics", seams.config.metrics.refresh, report))


BROADCAST = BroadcastFeature()
