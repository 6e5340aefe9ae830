"""The WhatsApp connector's webhook against the local Cloud API simulator and a ``FakeHost`` (no
Synapse): lifecycle, verification, signatures, body limits, host failures, other numbers and
reordering."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from bridge.connector import StateKind, TemplateHandler
from bridge.connectors.whatsapp import WhatsAppConnector
from bridge.connectors.whatsapp.handle_remote import MAX_BODY
from tests.contract.harness import FakeHost

from . import connector_support
from . import payloads as wa
from .connector_support import ALICE, BOB
from .harness import WhatsAppHarness
from .simulator import WhatsAppSimulator

# The fixtures shared by these tests (see connector_support).
harness = connector_support.harness
sim = connector_support.sim


# --------------------------------------------------------------------------- lifecycle


async def test_start_adds_routes_and_connects(
    harness: WhatsAppHarness, host: FakeHost, connector: WhatsAppConnector
) -> None:
    assert set(host.routes) == {
        ("GET", f"/connectors/{harness.account_id}/webhook"),
        ("POST", f"/connectors/{harness.account_id}/webhook"),
    }
    assert connector.state.kind == StateKind.CONNECTED
    assert isinstance(connector, TemplateHandler)


async def test_after_stop_deliveries_are_refused(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost
) -> None:
    connector = harness.make_connector(host)
    await connector.start()
    await connector.stop()
    assert host.state is not None and host.state.kind == StateKind.STOPPED
    delivery = await sim.receive(wa.text_message(ALICE, "anyone there?"), max_attempts=1)
    assert delivery.statuses == [503]
    assert host.events == []


async def test_stop_answers_a_held_delivery(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost
) -> None:
    """A webhook held in the reorder window when the connector stops gets an answer (Meta
    retries a non-2xx one later); it is not left hanging until the listener shuts down."""
    connector = harness.make_connector(host, reorder_window=1.0)
    await connector.start()
    body = sim._serialize(sim.messages_payload(wa.text_message(ALICE, "held back")))
    post = asyncio.create_task(harness.post_raw(body, timeout=10))
    await asyncio.sleep(0.2)
    await connector.stop()
    try:
        async with asyncio.timeout(2):
            status, _ = await asyncio.shield(post)
    except TimeoutError:
        pytest.fail("the held webhook got no answer after stop()")
    finally:
        if not post.done():
            post.cancel()
    assert status == 200 if host.events else status >= 500


# --------------------------------------------------------------------------- verification


async def test_verification_echoes_the_challenge(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, connector: WhatsAppConnector
) -> None:
    assert await sim.verify_webhook(challenge="1158201444") == (200, "1158201444")
    assert harness.session is not None
    params = {
        "hub.mode": "subscribe",
        "hub.challenge": "8472",
        "hub.verify_token": sim.verify_token,
    }
    async with harness.session.get(harness.webhook_url(), params=params) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        assert await resp.text() == "8472"


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong-token"},
        {"hub.mode": "subscribe", "hub.verify_token": ""},
        {"hub.mode": "subscribe"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "connector-test-verify-token"},
        {"hub.verify_token": "connector-test-verify-token"},
        {"hub.mode": "subscribe", "hub.verify_token": "connector-test-verify-token-and-more"},
        {"hub.mode": "subscribe", "hub.verify_token": "connector-test-verify-tokeñ"},
    ],
    ids=["wrong", "empty", "missing", "unsubscribe", "no-mode", "longer", "non-ascii"],
)
async def test_verification_refused(
    harness: WhatsAppHarness,
    sim: WhatsAppSimulator,
    host: FakeHost,
    connector: WhatsAppConnector,
    query: dict[str, str],
) -> None:
    assert harness.session is not None
    async with harness.session.get(
        harness.webhook_url(), params={**query, "hub.challenge": "31337"}
    ) as resp:
        assert resp.status == 403
        assert "31337" not in await resp.text()
    status, body = await sim.verify_webhook(token="not-the-token", challenge="4242")
    assert status == 403 and "4242" not in body
    assert host.events == []


# --------------------------------------------------------------------------- signed POSTs


@pytest.mark.parametrize("how", ["bad_signature", "no_signature"])
async def test_unsigned_or_badly_signed_post_is_401(
    sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector, how: str
) -> None:
    payload = sim.messages_payload(wa.text_message(ALICE, "let me in"))
    delivery = await sim.send_webhook(payload, max_attempts=1, **{how: True})
    assert delivery.statuses == [401]
    assert host.events == [] and host.duplicates == []


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "sha256=",
        "sha256=deadbeef",
        "sha1=0123456789abcdef0123456789abcdef01234567",
        "SHA256=<valid>",
        "<valid-of-other-body>",
        "<valid-hex-uppercase>",
    ],
)
async def test_wrong_signature_values_are_401(
    harness: WhatsAppHarness,
    sim: WhatsAppSimulator,
    host: FakeHost,
    connector: WhatsAppConnector,
    signature: str,
) -> None:
    body = sim._serialize(sim.messages_payload(wa.text_message(ALICE, "signed?")))
    valid = wa.signature(body, sim.app_secret)
    value = {
        "SHA256=<valid>": "SHA256=" + valid.removeprefix("sha256="),
        "<valid-of-other-body>": wa.signature(body + b" ", sim.app_secret),
        "<valid-hex-uppercase>": "sha256=" + valid.removeprefix("sha256=").upper(),
    }.get(signature, signature)
    status, _ = await harness.post_raw(body, signature=value)
    assert status == 401
    assert host.events == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"not json at all",
        b"\xff\xfe\x00garbage",
        b"[]",
        b"null",
        b'"entry"',
        b'{"entry": 5}',
        b'{"entry": [5]}',
        b'{"entry": [{"changes": {"field": "messages"}}]}',
        b'{"entry": [{"changes": [{"field": "messages", "value": []}]}]}',
        b'{"entry": [{"changes": [{"field": "messages", "value": {"messages": {}}}]}]}',
        b'{"entry": [{"changes": [{"field": "messages", "value": {"messages": [{"id": "x"}]}}]}]}',
        b'{"entry": [{"changes": [{"field": "messages", "value": {"statuses": [{}]}}]}]}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=lambda b: repr(b[:30]),
)
async def test_malformed_payload_is_400(
    harness: WhatsAppHarness, host: FakeHost, connector: WhatsAppConnector, body: bytes
) -> None:
    status, answer = await harness.post_raw(body)
    assert status == 400, answer
    assert host.events == []


async def test_one_malformed_message_refuses_the_whole_delivery(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    good = wa.text_message(ALICE, "fine")
    bad = {**wa.text_message(BOB, "broken"), "text": "not an object"}
    status, _ = await harness.post_raw(sim._serialize(sim.messages_payload(good, bad)))
    assert status == 400
    assert host.events == []


async def test_body_over_3_mb_is_413(
    harness: WhatsAppHarness, host: FakeHost, connector: WhatsAppConnector
) -> None:
    body = b'{"entry": [], "pad": "' + b"x" * MAX_BODY + b'"}'
    status, _ = await harness.post_raw(body)
    assert status == 413
    assert host.events == []


async def test_chunked_body_over_3_mb_is_413(
    harness: WhatsAppHarness, host: FakeHost, connector: WhatsAppConnector
) -> None:
    """Without a Content-Length the limit is enforced by counting what arrives."""
    assert harness.session is not None
    body = b'{"entry": [], "pad": "' + b"x" * MAX_BODY + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    headers = {"X-Hub-Signature-256": wa.signature(body, harness.sim.app_secret)}
    async with harness.session.post(harness.webhook_url(), data=chunks(), headers=headers) as resp:
        assert resp.status == 413
    assert host.events == []


async def test_large_valid_delivery_is_read_whole(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    """A signed body well under 3 MB (many long messages) is verified over all of its bytes
    and recorded, however the network splits it."""
    numbers = [f"4917{n:08d}" for n in range(250)]
    messages = [wa.text_message(number, "long text " * 400) for number in numbers]
    body = sim._serialize(sim.messages_payload(*messages))
    assert 512 * 1024 < len(body) < MAX_BODY
    status, answer = await harness.post_raw(body)
    assert status == 200, answer
    assert len(host.events) == 250


async def test_host_failure_is_503_and_the_retry_is_recorded_once(
    sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    host.fail_next_events(1)
    first, second = wa.text_message(ALICE, "one"), wa.text_message(ALICE, "two")
    delivery = await sim.receive(first, second)
    assert delivery.statuses == [503, 200]
    assert [e.text for e in host.events] == ["one", "two"]
    assert host.duplicates == []


async def test_duplicate_delivery_is_recorded_once(
    sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    delivery = await sim.receive(wa.text_message(ALICE, "only once"), duplicate=True)
    assert delivery.statuses == [200, 200]
    assert [e.text for e in host.events] == ["only once"]
    assert len(host.duplicates) == 1


async def test_other_numbers_and_fields_are_ignored(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    """One Meta app may serve several numbers: what is for another phone_number_id is
    answered (so Meta stops sending it) and dropped; so are other webhook fields."""
    other = dict(waba_id=sim.waba_id, phone_number_id="100000000000001", display_phone_number="1")
    for_other = wa.envelope(
        **other,
        messages=[wa.text_message(ALICE, "not for you")],
        statuses=[wa.status_update("wamid.HBgLother", "read", ALICE)],
    )
    assert (await sim.send_webhook(for_other)).statuses == [200]
    mixed = sim.messages_payload(wa.text_message(BOB, "for you"))
    mixed["entry"].append(for_other["entry"][0])
    mixed["entry"][0]["changes"].append(
        {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}
    )
    assert (await sim.send_webhook(mixed)).statuses == [200]
    assert [(e.chat.id, e.text) for e in host.events] == [(BOB, "for you")]


async def test_statuses_for_another_number_are_ignored(
    sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    payload = wa.envelope(
        waba_id=sim.waba_id,
        phone_number_id="100000000000001",
        display_phone_number="15550009999",
        statuses=[
            wa.status_update("wamid.HBgLfirst", "delivered", ALICE),
            wa.status_update("wamid.HBgLfirst", "read", ALICE),
            wa.status_update("wamid.HBgLsecond", "failed", ALICE, errors=[wa.webhook_error(1)]),
        ],
    )
    assert (await sim.send_webhook(payload)).statuses == [200]
    assert host.events == []


async def test_shuffled_concurrent_deliveries_are_recorded_in_timestamp_order(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost
) -> None:
    connector = harness.make_connector(host, reorder_window=0.5)
    await connector.start()
    try:
        base = time.time() - 60
        texts = [f"part {n}" for n in range(8)]
        payloads = [
            sim.messages_payload(wa.text_message(ALICE, text, timestamp=base + n))
            for n, text in enumerate(texts)
        ]
        deliveries = await sim.deliver_shuffled(payloads, seed=4, concurrent=True)
        arrival = [d.payload["entry"][0]["changes"][0]["value"]["messages"][0] for d in deliveries]
        assert [m["text"]["body"] for m in arrival] != texts, "the seed did not shuffle"
        assert all(d.statuses == [200] for d in deliveries)
        assert [e.text for e in host.events] == texts
        assert [e.timestamp for e in host.events] == [float(int(base + n)) for n in range(8)]
    finally:
        await connector.stop()
