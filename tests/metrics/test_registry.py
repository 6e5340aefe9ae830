"""The bridge's metrics: the counters move where messages go in and out and fail, the queue's
depth and oldest age come from the dispatcher, the connectors' states and the homeserver's
reachability are read at scrape time, and features report through ``FeatureMetrics``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.config import parse
from bridge.core import dispatcher as dispatcher_module
from bridge.core.dispatcher import Dispatcher, GiveUp, RetryLimits
from bridge.core.outbound import OutboundHandler
from bridge.db import Portal, QueueItem
from bridge.metrics.registry import BridgeMetrics, account_of, metric_names
from bridge.seams import PASS, Outgoing, Refuse, Seams, Verdict
from bridge.seams_metrics import FeatureMetrics
from tests.core.outbound_support import RecordingConnector, RecordingNotices
from tests.core.test_dispatcher import wait_until
from tests.test_config import example

from .support import sample

TIMEOUT = 10.0


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_message_each_way_counts_and_its_latency_is_observed() -> None:
    clock = Clock()
    m = BridgeMetrics(clock=clock)
    m.bridged("tg", "in", int((clock.now - 2.0) * 1000))
    m.bridged("tg", "out", int((clock.now - 0.2) * 1000))
    m.bridged("tg", "out", int((clock.now - 0.2) * 1000))
    assert sample(m, "bridge_messages_total", account="tg", direction="in") == 1
    assert sample(m, "bridge_messages_total", account="tg", direction="out") == 2
    latency = "bridge_delivery_latency_seconds"
    assert sample(m, f"{latency}_bucket", account="tg", direction="in", le="1.0") == 0
    assert sample(m, f"{latency}_bucket", account="tg", direction="in", le="2.5") == 1
    assert sample(m, f"{latency}_sum", account="tg", direction="out") == pytest.approx(0.4)


def test_failures_count_by_reason_and_retries_apart() -> None:
    m = BridgeMetrics()
    m.retried("wa", "out")
    m.failed("wa", "out", "permanent")
    m.buried("rm:wa/4915", "outbound")
    m.buried("mx:!room:hs", "matrix")
    failures = "bridge_delivery_failures_total"
    assert sample(m, failures, account="wa", direction="out", reason="temporary") == 1
    assert sample(m, failures, account="wa", direction="out", reason="permanent") == 1
    assert sample(m, failures, account="wa", direction="out", reason="dead_letter") == 1
    assert sample(m, "bridge_retries_total", account="wa", direction="out") == 1
    assert sample(m, "bridge_dead_letters_total", account="wa", direction="out") == 1
    assert sample(m, "bridge_dead_letters_total", account="", direction="out") == 1


def test_the_account_of_a_queue_key() -> None:
    assert account_of("rm:tg-hook/123/456") == "tg-hook"
    assert account_of("rm:mail/#0123abcd") == "mail"
    assert account_of("mx:!room:example.com") == ""


def test_connector_states_queue_and_homeserver_are_read_at_scrape_time() -> None:
    clock = Clock()
    m = BridgeMetrics(clock=clock)
    states = {"tg": "connected", "wa": "starting"}
    m.live.states = lambda: states
    m.live.queue = lambda: (3, clock.now - 42.0)
    m.accounts(["tg", "wa"])
    assert sample(m, "bridge_connector_state", account="tg", state="connected") == 1
    assert sample(m, "bridge_connector_state", account="tg", state="disconnected") == 0
    assert sample(m, "bridge_connector_state", account="wa", state="starting") == 1
    states["tg"] = "disconnected"
    assert sample(m, "bridge_connector_state", account="tg", state="connected") == 0
    assert sample(m, "bridge_connector_state", account="tg", state="disconnected") == 1
    assert sample(m, "bridge_queue_depth") == 3
    assert sample(m, "bridge_queue_oldest_age_seconds") == 42
    assert sample(m, "bridge_homeserver_reachable") == 0
    m.reachability.ok()
    assert sample(m, "bridge_homeserver_reachable") == 1
    assert sample(m, "bridge_homeserver_last_seen_timestamp_seconds") == pytest.approx(
        m.reachability.last_ok
    )
    m.reachability.failed()
    assert sample(m, "bridge_homeserver_reachable") == 0
    # Accounts start at 0, so a rate has a start before the first message.
    assert "bridge_messages_total" in metric_names(m.scrape().decode())
    assert (
        m.registry.get_sample_value("bridge_messages_total", {"account": "wa", "direction": "in"})
        == 0
    )


def test_feature_figures() -> None:
    m = BridgeMetrics()
    assert isinstance(m, FeatureMetrics)
    m.conversations("support", 5, 2)
    m.conversations("support", 4, 1)
    m.first_response("support", 90)
    m.consent("news", "wa", "requested")
    m.consent("news", "wa", "confirmed")
    m.consent("news", "wa", "withdrawn")
    m.broadcast("news", {"sent": 3, "delivered": 2, "failed": 1, "pending": 4, "sending": 1})
    assert sample(m, "bridge_inbox_open_conversations", team="support") == 4
    assert sample(m, "bridge_inbox_unassigned_conversations", team="support") == 1
    assert sample(m, "bridge_inbox_first_response_seconds_count", team="support") == 1
    assert sample(m, "bridge_inbox_first_response_seconds_bucket", team="support", le="60.0") == 0
    assert sample(m, "bridge_inbox_first_response_seconds_bucket", team="support", le="300.0") == 1
    assert sample(m, "bridge_consent_given_total", list="news", account="wa") == 1
    assert sample(m, "bridge_consent_withdrawn_total", list="news", account="wa") == 1
    for status, value in (("sent", 5), ("failed", 1), ("pending", 5), ("skipped", 0)):
        assert sample(m, "bridge_broadcast_recipients", list="news", status=status) == value


def test_two_bridges_in_one_process_count_apart() -> None:
    a, b = BridgeMetrics(), BridgeMetrics()
    a.bridged("tg", "in", 0)
    assert sample(a, "bridge_messages_total", account="tg", direction="in") == 1
    assert sample(b, "bridge_messages_total", account="tg", direction="in") == 0


# ---------------------------------------------------------------------- the queue


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatcher_module, "RETRY_BASE", 0.01)
    monkeypatch.setattr(dispatcher_module, "RETRY_MAX", 0.05)


async def test_the_dispatcher_counts_retries_dead_letters_and_its_queue(database: object) -> None:
    m = BridgeMetrics()
    release = asyncio.Event()
    failures = {"flaky": 1}

    async def handler(item: QueueItem) -> None:
        if item.payload["n"] == "stuck":
            await release.wait()
        elif item.payload["n"] == "flaky" and failures["flaky"]:
            failures["flaky"] -= 1
            raise RuntimeError("the homeserver is away")
        elif item.payload["n"] == "broken":
            raise GiveUp("unreadable")

    d = Dispatcher(handler, limits=RetryLimits(100, 900), metrics=m)
    m.live.queue = d.figures
    try:
        assert d.figures() == (0, None)
        stuck = await QueueItem.enqueue("rm:tg/1", "remote", {"n": "stuck"})
        later = await QueueItem.enqueue("rm:tg/1", "remote", {"n": "later"})
        d.submit(stuck)
        d.submit(later)
        depth, oldest = d.figures()
        assert depth == 2 and oldest == stuck.created_at / 1000
        for n in ("flaky", "broken"):
            d.submit(await QueueItem.enqueue(f"rm:wa/{n}", "outbound", {"n": n}))
        await wait_until(lambda: _true(d.figures()[0] == 2))  # the flaky one and the broken
        assert sample(m, "bridge_queue_depth") == 2
        assert sample(m, "bridge_retries_total", account="wa", direction="out") == 1
        assert sample(m, "bridge_dead_letters_total", account="wa", direction="out") == 1
        assert sample(m, "bridge_retries_total", account="tg", direction="in") == 0
        release.set()
        await asyncio.wait_for(d.wait_idle(), TIMEOUT)
        assert d.figures() == (0, None)
        assert sample(m, "bridge_queue_oldest_age_seconds") == 0
    finally:
        await d.stop()


async def test_resumed_items_count_in_the_queue_with_their_age(database: object) -> None:
    old = await QueueItem.enqueue("rm:tg/1", "remote", {"n": 1})
    await QueueItem.enqueue("rm:tg/2", "remote", {"n": 2})
    release = asyncio.Event()

    async def handler(item: QueueItem) -> None:
        await release.wait()

    d = Dispatcher(handler)
    try:
        assert await d.load_pending() == 2
        assert d.figures() == (2, old.created_at / 1000)
        release.set()
        await asyncio.wait_for(d.wait_idle(), TIMEOUT)
        assert d.figures() == (0, None)
    finally:
        await d.stop()


async def _true(value: bool) -> bool:
    return value


# ---------------------------------------------------------------------- messages out


class _NoOffers:
    async def check(self, outgoing: Outgoing) -> Verdict:
        return Refuse("no consent") if "offer" in outgoing.text else PASS


async def test_messages_out_refusals_and_permanent_failures_count(database: object) -> None:
    await Portal("acc", "chat", "!portal:example.com", created_at=0).insert()
    config = parse(example())
    connector, notices, m = RecordingConnector(), RecordingNotices(), BridgeMetrics()
    seams = Seams(config, None)  # type: ignore[arg-type]
    seams.add_outbound_gate(_NoOffers())
    connectors: Any = {"acc": connector}
    handler = OutboundHandler(config, None, connectors, notices, seams, m)  # type: ignore[arg-type]

    async def send(text: str) -> None:
        payload = {"account": "acc", "chat": "chat", "text": text, "by": "x", "reason": "x"}
        await handler.handle(await QueueItem.enqueue("rm:acc/chat", "outbound", payload))

    await send("Welcome!")
    await send("A special offer")
    connector.refuse = True
    await send("Welcome again")
    failures = "bridge_delivery_failures_total"
    assert sample(m, "bridge_messages_total", account="acc", direction="out") == 1
    assert sample(m, failures, account="acc", direction="out", reason="refused") == 1
    assert sample(m, failures, account="acc", direction="out", reason="permanent") == 1
    assert sample(m, "bridge_delivery_latency_seconds_count", account="acc", direction="out") == 1
