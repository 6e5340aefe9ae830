"""The bridge's metrics, in a registry of its own (never prometheus-client's global one, so
two bridges in one process, as in the tests, count apart).

What happens is counted where it happens: the pipeline counts a remote message bridged in,
the staff and outbound handlers a message delivered out or refused by a gate, delivery its
retries and permanent failures, the dispatcher the retries of whole items and the dead
letters, the sender (through ``Reachability``) whether the homeserver answers. Features report
through ``Seams.metrics`` (``FeatureMetrics``). What lives in memory (the queue, the
connectors' states) is read at scrape time by a collector; what lives in the database is
refreshed by periodic jobs. A scrape never queries the database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__
from ..connector import StateKind
from .reachability import Reachability

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
"""Seconds from accepting an event to delivering it (a retried one takes minutes)."""
RESPONSE_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800)
"""Seconds a customer waited for the first staff reply."""
SENT = ("sent", "delivered", "read")
OPEN = ("pending", "sending")
BROADCAST_STATUSES = ("sent", "failed", "skipped", "pending")

QueueFigures = Callable[[], tuple[int, float | None]]
"""Items queued now, and when the oldest was accepted (Unix seconds; None: empty)."""
States = Callable[[], Mapping[str, str]]
"""Each channel account's connector state (a ``StateKind`` value)."""


def account_of(queue_key: str) -> str:
    """The channel account of a conversation's queue key (``rm:<account>/<chat>``), else
    ``""`` (a room that is no portal)."""
    if not queue_key.startswith("rm:"):
        return ""
    return queue_key[3:].split("/", 1)[0]


def direction_of(kind: str) -> str:
    """``in``: remote -> Matrix; ``out``: Matrix -> remote (a staff event, or a message the
    bridge started)."""
    return "in" if kind == "remote" else "out"


class BridgeMetrics:
    def __init__(
        self, reachability: Reachability | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.clock = clock
        self.started = clock()
        self.reachability = reachability or Reachability()
        self.registry = CollectorRegistry()
        r = self.registry
        by_direction = ["account", "direction"]
        self.messages = Counter(
            "bridge_messages", "Messages bridged: in (remote to Matrix), out (Matrix to remote)",
            by_direction, registry=r,
        )  # fmt: skip
        self.failures = Counter(
            "bridge_delivery_failures",
            "Failures by reason: temporary (retried), permanent, refused (a gate), dead_letter",
            [*by_direction, "reason"], registry=r,
        )  # fmt: skip
        self.retries = Counter(
            "bridge_retries", "Attempts retried after a failure", by_direction, registry=r
        )
        self.dead_letters = Counter(
            "bridge_dead_letters", "Queue items given up and kept as dead letters",
            by_direction, registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "bridge_delivery_latency_seconds", "From accepting a message to delivering it",
            by_direction, buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.open_conversations = Gauge(
            "bridge_inbox_open_conversations", "Open inbox conversations", ["team"], registry=r
        )
        self.unassigned = Gauge(
            "bridge_inbox_unassigned_conversations", "Open inbox conversations nobody has",
            ["team"], registry=r,
        )  # fmt: skip
        self.first_responses = Histogram(
            "bridge_inbox_first_response_seconds", "Wait for the first staff reply",
            ["team"], buckets=RESPONSE_BUCKETS, registry=r,
        )  # fmt: skip
        self.consents_given = Counter(
            "bridge_consent_given", "Consents given (confirmed)", ["list", "account"], registry=r
        )
        self.consents_withdrawn = Counter(
            "bridge_consent_withdrawn", "Consents withdrawn", ["list", "account"], registry=r
        )
        self.broadcast_recipients = Gauge(
            "bridge_broadcast_recipients",
            "Recipients of each list's latest broadcast by status (sent, failed, skipped, "
            "pending)", ["list", "status"], registry=r,
        )  # fmt: skip
        self.catch_up_rooms = Counter(
            "bridge_catch_up_rooms", "Rooms queued to be read back, by trigger (outage, "
            "restart, start, periodic)", ["trigger"], registry=r,
        )  # fmt: skip
        self.catch_up_events = Counter(
            "bridge_catch_up_events", "Events the homeserver never pushed, found by reading "
            "rooms back: queued, or late (past the delivery deadline; the room was told)",
            ["outcome"], registry=r,
        )  # fmt: skip
        for trigger in ("outage", "restart", "start", "periodic"):
            self.catch_up_rooms.labels(trigger)
        for outcome in ("queued", "late"):
            self.catch_up_events.labels(outcome)
        self.live = LiveCollector(self)
        r.register(self.live)

    # ------------------------------------------------------------------ the core

    def accounts(self, accounts: Iterable[str]) -> None:
        """Start the series of every channel account at 0 (a rate has a start)."""
        for account in accounts:
            for direction in ("in", "out"):
                self.messages.labels(account, direction)
                self.retries.labels(account, direction)
                self.dead_letters.labels(account, direction)
                self.latency.labels(account, direction)

    def bridged(self, account: str, direction: str, accepted_ms: int) -> None:
        """A message went through (``accepted_ms``: when the bridge accepted it)."""
        self.messages.labels(account, direction).inc()
        seconds = max(0.0, self.clock() - accepted_ms / 1000)
        self.latency.labels(account, direction).observe(seconds)

    def failed(self, account: str, direction: str, reason: str) -> None:
        self.failures.labels(account, direction, reason).inc()

    def retried(self, account: str, direction: str, reason: str = "temporary") -> None:
        """An attempt failed and is tried again."""
        self.failed(account, direction, reason)
        self.retries.labels(account, direction).inc()

    def buried(self, queue_key: str, kind: str) -> None:
        """A queue item became a dead letter."""
        account, direction = account_of(queue_key), direction_of(kind)
        self.failed(account, direction, "dead_letter")
        self.dead_letters.labels(account, direction).inc()

    def catch_up_planned(self, trigger: str, rooms: int) -> None:
        self.catch_up_rooms.labels(trigger).inc(rooms)

    def caught_up(self, queued: int, late: int) -> None:
        self.catch_up_events.labels("queued").inc(queued)
        self.catch_up_events.labels("late").inc(late)

    # ------------------------------------------------------------------ features

    def conversations(self, team: str, open_: int, unassigned: int) -> None:
        self.open_conversations.labels(team).set(open_)
        self.unassigned.labels(team).set(unassigned)

    def first_response(self, team: str, seconds: float) -> None:
        self.first_responses.labels(team).observe(max(0.0, seconds))

    def consent(self, list_: str, account: str, step: str) -> None:
        if step == "confirmed":
            self.consents_given.labels(list_, account).inc()
        elif step == "withdrawn":
            self.consents_withdrawn.labels(list_, account).inc()

    def broadcast(self, list_: str, counts: Mapping[str, int]) -> None:
        figures = {
            "sent": sum(counts.get(s, 0) for s in SENT),
            "failed": counts.get("failed", 0),
            "skipped": counts.get("skipped", 0),
            "pending": sum(counts.get(s, 0) for s in OPEN),
        }
        for status, value in figures.items():
            self.broadcast_recipients.labels(list_, status).set(value)

    # ------------------------------------------------------------------ reading

    def scrape(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)

    def uptime(self) -> float:
        return max(0.0, self.clock() - self.started)


class LiveCollector(Collector):
    """What is read from memory at scrape time: the queue, the connectors' states, the
    homeserver's reachability, the version and the uptime. ``queue`` and ``states`` are set
    by the core once it has them (until then: nothing queued, no accounts)."""

    def __init__(self, metrics: BridgeMetrics) -> None:
        self.metrics = metrics
        self.queue: QueueFigures = lambda: (0, None)
        self.states: States = dict

    def collect(self) -> Iterable[Metric]:
        m = self.metrics
        now = m.clock()
        depth, oldest = self.queue()
        yield _gauge("bridge_queue_depth", "Queue items accepted and not finished", depth)
        age = max(0.0, now - oldest) if oldest is not None else 0.0
        yield _gauge("bridge_queue_oldest_age_seconds", "Age of the oldest queued item", age)
        state = GaugeMetricFamily(
            "bridge_connector_state", "1 for the connector's current state",
            labels=["account", "state"],
        )  # fmt: skip
        for account, current in sorted(self.states().items()):
            for kind in StateKind:
                state.add_metric([account, kind.value], float(kind.value == current))
        yield state
        reach = m.reachability
        yield _gauge(
            "bridge_homeserver_reachable", "1 when the homeserver answered the last request",
            float(bool(reach.reachable)),
        )  # fmt: skip
        yield _gauge(
            "bridge_homeserver_last_seen_timestamp_seconds",
            "When the homeserver last answered (0: never)", reach.last_ok or 0.0,
        )  # fmt: skip
        info = GaugeMetricFamily("bridge_build_info", "The bridge's version", labels=["version"])
        info.add_metric([__version__], 1.0)
        yield info
        yield _gauge("bridge_start_time_seconds", "When the bridge started", m.started)
        yield _gauge("bridge_uptime_seconds", "Seconds since the bridge started", m.uptime())


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def metric_names(text: str) -> set[str]:
    """Every series name a scrape declares (from its ``# TYPE`` lines, so a labelled metric
    with no series yet counts too): ``bridge_messages_total``, ``..._bucket``..."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            if kind == "counter":
                name = name.removesuffix("_total")  # the text format declares it with _total
            names.update(name + suffix for suffix in SUFFIXES.get(kind, ("",)))
    return names
