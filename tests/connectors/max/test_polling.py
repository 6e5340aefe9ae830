"""Long polling: ``GET /updates`` with the marker, saved with the account's data only after
its batch was recorded; the webhook subscription removed first (MAX polls nothing while one
is set)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.connectors.max import MaxConnector
from bridge.events import RemoteMessage
from tests.contract.harness import FakeHost

from .harness import MaxHarness
from .support import ALICE, BOB


@pytest.fixture
async def poller(harness: MaxHarness, host: FakeHost) -> AsyncIterator[MaxConnector]:
    connector = harness.make_connector(host, mode="polling", webhook_url=None)
    await connector.start()
    try:
        yield connector
    finally:
        await connector.stop()


def markers(harness: MaxHarness) -> list[str | None]:
    return [query.get("marker") for _, path, query in harness.sim.calls if path == "/updates"]


async def test_polled_updates_recorded_and_marker_saved(
    harness: MaxHarness, poller: MaxConnector, host: FakeHost
) -> None:
    sim = harness.sim
    for text in ("one", "two"):
        await sim.deliver(sim.customer_message(ALICE, "Anna", text))
    await sim.wait_polled()
    assert [e.text for e in host.events if isinstance(e, RemoteMessage)] == ["one", "two"]
    assert host.data["marker"] == sim.acknowledged == 3
    assert host.state is not None and host.state.message.endswith("polling")


async def test_failed_record_handles_the_batch_again(
    harness: MaxHarness, poller: MaxConnector, host: FakeHost
) -> None:
    sim = harness.sim
    await sim.wait_for(lambda: sim.polls >= 1)
    host.fail_next_events(1)
    await sim.deliver(sim.customer_message(ALICE, "Anna", "kept"))
    await host.wait_for_events(1)
    assert [e.text for e in host.events if isinstance(e, RemoteMessage)] == ["kept"]
    await sim.wait_polled()
    # The batch was handled again after the failure, and only then its marker saved.
    assert host.data["marker"] == 2
    assert len(markers(harness)) == 2, "the failed batch was not fetched again"


async def test_restart_continues_from_the_saved_marker(
    harness: MaxHarness, host: FakeHost
) -> None:
    sim = harness.sim
    first = harness.make_connector(host, mode="polling", webhook_url=None)
    await first.start()
    await sim.deliver(sim.customer_message(ALICE, "Anna", "before"))
    await sim.wait_polled()
    await first.stop()
    sim.acknowledged = 0  # MAX's own memory of what was fetched is not what the bridge trusts
    second = MaxConnector(first.account_id, first.config, host)
    await second.start()
    try:
        await sim.deliver(sim.customer_message(BOB, "Boris", "after"))
        await sim.wait_polled()
    finally:
        await second.stop()
    assert [e.text for e in host.events if isinstance(e, RemoteMessage)] == ["before", "after"]
    assert host.duplicates == []
    assert markers(harness)[-1] == "3"


async def test_polling_removes_the_bridges_subscription(
    harness: MaxHarness, host: FakeHost
) -> None:
    sim = harness.sim
    url = f"{host.base_url}/connectors/{harness.account_id}/webhook"
    sim.subscription = {"url": url, "secret": None, "update_types": None}
    connector = harness.make_connector(host, mode="polling", webhook_url=host.base_url)
    await connector.start()
    try:
        assert sim.subscription is None
        await sim.deliver(sim.customer_message(ALICE, "Anna", "polled"))
        await host.wait_for_events(1)
    finally:
        await connector.stop()
