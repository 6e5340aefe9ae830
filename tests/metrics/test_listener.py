"""The metrics listener (``/metrics``, ``/status``), the homeserver's reachability as the
sender reports it, and the ``metrics:`` config section."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from mautrix.errors import make_request_error
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from bridge.config import ConfigError, parse
from bridge.core.sender import MatrixSender
from bridge.metrics.config import MetricsConfig
from bridge.metrics.listener import MetricsListener
from bridge.metrics.reachability import Reachability
from bridge.metrics.registry import BridgeMetrics
from tests.infra.ports import LOOPBACK, free_port
from tests.test_config import error_of, example

ACCOUNTS = {"tg": {"type": "telegram", "title": "Telegram", "state": "connected", "message": ""}}


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, BridgeMetrics]]:
    metrics = BridgeMetrics()
    metrics.live.states = lambda: {"tg": "connected"}
    listener = MetricsListener(metrics, lambda: ACCOUNTS)
    port = free_port()
    await listener.start(LOOPBACK, port)
    try:
        yield f"http://{LOOPBACK}:{port}", metrics
    finally:
        await listener.stop()


async def test_metrics_are_served_in_the_prometheus_text_format(
    served: tuple[str, BridgeMetrics],
) -> None:
    url, metrics = served
    metrics.bridged("tg", "in", 0)
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = await r.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    [message] = families["bridge_messages"].samples
    assert message.labels == {"account": "tg", "direction": "in"} and message.value == 1
    states = {s.labels["state"]: s.value for s in families["bridge_connector_state"].samples}
    assert states["connected"] == 1 and sum(states.values()) == 1


async def test_status_shows_the_connectors_and_the_homeserver(
    served: tuple[str, BridgeMetrics],
) -> None:
    url, metrics = served
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/status") as r:
            first = await r.json()
        metrics.reachability.ok()
        async with session.get(f"{url}/status") as r:
            second = await r.json()
    assert first["channels"] == ACCOUNTS
    assert first["homeserver"] == {"reachable": None, "last_seen": None}
    assert second["homeserver"]["reachable"] is True
    assert second["homeserver"]["last_seen"] == metrics.reachability.last_ok
    assert first["version"] and first["uptime_seconds"] >= 0


async def test_reachability_flips_and_can_be_awaited() -> None:
    reach = Reachability(clock=lambda: 7.0)
    seen: list[bool] = []
    stop = reach.watch(seen.append)
    back = asyncio.ensure_future(reach.wait_ok())
    reach.failed()
    reach.failed()  # no transition
    await asyncio.sleep(0)
    assert not back.done()
    reach.ok()
    await asyncio.wait_for(back, 1)
    reach.ok()
    stop()
    reach.failed()
    assert seen == [False, True] and reach.last_ok == 7.0 and reach.reachable is False


class _Api:
    """An appservice API whose bot's requests answer as told."""

    def __init__(self) -> None:
        self.answer: Exception | None = None

    def bot_intent(self) -> Any:
        api = self

        class Bot:
            async def versions(self) -> None:
                if api.answer is not None:
                    raise api.answer

            async def send_message_event(self, *args: Any, **kwargs: Any) -> str:
                if api.answer is not None:
                    raise api.answer
                return "$event"

        return Bot()


@pytest.mark.parametrize(
    ("answer", "reachable"),
    [
        (None, True),
        (make_request_error(403, "", "M_FORBIDDEN", "not in the room"), True),
        (make_request_error(502, "Bad gateway", None, None), False),
        (aiohttp.ClientConnectionError("refused"), False),
    ],
)
async def test_the_sender_tells_the_reachability(
    answer: Exception | None, reachable: bool
) -> None:
    api = _Api()
    sender = MatrixSender(api, "@bot:example.com")  # type: ignore[arg-type]
    reach = sender.metrics.reachability
    api.answer = answer
    for request in (sender.versions(), sender.send("!room:example.com", {"body": "hi"})):
        reach.reachable = None
        try:
            await request
        except Exception:
            assert answer is not None
        assert reach.reachable is reachable


def _listen(value: Any, extra: dict[str, Any] | None = None) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        data["metrics"] = {"listen": value, **(extra or {})}

    return mutate


def test_the_metrics_listener_is_off_by_default_and_parsed_when_set() -> None:
    assert parse(example()).metrics is None
    assert parse(example(lambda d: d.pop("metrics"))).metrics is None
    config = parse(example(_listen("127.0.0.1:9350", {"refresh": 5})))
    assert config.metrics == MetricsConfig("127.0.0.1", 9350, 5.0)
    assert parse(example(_listen("[::1]:9350"))).metrics == MetricsConfig("::1", 9350)


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (_listen(9350), "metrics.listen"),
        (_listen("localhost"), "metrics.listen"),
        (_listen(":9350"), "metrics.listen"),
        (_listen("127.0.0.1:99999"), "metrics.listen"),
        (_listen("127.0.0.1:29340"), "metrics.listen"),
        (_listen("127.0.0.1:9350", {"refresh": 0}), "metrics.refresh"),
        (lambda d: d.update(metrics=[]), "metrics"),
    ],
)
def test_a_bad_metrics_section_names_its_key(mutate: Any, key: str) -> None:
    error = error_of(mutate)
    assert isinstance(error, ConfigError) and error.key == key
