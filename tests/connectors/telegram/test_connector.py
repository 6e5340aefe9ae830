"""The Telegram connector receiving, against the local Bot API simulator and a ``FakeHost`` (no
Synapse): polling offsets, the webhook endpoint, and what is filtered."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bridge.connector import StateKind
from bridge.connectors.telegram import TelegramConnector
from tests.contract.harness import FakeHost

from . import connector_support
from . import updates as tg
from .connector_support import BOB, business_updates, calls, chat, text_update, texts
from .harness import WEBHOOK_SECRET, TelegramHarness
from .simulator import SECRET_HEADER, MiB, TelegramSimulator

# The fixtures shared by these tests (see connector_support).
harness = connector_support.harness
sim = connector_support.sim
connector = connector_support.connector
hook = connector_support.hook


# --------------------------------------------------------------------------- polling


async def test_polling_offset_survives_a_restart(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost
) -> None:
    """The offset is saved with the host: a new connector on the same data fetches exactly
    the updates that came while it was away, none twice and none skipped."""
    before = [sim.push_update(text_update("one")), sim.push_update(text_update("two"))]
    first = harness.make_connector(host)
    await first.start()
    try:
        await host.wait_for_events(2)
        await sim.wait_for_confirmed(before[-1]["update_id"])
    finally:
        await first.stop()
    assert host.data["offset"] == before[-1]["update_id"] + 1

    during = [sim.push_update(text_update("three")), sim.push_update(text_update("four"))]
    seen = len(sim.requests)
    second = harness.make_connector(host)
    await second.start()
    try:
        await host.wait_for_events(4)
        await sim.wait_for_confirmed(during[-1]["update_id"])
    finally:
        await second.stop()
    assert texts(host) == ["one", "two", "three", "four"]
    assert host.duplicates == []
    assert host.data["offset"] == during[-1]["update_id"] + 1
    first_poll = calls(sim, "getUpdates", seen)[0]
    assert int(first_poll.params["offset"]) == before[-1]["update_id"] + 1


async def test_offset_saved_only_after_the_batch_is_recorded(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost
) -> None:
    """A crash between recording and saving the offset fetches the batch again; the dedup
    keys keep it from doubling."""
    saves = 0

    class CrashingHost(FakeHost):
        async def save_data(self, data: dict[str, Any]) -> None:
            nonlocal saves
            saves += 1
            if saves == 1:
                raise RuntimeError("disk full")
            await super().save_data(data)

    async with CrashingHost(harness.account_id) as crashing:
        pushed = [sim.push_update(text_update("a")), sim.push_update(text_update("b"))]
        connector = harness.make_connector(crashing)
        await connector.start()
        try:
            await sim.wait_for_confirmed(pushed[-1]["update_id"], timeout=10)
        finally:
            await connector.stop()
        assert texts(crashing) == ["a", "b"]
        assert len(crashing.duplicates) == 2
        assert crashing.data["offset"] == pushed[-1]["update_id"] + 1


async def test_host_failure_while_polling_is_retried_not_skipped(
    harness: TelegramHarness,
    sim: TelegramSimulator,
    host: FakeHost,
    connector: TelegramConnector,
) -> None:
    host.fail_next_events(1)
    pushed = sim.push_update(text_update("kept"))
    await sim.wait_for_confirmed(pushed["update_id"], timeout=10)
    assert texts(host) == ["kept"]
    assert host.duplicates == []


async def test_polling_state_and_allowed_updates(
    sim: TelegramSimulator, host: FakeHost, connector: TelegramConnector
) -> None:
    await sim.wait_for(lambda: connector.state.kind == StateKind.CONNECTED)
    assert "@contract_bot" in connector.state.message
    assert sim.webhook_url is None
    allowed = sim.allowed_updates or []
    assert {"message", "edited_message", "message_reaction", "business_message"} <= set(allowed)


# --------------------------------------------------------------------------- webhook


async def test_webhook_start_registers_route_and_sets_webhook(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost, hook: TelegramConnector
) -> None:
    path = f"/connectors/{harness.account_id}/webhook"
    assert ("POST", path) in host.routes
    assert sim.webhook_url == host.base_url + path
    assert sim.webhook_secret == WEBHOOK_SECRET
    assert "message_reaction" in (sim.allowed_updates or [])
    (call,) = calls(sim, "setWebhook")
    assert call.params["url"] == host.base_url + path
    assert call.params["secret_token"] == WEBHOOK_SECRET
    assert calls(sim, "getUpdates") == []
    await sim.wait_for(lambda: hook.state.kind == StateKind.CONNECTED)


async def test_webhook_update_is_recorded(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost, hook: TelegramConnector
) -> None:
    delivered = await harness.deliver(text_update("via webhook"))
    (delivery,) = sim.webhook_deliveries
    assert delivery.update_id == delivered["update_id"]
    assert delivery.status == 200
    assert delivery.secret == WEBHOOK_SECRET
    assert texts(host) == ["via webhook"]


async def test_webhook_secret_is_generated_and_kept(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost
) -> None:
    """Without a configured secret the connector makes a long one, keeps it with the account's
    data and sets the same one after a restart (a new host process on the same data); updates
    carrying it are accepted, others refused."""
    seen: list[str] = []
    for restart in range(2):
        async with FakeHost(harness.account_id) as process:
            process.data = host.data
            url = process.base_url
            instance = harness.make_connector(process, mode="webhook", webhook_url=url)
            assert instance.config.webhook_secret is None
            await instance.start()
            try:
                sets = restart + 1
                await sim.wait_for(lambda: len(calls(sim, "setWebhook")) == sets)  # noqa: B023
                secret = sim.webhook_secret
                assert secret is not None and re.fullmatch(r"[A-Za-z0-9_-]{32,256}", secret)
                assert process.data["webhook_secret"] == secret
                seen.append(secret)
                await harness.deliver(text_update(f"after start {restart}"))
                assert sim.webhook_deliveries[-1].status == 200
                assert texts(process) == [f"after start {restart}"]
                forged = await sim.post_webhook(text_update("forged"), secret=None)
                assert forged.status == 401
            finally:
                await instance.stop()
            host.data = process.data
    assert seen[0] == seen[1]


@pytest.mark.parametrize(
    "secret",
    [None, "", "wrong", WEBHOOK_SECRET + "x", WEBHOOK_SECRET[:-1], WEBHOOK_SECRET.upper()],
    ids=["missing", "empty", "wrong", "longer", "shorter", "case"],
)
async def test_webhook_refuses_a_wrong_secret(
    sim: TelegramSimulator, host: FakeHost, hook: TelegramConnector, secret: str | None
) -> None:
    delivery = await sim.post_webhook(text_update("forged"), secret=secret)
    assert delivery.status == 401
    assert host.events == [] and host.duplicates == []


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"\xff\xfe\x00",
        b"[]",
        b'"update"',
        b"null",
        b"42",
        b'{"message": {"text": "no update_id"}}',
        b'{"update_id": "seven"}',
        b'{"update_id": 1, "message": {"message_id": 1, "text": "no chat or date"}}',
    ],
    ids=[
        "broken",
        "empty",
        "not-utf8",
        "list",
        "string",
        "null",
        "number",
        "no-update-id",
        "bad-update-id",
        "bad-message",
    ],
)
async def test_webhook_refuses_what_is_not_an_update(
    host: FakeHost, hook: TelegramConnector, body: bytes
) -> None:
    headers = {SECRET_HEADER: WEBHOOK_SECRET, "Content-Type": "application/json"}
    async with host.http.post(host.route_url("/webhook"), data=body, headers=headers) as resp:
        assert resp.status == 400, await resp.text()
    assert host.events == []


async def test_webhook_refuses_an_oversized_body(host: FakeHost, hook: TelegramConnector) -> None:
    headers = {SECRET_HEADER: WEBHOOK_SECRET, "Content-Type": "application/json"}
    big = b'{"update_id": 1, "padding": "' + b"x" * MiB + b'"}'
    url = host.route_url("/webhook")
    async with host.http.post(url, data=io.BytesIO(big), headers=headers) as resp:
        assert resp.status == 413

    async with host.http.post(url, data=pieces(big), headers=headers) as resp:
        assert resp.status == 413  # no Content-Length: only counting what is read can stop it
    assert host.events == []


async def pieces(body: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """``body`` sent chunked (no Content-Length), a piece at a time as a slow network would."""
    for start in range(0, len(body), size):
        yield body[start : start + size]
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
async def test_webhook_update_arriving_in_pieces_is_recorded(
    sim: TelegramSimulator, host: FakeHost, hook: TelegramConnector, chunked: bool
) -> None:
    """A long message with many entities makes an update of some 100 KB; however the body
    arrives, all of it is read before it is parsed."""
    text = "word " * 800
    entities = [tg.entity("bold", n * 5, 4) for n in range(800)]
    update = {"update_id": 77, **text_update(text.strip(), entities=entities)}
    body = json.dumps(update, indent=4).encode()
    assert 64 * 1024 < len(body) < MiB
    headers = {SECRET_HEADER: WEBHOOK_SECRET, "Content-Type": "application/json"}
    url = host.route_url("/webhook")
    data: Any = pieces(body, 8 * 1024) if chunked else io.BytesIO(body)
    async with host.http.post(url, data=data, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
    assert texts(host) == [text.strip()]


async def test_webhook_host_failure_answers_503_and_the_retry_is_recorded_once(
    sim: TelegramSimulator, host: FakeHost, hook: TelegramConnector
) -> None:
    host.fail_next_events(1)
    pushed = sim.push_update(text_update("after a retry"))
    await sim.wait_for_confirmed(pushed["update_id"])
    statuses = [d.status for d in sim.webhook_deliveries if d.update_id == pushed["update_id"]]
    assert statuses == [503, 200]
    assert texts(host) == ["after a retry"]
    assert host.duplicates == []


async def test_webhook_repeat_delivery_is_recorded_once(
    sim: TelegramSimulator, host: FakeHost, hook: TelegramConnector
) -> None:
    pushed = sim.deliver_webhook_twice(text_update("twice"))
    await sim.wait_for_confirmed(pushed["update_id"])
    assert [d.status for d in sim.webhook_deliveries] == [200, 200]
    assert texts(host) == ["twice"]
    assert len(host.duplicates) == 1


# --------------------------------------------------------------------------- filtering


async def test_updates_from_the_bot_itself_are_ignored(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost, connector: TelegramConnector
) -> None:
    own = tg.text_message(chat(), sim.bot_user, "the bot's own words")
    await harness.deliver(tg.message_update(own))
    await harness.deliver(tg.edited_message_update(tg.edited(own, text="edited by the bot")))
    reaction = tg.message_reaction(chat(), own["message_id"], sim.bot_user, new=["👍"])
    await harness.deliver(tg.message_reaction_update(reaction))
    await harness.deliver(text_update("a customer's words"))
    assert texts(host) == ["a customer's words"]
    assert len(host.events) == 1


async def test_business_updates_ignored_when_business_is_off(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost, connector: TelegramConnector
) -> None:
    for update in business_updates(sim):
        await harness.deliver(update)
    await harness.deliver(text_update("plain"))
    assert texts(host) == ["plain"]
    assert len(host.events) == 1


async def test_business_updates_bridged_when_business_is_on(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost
) -> None:
    connector = harness.make_connector(host, business=True)
    await connector.start()
    try:
        for update in business_updates(sim):
            await harness.deliver(update)
    finally:
        await connector.stop()
    kinds = [event.kind for event in host.events]
    assert kinds == ["message", "edit", "delete"]
    assert {event.chat.id for event in host.events} == {f"b:bc-1:{BOB}"}


async def test_stop_closes_the_session(harness: TelegramHarness, host: FakeHost) -> None:
    connector = harness.make_connector(host)
    await connector.start()
    await harness.sim.wait_for_consumer()
    await asyncio.wait_for(connector.stop(), timeout=5)
    assert connector.state.kind == StateKind.STOPPED
    session = connector.client.bot.session
    inner: aiohttp.ClientSession | None = getattr(session, "_session", None)
    assert inner is None or inner.closed
