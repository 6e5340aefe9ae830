"""The WhatsApp connector against the local Cloud API simulator and a ``FakeHost`` (no Synapse):
the webhook (verification, signatures, body limits, host failures, other numbers, reordering),
every inbound message kind and status, media downloads, and everything sent from Matrix as the
Graph API sees it (the 24-hour window, error codes, media limits, templates, the pair limiter)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from bridge.connector import (
    PermanentDeliveryError,
    StateKind,
    Template,
    TemplateHandler,
    TemporaryDeliveryError,
)
from bridge.connectors.whatsapp import WhatsAppConnector
from bridge.connectors.whatsapp.capabilities import UPLOAD_LIMITS
from bridge.connectors.whatsapp.client import MAX_ANSWER, PairLimiter
from bridge.connectors.whatsapp.client import _error as graph_error
from bridge.connectors.whatsapp.handle_remote import MAX_BODY, MEDIA_PREFIX
from bridge.events import (
    MatrixMedia,
    MatrixMessage,
    MatrixReaction,
    MatrixReactionRemove,
    MatrixReadReceipt,
    MessageRef,
    RemoteAttachment,
    RemoteDeliveryFailure,
    RemoteDeliveryReceipt,
    RemoteMessage,
    RemoteReaction,
    RemoteReactionRemove,
    RemoteReadReceipt,
)
from bridge.types import MessageID, PortalKey, RemoteChatID, RemoteUserID
from tests.connectors.media_support import downloaded, streamed_media

from ..conftest import running
from . import payloads as wa
from .harness import FakeHost, WhatsAppHarness
from .simulator import MiB, WebhookDelivery, WhatsAppSimulator

ALICE = "491701234567"
BOB = "491709876543"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4
HOUR = 3600.0
_event_ids = itertools.count(1)


# --------------------------------------------------------------------------- fixtures


class MediaServingSimulator(WhatsAppSimulator):
    """Meta with a media server that can misbehave: ``GET /{media-id}`` may leave out the
    checksum (``sha256="omit"``) or give one of other bytes (``sha256="wrong"``); the media URL
    may send bytes without end (``serve="endless"``, chunked) or announce a length far over any
    limit (``serve="oversized"``)."""

    sha256 = "keep"
    serve = "whole"
    padding = 0
    """Characters of filler in the ``GET /{media-id}`` answer."""

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if self.serve == "whole":
            return await super()._download(request)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        if self.serve == "oversized":
            response.content_length = 1 << 40
        await response.prepare(request)
        chunk = b"\0" * 65536
        with contextlib.suppress(ConnectionError):
            while True:  # until the client hangs up
                await response.write(chunk)
        return response

    async def _get_node(self, request: web.Request) -> dict[str, Any]:
        info = await super()._get_node(request)
        if "url" in info and self.sha256 == "omit":
            info.pop("sha256")
        elif "url" in info and self.sha256 == "wrong":
            info["sha256"] = hashlib.sha256(b"other bytes").hexdigest()
        if self.padding:
            info["padding"] = "x" * self.padding
        return info


@pytest.fixture
async def harness() -> AsyncIterator[WhatsAppHarness]:
    # Only what the test makes happen: no earlier conversations stand in for the suite's.
    instance = WhatsAppHarness(
        earlier_conversations=False,
        simulator=MediaServingSimulator(
            "EAAG-connector-test-token",
            phone_number_id="109876543210987",
            waba_id="104455667788990",
            app_secret="connector-test-app-secret",
            verify_token="connector-test-verify-token",
            webhook_retry_delay=0.02,
        ),
    )
    async for started in running(instance):
        yield started


@pytest.fixture
def sim(harness: WhatsAppHarness) -> MediaServingSimulator:
    assert isinstance(harness.sim, MediaServingSimulator)
    return harness.sim


# --------------------------------------------------------------------------- helpers


async def customer_writes(
    sim: WhatsAppSimulator, *messages: dict[str, Any], names: dict[str, str] | None = None
) -> WebhookDelivery:
    delivery = await sim.receive(*messages, names=names)
    assert delivery.ok, delivery.statuses
    return delivery


def portal(harness: WhatsAppHarness, chat: str = ALICE) -> PortalKey:
    return PortalKey(harness.account_id, RemoteChatID(chat))


def matrix_message(
    harness: WhatsAppHarness, text: str, *, chat: str = ALICE, **fields: Any
) -> MatrixMessage:
    fields.setdefault("msgtype", "m.text")
    return MatrixMessage(
        portal=portal(harness, chat),
        event_id=f"$event{next(_event_ids)}:example.com",
        sender="@alice:example.com",
        sender_name="Alice",
        text=text,
        **fields,
    )


def media(
    data: bytes | int, filename: str, mimetype: str, *, size: int | None = -1
) -> tuple[MatrixMedia, list[int]]:
    """Matrix media of ``data`` (or of that many bytes); ``size`` -1 declares the real size.
    The list counts the downloads from the homeserver."""
    downloads: list[int] = []
    content = data if isinstance(data, bytes) else b"\0" * data

    async def download() -> bytes:
        downloads.append(1)
        return content

    declared = len(content) if size == -1 else size
    return MatrixMedia(f"mxc://example.com/{filename}", filename, mimetype, declared, download), (
        downloads
    )


def nothing_requested(sim: WhatsAppSimulator) -> bool:
    return not (sim.sent or sim.rejected or sim.uploads or sim.read_receipts or sim.downloads)


def only(host: FakeHost) -> Any:
    (event,) = host.events
    return event


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


# --------------------------------------------------------------------------- message kinds


async def test_text_with_markup_becomes_html(
    sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    sent_at = time.time() - 5
    message = wa.text_message(ALICE, "Is *order 17* _really_ ~late~? `A-17`", timestamp=sent_at)
    await customer_writes(sim, message, names={ALICE: "Alice Archer"})
    event = only(host)
    assert isinstance(event, RemoteMessage)
    assert event.text == "Is *order 17* _really_ ~late~? `A-17`"
    assert event.html == (
        "Is <strong>order 17</strong> <em>really</em> <del>late</del>? <code>A-17</code>"
    )
    assert event.chat.id == ALICE and event.sender.id == ALICE
    assert event.sender.displayname == "Alice Archer" and event.chat.name == "Alice Archer"
    assert event.message_id == message["id"]
    assert event.timestamp == float(int(sent_at))
    assert event.metadata == {"portal": {"last_inbound_at": float(int(sent_at))}}
    assert not event.notice and event.reply_to is None and event.attachments == ()


async def test_plain_text_has_no_html(
    sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    await customer_writes(sim, wa.text_message(ALICE, "2*3 = 6, snake_case"))
    event = only(host)
    assert event.text == "2*3 = 6, snake_case" and event.html is None


@pytest.mark.parametrize(
    ("kind", "mime", "extra", "filename", "caption"),
    [
        ("image", "image/jpeg", {"caption": "the *box*"}, None, "the *box*"),
        ("audio", "audio/ogg; codecs=opus", {"voice": True}, None, ""),
        ("video", "video/mp4", {"caption": "unboxing"}, None, "unboxing"),
        ("document", "application/pdf", {"caption": "invoice"}, "invoice-17.pdf", "invoice"),
        ("sticker", "image/webp", {"animated": False}, None, ""),
    ],
)
async def test_media_becomes_an_attachment(
    sim: WhatsAppSimulator,
    host: FakeHost,
    connector: WhatsAppConnector,
    kind: str,
    mime: str,
    extra: dict[str, Any],
    filename: str | None,
    caption: str,
) -> None:
    data = bytes(range(200)) * 3
    message = sim.media_message(kind, ALICE, data, mime, filename=filename, **extra)
    await customer_writes(sim, message)
    event = only(host)
    assert isinstance(event, RemoteMessage)
    (attachment,) = event.attachments
    media_id = message[kind]["id"]
    assert attachment.url == MEDIA_PREFIX + media_id
    assert attachment.mimetype == mime.split(";")[0]
    assert attachment.extra["kind"] == kind
    if filename:
        assert attachment.filename == filename
    else:
        assert attachment.filename and attachment.filename.startswith(f"{kind}_")
    assert event.text == caption
    if caption == "the *box*":
        assert event.html == "the <strong>box</strong>"
    content, mimetype = await downloaded(connector, attachment)
    assert content == data and mimetype == mime.split(";")[0]


async def test_location_contacts_interactive_and_buttons_become_text(
    sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    base = time.time() - 60
    await customer_writes(
        sim,
        wa.location_message(
            ALICE, 52.52, 13.405, name="Shop", address="Hauptstr. 1", timestamp=base
        ),
        wa.contacts_message(
            ALICE,
            [wa.contact_card("Bob Builder", phones=["+49 170 1111111", "+49 30 2222222"])],
            timestamp=base + 1,
        ),
        wa.button_reply_message(ALICE, "yes-1", "Yes, please", timestamp=base + 2),
        wa.list_reply_message(ALICE, "row-2", "Tuesday", "between 9 and 12", timestamp=base + 3),
        wa.template_button_message(ALICE, "STOP", "Stop promotions", timestamp=base + 4),
    )
    location, contact, button, row, template_button = host.events
    assert isinstance(location, RemoteMessage)
    assert "52.52" in location.text and "13.405" in location.text
    assert "Shop" in location.text and "Hauptstr. 1" in location.text
    assert location.html is not None and "openstreetmap.org" in location.html
    assert "Bob Builder" in contact.text
    assert "+49 170 1111111" in contact.text and "+49 30 2222222" in contact.text
    assert "Yes, please" in button.text
    assert "Tuesday" in row.text and "between 9 and 12" in row.text
    assert "Stop promotions" in template_button.text
    for event in host.events:
        assert isinstance(event, RemoteMessage)
        assert event.attachments == () and not event.notice


async def test_reactions_add_and_remove(
    sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    target = "wamid.HBgLNDkxNzAxMjM0NTY3FQIAERgSQUFBQUFBQUFBQUFBQUFBQQA="
    base = time.time() - 60
    added = wa.reaction_message(ALICE, target, "👍", timestamp=base)
    removed = wa.reaction_message(ALICE, target, "", timestamp=base + 1)
    await customer_writes(sim, added, removed)
    reaction, removal = host.events
    assert isinstance(reaction, RemoteReaction)
    assert reaction.message_id == target and reaction.emoji == "👍"
    assert reaction.sender.id == ALICE
    assert isinstance(removal, RemoteReactionRemove)
    assert removal.message_id == target and removal.emoji == ""
    assert removal.removal_id == removed["id"]


async def test_unsupported_message_becomes_a_notice(
    sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    await customer_writes(sim, wa.unsupported_message(ALICE, "poll"))
    event = only(host)
    assert isinstance(event, RemoteMessage)
    assert event.notice
    assert "Message type unknown" in event.text


async def test_reply_context_becomes_reply_to(
    sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    quoted = "wamid.HBgLNDkxNzAxMjM0NTY3FQIAERgSQkJCQkJCQkJCQkJCQkJCQgA="
    await customer_writes(
        sim,
        wa.text_message(
            ALICE, "this one", context=wa.reply_context(sim.display_phone_number, quoted)
        ),
    )
    assert only(host).reply_to == quoted


# --------------------------------------------------------------------------- statuses


async def sent_to_alice(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, connector: WhatsAppConnector
) -> str:
    await customer_writes(sim, wa.text_message(ALICE, "hello?"))
    return (await connector.send_message(matrix_message(harness, "Alice: hi!"))).message_id


async def test_statuses_become_receipts(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    wamid = await sent_to_alice(harness, sim, connector)
    await sim.emit_statuses(wamid, ["sent", "delivered", "read"])
    _, delivered, read = host.events
    assert isinstance(delivered, RemoteDeliveryReceipt) and delivered.message_id == wamid
    assert isinstance(read, RemoteReadReceipt) and read.message_id == wamid
    assert read.chat.id == ALICE and read.sender.id == ALICE
    await sim.emit_statuses(wamid, ["read"])  # Meta repeats itself
    assert len(host.events) == 3


@pytest.mark.parametrize("code", [131026, 131047, 131053])
async def test_failed_status_becomes_a_delivery_failure(
    harness: WhatsAppHarness,
    sim: WhatsAppSimulator,
    host: FakeHost,
    connector: WhatsAppConnector,
    code: int,
) -> None:
    wamid = await sent_to_alice(harness, sim, connector)
    await sim.emit_statuses(wamid, ["failed"], errors=[wa.webhook_error(code)])
    failure = host.events[-1]
    assert isinstance(failure, RemoteDeliveryFailure)
    assert failure.message_id == wamid and failure.chat.id == ALICE
    assert str(code) in failure.reason


async def test_undeliverable_reported_later_by_webhook(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    await customer_writes(sim, wa.text_message(ALICE, "hello?"))
    sim.set_undeliverable(ALICE, "webhook")
    sent = await connector.send_message(matrix_message(harness, "Alice: are you there?"))
    await host.wait_for_events(2)
    failure = host.events[1]
    assert isinstance(failure, RemoteDeliveryFailure)
    assert failure.message_id == sent.message_id and "131026" in failure.reason


# --------------------------------------------------------------------------- downloads


async def test_download_goes_through_the_media_node_with_the_token(
    sim: MediaServingSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    await customer_writes(sim, sim.media_message("image", ALICE, JPEG, "image/jpeg"))
    (attachment,) = only(host).attachments
    media_id = attachment.url.removeprefix(MEDIA_PREFIX)
    assert await downloaded(connector, attachment) == (JPEG, "image/jpeg")
    assert sim.media(media_id).url_requests == 1
    assert sim.downloads == [(media_id, 200)]  # the URL answers 401 without the bearer token


async def test_download_checks_the_checksum(
    sim: MediaServingSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    await customer_writes(sim, sim.media_message("document", ALICE, JPEG, "application/pdf"))
    (attachment,) = only(host).attachments
    sim.sha256 = "wrong"
    with pytest.raises(PermanentDeliveryError) as caught:
        await downloaded(connector, attachment)
    assert "checksum" in caught.value.reason


async def test_download_falls_back_to_the_webhook_checksum(
    sim: MediaServingSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    """Without a checksum from the media node, the webhook's (base64) is used."""
    await customer_writes(sim, sim.media_message("image", ALICE, JPEG, "image/jpeg"))
    (attachment,) = only(host).attachments
    assert attachment.extra["sha256"] == base64.b64encode(hashlib.sha256(JPEG).digest()).decode()
    sim.sha256 = "omit"
    assert (await downloaded(connector, attachment))[0] == JPEG
    tampered = RemoteAttachment(
        url=attachment.url,
        mimetype="image/jpeg",
        extra={**attachment.extra, "sha256": base64.b64encode(b"\0" * 32).decode()},
    )
    with pytest.raises(PermanentDeliveryError):
        await downloaded(connector, tampered)


async def test_download_errors(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    with pytest.raises(PermanentDeliveryError):
        await downloaded(connector, RemoteAttachment(url="https://example.com/x.jpg"))
    with pytest.raises(PermanentDeliveryError):  # an unknown (expired) media id
        await downloaded(connector, RemoteAttachment(url=MEDIA_PREFIX + "1234567890"))
    await customer_writes(sim, sim.media_message("image", ALICE, JPEG, "image/jpeg"))
    (attachment,) = only(host).attachments
    sim.fail_next(1, 2)  # 503 service temporarily unavailable
    with pytest.raises(TemporaryDeliveryError):
        await downloaded(connector, attachment)
    assert (await downloaded(connector, attachment))[0] == JPEG


async def test_download_reads_large_media_to_the_end(
    sim: MediaServingSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    """One read() gives only what has arrived (about 125 KB here): a megabyte came truncated
    and failed its checksum."""
    data = b"%PDF-1.7\n" + hashlib.sha256(b"seed").digest() * 32768  # 1 MiB and a bit
    message = sim.media_message("document", ALICE, data, "application/pdf", filename="big.pdf")
    await customer_writes(sim, message)
    (attachment,) = only(host).attachments
    assert await downloaded(connector, attachment) == (data, "application/pdf")


@pytest.mark.parametrize("serve", ["endless", "oversized"])
async def test_download_stops_at_the_limit(
    sim: MediaServingSimulator,
    host: FakeHost,
    connector: WhatsAppConnector,
    monkeypatch: pytest.MonkeyPatch,
    serve: str,
) -> None:
    """A media URL that never ends, or announces more than the limit, is refused once the
    limit is passed (endless) or from its Content-Length (oversized): never held in full."""
    monkeypatch.setattr("bridge.connectors.whatsapp.connector.DOWNLOAD_LIMIT", 256 * 1024)
    await customer_writes(sim, sim.media_message("document", ALICE, JPEG, "application/pdf"))
    (attachment,) = only(host).attachments
    sim.serve = serve
    with pytest.raises(PermanentDeliveryError) as caught:
        await downloaded(connector, attachment)
    assert "over the 0.25 MB" in caught.value.reason


async def test_an_oversized_graph_answer_is_not_read(
    sim: MediaServingSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    await customer_writes(sim, sim.media_message("image", ALICE, JPEG, "image/jpeg"))
    (attachment,) = only(host).attachments
    sim.padding = MAX_ANSWER
    with pytest.raises(TemporaryDeliveryError) as caught:
        await downloaded(connector, attachment)
    assert "over 4 MB" in caught.value.reason
    sim.padding = 1000
    assert (await downloaded(connector, attachment))[0] == JPEG


def test_graph_errors_never_quote_the_access_token() -> None:
    token = "EAAG-connector-test-token"
    answer = {"error": {"code": 190, "message": f"Invalid OAuth access token: {token}"}}
    error = graph_error(401, answer, token)
    assert isinstance(error, TemporaryDeliveryError)
    assert token not in error.reason and "[redacted]" in error.reason
    answer = {"error": {"code": 100, "error_data": {"details": f"param {token} bad"}}}
    assert token not in str(graph_error(400, answer, token))


# --------------------------------------------------------------------------- the 24-hour window


async def test_send_after_25_hours_is_refused_without_a_request(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    await customer_writes(
        sim, wa.text_message(ALICE, "long ago", timestamp=time.time() - 25 * HOUR)
    )
    assert (await host.portal_metadata(RemoteChatID(ALICE)))["last_inbound_at"] < (
        time.time() - 24 * HOUR
    )
    assert sim.window_open(ALICE)  # Meta would take it: the connector decides by the message
    ref = MessageRef(MessageID(only(host).message_id), sender=RemoteUserID(ALICE))
    data, downloads = media(JPEG, "a.jpg", "image/jpeg")
    common: dict[str, Any] = {"portal": portal(harness), "sender": "@alice:example.com"}
    attempts: list[Callable[[], Awaitable[Any]]] = [
        lambda: connector.send_message(matrix_message(harness, "Alice: sorry for the wait")),
        lambda: connector.send_reply(matrix_message(harness, "Alice: about this", reply_to=ref)),
        lambda: connector.send_media(
            matrix_message(harness, "a.jpg", msgtype="m.image", media=data)
        ),
        lambda: connector.handle_matrix_reaction(
            MatrixReaction(event_id="$r", emoji="👍", target=ref, **common)
        ),
    ]
    for attempt in attempts:
        with pytest.raises(PermanentDeliveryError) as caught:
            await attempt()
        assert not isinstance(caught.value, TemporaryDeliveryError)
        assert "template" in caught.value.reason and "24 hours" in caught.value.reason
    assert downloads == []
    assert nothing_requested(sim)


async def test_window_from_host_metadata_after_a_restart(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    """A connector that did not see the customer's message itself (restarted) asks the host."""
    await customer_writes(sim, wa.text_message(ALICE, "recent", timestamp=time.time() - 23 * HOUR))
    await customer_writes(sim, wa.text_message(BOB, "old", timestamp=time.time() - 25 * HOUR))
    restarted = harness.make_connector(host)
    assert (await restarted.send_message(matrix_message(harness, "Alice: hi"))).message_id
    with pytest.raises(PermanentDeliveryError):
        await restarted.send_message(matrix_message(harness, "Alice: hi", chat=BOB))
    assert [s.wa_id for s in sim.sent] == [ALICE]


async def test_send_to_a_customer_who_never_wrote_is_refused(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, connector: WhatsAppConnector
) -> None:
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_message(matrix_message(harness, "Alice: cold call"))
    assert "template" in caught.value.reason
    assert nothing_requested(sim)


async def test_window_closed_on_metas_side_is_permanent(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, connector: WhatsAppConnector
) -> None:
    await customer_writes(sim, wa.text_message(ALICE, "hi"))
    sim.close_window(ALICE)  # Meta's clock says otherwise: it answers 131047
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_message(matrix_message(harness, "Alice: hello"))
    assert "131047" in caught.value.reason and "template" in caught.value.reason


# --------------------------------------------------------------------------- Graph errors


@pytest.mark.parametrize(("code", "retry_after"), [(130429, 1.0), (131056, 6.0)])
async def test_rate_limits_are_temporary_with_retry_after(
    harness: WhatsAppHarness,
    sim: WhatsAppSimulator,
    connector: WhatsAppConnector,
    code: int,
    retry_after: float,
) -> None:
    await customer_writes(sim, wa.text_message(ALICE, "hi"))
    sim.storm(1, code)
    with pytest.raises(TemporaryDeliveryError) as caught:
        await connector.send_message(matrix_message(harness, "Alice: one moment"))
    assert caught.value.retry_after == retry_after
    assert str(code) in caught.value.reason
    assert (await connector.send_message(matrix_message(harness, "Alice: one moment"))).message_id


async def test_undeliverable_number_is_permanent(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, connector: WhatsAppConnector
) -> None:
    await customer_writes(sim, wa.text_message(ALICE, "hi"))
    sim.set_undeliverable(ALICE, "sync")
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_message(matrix_message(harness, "Alice: hello"))
    assert not isinstance(caught.value, TemporaryDeliveryError)
    assert "131026" in caught.value.reason
    assert sim.sent == []


@pytest.mark.parametrize(
    ("code", "status"), [(190, None), (1, None), (2, None), (131000, None), (100, 500)]
)
async def test_auth_and_server_errors_are_temporary(
    harness: WhatsAppHarness,
    sim: WhatsAppSimulator,
    connector: WhatsAppConnector,
    code: int,
    status: int | None,
) -> None:
    await customer_writes(sim, wa.text_message(ALICE, "hi"))
    sim.fail_next(1, code, status=status)
    with pytest.raises(TemporaryDeliveryError):
        await connector.send_message(matrix_message(harness, "Alice: hello"))
    assert (await connector.send_message(matrix_message(harness, "Alice: hello"))).message_id


async def test_wrong_access_token_is_temporary(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    """A revoked or expired token (190, HTTP 401) is fixed by an admin, not by the message."""
    await customer_writes(sim, wa.text_message(ALICE, "hi"))
    stale = harness.make_connector(host, access_token="EAAG-revoked-token")
    with pytest.raises(TemporaryDeliveryError) as caught:
        await stale.send_message(matrix_message(harness, "Alice: hello"))
    assert "access token" in caught.value.reason
    assert sim.rejected[-1].code == 190 and sim.rejected[-1].status == 401
    assert sim.sent == []


async def test_unreachable_graph_api_is_temporary(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    await customer_writes(sim, wa.text_message(ALICE, "hi"))
    nowhere = harness.make_connector(host, base_url="http://127.0.0.1:9", request_timeout=2)
    with pytest.raises(TemporaryDeliveryError):
        await nowhere.send_message(matrix_message(harness, "Alice: hello"))


# --------------------------------------------------------------------------- sending


async def test_text_reply_reaction_and_read_receipt_reach_the_api(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    await customer_writes(sim, wa.text_message(ALICE, "Where is my parcel?"))
    question = only(host).message_id
    ref = MessageRef(MessageID(question), sender=RemoteUserID(ALICE))
    plain = await connector.send_message(
        matrix_message(harness, "Alice: It is bold", html="Alice: It is <b>bold</b>")
    )
    reply = await connector.send_reply(matrix_message(harness, "Alice: On its way", reply_to=ref))
    common: dict[str, Any] = {"portal": portal(harness), "sender": "@alice:example.com"}
    await connector.handle_matrix_reaction(
        MatrixReaction(event_id="$r1", emoji="👍", target=ref, **common)
    )
    await connector.handle_matrix_reaction_remove(
        MatrixReactionRemove(event_id="$r2", emoji="👍", target=ref, **common)
    )
    await connector.handle_matrix_read_receipt(
        MatrixReadReceipt(portal=portal(harness), sender="@alice:example.com", target=ref)
    )
    # Our own messages are not marked read: WhatsApp knows only the customer's.
    await connector.handle_matrix_read_receipt(
        MatrixReadReceipt(
            portal=portal(harness),
            sender="@alice:example.com",
            target=MessageRef(plain.message_id),
        )
    )
    first, second, react, unreact = sim.sent
    assert (first.wamid, first.type, first.text) == (
        plain.message_id,
        "text",
        "Alice: It is *bold*",
    )
    assert first.context_id is None
    assert (second.wamid, second.text, second.context_id) == (
        reply.message_id,
        "Alice: On its way",
        question,
    )
    assert react.content == {"message_id": question, "emoji": "👍"}
    assert unreact.content == {"message_id": question, "emoji": ""}
    assert [r.message_id for r in sim.read_receipts] == [question]
    assert sim.rejected == []
    items = await harness.remote_received()
    assert [i["type"] for i in items] == [
        "message", "message", "reaction", "reaction_remove", "read_receipt",
    ]  # fmt: skip


async def test_long_text_retried_after_a_failure_midway_is_not_doubled(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    await customer_writes(sim, wa.text_message(ALICE, "tell me everything"))
    text = " ".join(f"word{n}" for n in range(1500))
    msg = matrix_message(harness, text)
    sim.storm(1, 131000, after=1)  # "Something went wrong" on the second chunk
    with pytest.raises(TemporaryDeliveryError):
        await connector.send_message(msg)
    assert len(sim.sent) == 1
    sent = await connector.send_message(msg)
    assert len(sim.sent) >= 3
    assert " ".join((s.text or "").strip() for s in sim.sent).split() == text.split()
    assert sent.message_id == sim.sent[0].wamid


async def test_long_text_is_split(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    await customer_writes(sim, wa.text_message(ALICE, "tell me everything"))
    ref = MessageRef(MessageID(only(host).message_id), sender=RemoteUserID(ALICE))
    text = " ".join(f"word{n}" for n in range(1500))
    sent = await connector.send_reply(matrix_message(harness, text, reply_to=ref))
    assert len(sim.sent) >= 2
    assert sent.message_id == sim.sent[0].wamid
    assert all(len(s.text or "") <= 4096 for s in sim.sent)
    assert [s.context_id for s in sim.sent][1:] == [None] * (len(sim.sent) - 1)
    assert " ".join((s.text or "").strip() for s in sim.sent).split() == text.split()


async def test_media_is_uploaded_then_sent(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, connector: WhatsAppConnector
) -> None:
    await customer_writes(sim, wa.text_message(ALICE, "photo please"))
    picture, downloads = media(JPEG, "parcel.jpg", "image/jpeg")
    sent = await connector.send_media(
        matrix_message(harness, "Alice: here it is", msgtype="m.image", media=picture)
    )
    (upload,) = sim.uploads
    assert upload.data == JPEG and upload.mime_type == "image/jpeg"
    (message,) = sim.sent
    assert message.wamid == sent.message_id and message.type == "image"
    assert message.content == {"id": upload.id, "caption": "Alice: here it is"}
    assert downloads == [1]


# Largest file of each kind the Cloud API takes, by the Matrix message that carries it.
LIMITS = [
    ("m.image", "image/jpeg", "image", 5 * MiB),
    ("m.image", "image/webp", "sticker", 100 * 1024),
    ("m.audio", "audio/ogg", "audio", 16 * MiB),
    ("m.video", "video/mp4", "video", 16 * MiB),
    ("m.file", "application/pdf", "document", 100 * MiB),
]


@pytest.mark.parametrize(("msgtype", "mime", "kind", "limit"), LIMITS, ids=[x[2] for x in LIMITS])
async def test_media_over_the_limit_is_refused_before_download(
    harness: WhatsAppHarness,
    sim: WhatsAppSimulator,
    connector: WhatsAppConnector,
    msgtype: str,
    mime: str,
    kind: str,
    limit: int,
) -> None:
    assert UPLOAD_LIMITS[kind] == limit
    await customer_writes(sim, wa.text_message(ALICE, "send it"))
    big, downloads = media(b"\0", "big", mime, size=limit + 1)
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_media(matrix_message(harness, "big", msgtype=msgtype, media=big))
    assert kind in caught.value.reason
    assert downloads == []
    assert sim.uploads == [] and sim.sent == []


@pytest.mark.parametrize(
    ("msgtype", "mime", "kind", "limit"), LIMITS[:2], ids=[x[2] for x in LIMITS[:2]]
)
async def test_media_of_unknown_size_is_checked_before_upload(
    harness: WhatsAppHarness,
    sim: WhatsAppSimulator,
    connector: WhatsAppConnector,
    msgtype: str,
    mime: str,
    kind: str,
    limit: int,
) -> None:
    await customer_writes(sim, wa.text_message(ALICE, "send it"))
    big, downloads = media(limit + 1, "big", mime, size=None)
    with pytest.raises(PermanentDeliveryError):
        await connector.send_media(matrix_message(harness, "big", msgtype=msgtype, media=big))
    assert downloads == [1]
    assert sim.uploads == [] and sim.sent == []


# --------------------------------------------------------------------------- templates


async def test_templates_are_listed_across_pages(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, connector: WhatsAppConnector
) -> None:
    for n in range(130):
        sim.add_template(f"notice_{n:03d}", "en_US", f"Notice {n} for {{{{1}}}}")
    sim.add_template("order_update", "de", "Hallo {{1}}, Bestellung {{2}} ist unterwegs.")
    sim.add_template("gap", "en_US", "{{1}} and {{3}}", category="MARKETING")
    sim.add_template("no_params", "en_US", "Thanks for your message.")
    for status in ("PENDING", "REJECTED", "PAUSED", "DISABLED", "IN_APPEAL"):
        sim.add_template(f"not_{status.lower()}", "en_US", "Hidden {{1}}", status=status)
    templates = await connector.list_templates()
    assert len(templates) == 133
    by_name = {t.name: t for t in templates}
    assert not any(name.startswith("not_") for name in by_name)
    assert by_name["notice_129"] == Template(
        "notice_129", "en_US", "Notice 129 for {{1}}", 1, "UTILITY"
    )
    assert by_name["order_update"].parameters == 2 and by_name["order_update"].language == "de"
    assert by_name["gap"].parameters == 3 and by_name["gap"].category == "MARKETING"
    assert by_name["no_params"].parameters == 0


async def test_template_list_is_cached(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost
) -> None:
    connector = harness.make_connector(host, template_cache=0.3)
    await connector.start()
    try:
        sim.add_template("first", "en_US", "First")
        assert [t.name for t in await connector.list_templates()] == ["first"]
        sim.add_template("second", "en_US", "Second")
        assert [t.name for t in await connector.list_templates()] == ["first"]
        await asyncio.sleep(0.35)
        assert [t.name for t in await connector.list_templates()] == ["first", "second"]
    finally:
        await connector.stop()


async def test_template_is_sent_and_rendered_outside_the_window(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, connector: WhatsAppConnector
) -> None:
    sim.add_template("order_update", "en_US", "Hello {{1}}, your order {{2}} has shipped.")
    (template,) = await connector.list_templates()
    chat = connector.chat_for_address("+49 170 1234567")
    assert chat == ALICE and not sim.window_open(ALICE)
    sent = await connector.send_template(chat, template, ["Alice", "A-17"])
    (message,) = sim.sent
    assert message.wamid == sent.message_id and message.wa_id == ALICE
    assert message.type == "template"
    assert message.rendered == "Hello Alice, your order A-17 has shipped."
    items = await harness.remote_received()
    assert items[0]["text"] == "Hello Alice, your order A-17 has shipped."


async def test_template_with_wrong_parameters_is_permanent(
    sim: WhatsAppSimulator, connector: WhatsAppConnector
) -> None:
    sim.add_template("order_update", "en_US", "Hello {{1}}, your order {{2}} has shipped.")
    (template,) = await connector.list_templates()
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_template(RemoteChatID(ALICE), template, ["Alice"])
    assert "132000" in caught.value.reason
    gone = Template("retired", "en_US", "Bye", 0)
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_template(RemoteChatID(ALICE), gone, [])
    assert "132001" in caught.value.reason
    assert sim.sent == []


@pytest.mark.parametrize(
    ("address", "chat"),
    [
        ("+49 151 1234567", "491511234567"),
        ("+491511234567", "491511234567"),
        ("+1 (555) 000-1234", "15550001234"),
        ("  +44 20 7946 0958 ", "442079460958"),
    ],
)
async def test_chat_for_address_accepts_phone_numbers(
    connector: WhatsAppConnector, address: str, chat: str
) -> None:
    assert connector.chat_for_address(address) == chat


@pytest.mark.parametrize(
    "address", ["hello", "", "+", "12345", "+49 151 1234567 ext 5", "@alice:example.com", "1" * 16]
)
async def test_chat_for_address_refuses_other_text(
    connector: WhatsAppConnector, address: str
) -> None:
    with pytest.raises(ValueError) as caught:
        connector.chat_for_address(address)
    assert "phone number" in str(caught.value) or "digits" in str(caught.value)


@pytest.mark.parametrize("address", ["0151 1234567", "030 1234567", "+0151 1234567"])
async def test_chat_for_address_refuses_national_numbers(
    connector: WhatsAppConnector, address: str
) -> None:
    """A wa_id starts with the country code, which never starts with 0: a number typed
    without one would open a conversation with a number that does not exist."""
    with pytest.raises(ValueError):
        connector.chat_for_address(address)


async def test_chat_for_address_reads_the_00_prefix_as_international(
    connector: WhatsAppConnector,
) -> None:
    """``0049 151 1234567`` is how much of the world dials +49: it is the customer's number
    (or, at the least, refused), never a wa_id ``0049…`` of nobody."""
    try:
        chat = connector.chat_for_address("0049 151 1234567")
    except ValueError:
        return
    assert chat == "491511234567"


# --------------------------------------------------------------------------- pair limiter


async def test_pair_limiter_spaces_a_burst(capsys: pytest.CaptureFixture[str]) -> None:
    """After ``burst`` messages to one customer the next go one per ``per_user`` seconds (6 s
    in production; 0.25 s here)."""
    interval = 0.25
    limiter = PairLimiter(burst=3, per_user=interval, per_number=0.001)
    start = time.monotonic()
    times = []
    for _ in range(7):
        await limiter.acquire(ALICE)
        times.append(time.monotonic() - start)
    with capsys.disabled():
        print(f"\npair limiter (burst 3, {interval} s): " + ", ".join(f"{t:.3f}" for t in times))
    assert all(t < 0.05 for t in times[:3])
    gaps = [later - earlier for earlier, later in itertools.pairwise(times[2:])]
    assert all(interval * 0.9 <= gap <= interval * 1.6 for gap in gaps), gaps


async def test_pair_limiter_refills_while_idle() -> None:
    limiter = PairLimiter(burst=2, per_user=0.1, per_number=0.001)
    for _ in range(2):
        await limiter.acquire(ALICE)
    await asyncio.sleep(0.25)
    start = time.monotonic()
    for _ in range(2):
        await limiter.acquire(ALICE)
    assert time.monotonic() - start < 0.05


async def test_pair_limit_of_one_customer_does_not_hold_up_others(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The per-customer spacing is per customer: while Alice's next message waits for her
    pair slot, a message to Bob goes out at the number's rate, not after Alice's."""
    limiter = PairLimiter(burst=1, per_user=0.5, per_number=0.001)
    start = time.monotonic()

    async def send(user: str) -> float:
        await limiter.acquire(user)
        return time.monotonic() - start

    alice_first = await send(ALICE)
    alice_second = asyncio.create_task(send(ALICE))
    await asyncio.sleep(0.01)
    bob = await send(BOB)
    alice_second_at = await alice_second
    with capsys.disabled():
        print(f"\nalice {alice_first:.3f}, {alice_second_at:.3f}; bob {bob:.3f}")
    assert alice_second_at >= 0.45
    assert bob < 0.1, f"Bob waited {bob:.3f} s behind Alice's pair limit"


async def test_connector_spaces_sends_to_one_customer(
    harness: WhatsAppHarness,
    sim: WhatsAppSimulator,
    connector: WhatsAppConnector,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """End to end: the connector's own limiter (with a short interval) keeps the simulator's
    pair limit (131056) from ever answering."""
    await customer_writes(sim, wa.text_message(ALICE, "hi"))
    sim.rate_limits.pair_burst, sim.rate_limits.pair_interval = 2, 0.2
    connector.client.limiter = PairLimiter(burst=2, per_user=0.25)
    for n in range(5):
        await connector.send_message(matrix_message(harness, f"Alice: part {n}"))
    times = [s.at - sim.sent[0].at for s in sim.sent]
    with capsys.disabled():
        print("\nconnector sends (burst 2, 0.25 s): " + ", ".join(f"{t:.3f}" for t in times))
    assert sim.rejected == []
    assert times[2] >= 0.2 and times[4] - times[3] >= 0.2


async def test_capabilities_document_the_limits(connector: WhatsAppConnector) -> None:
    caps = connector.capabilities
    assert caps.max_text_length == 4096 and not caps.html
    assert caps.max_file_size["m.image"] == 5 * MiB
    assert caps.max_file_size["m.file"] == 100 * MiB
    assert caps.rate_limits["pair"] == pytest.approx(1 / 6)
    assert caps.delivery_deadline == 600.0
    assert json.dumps(dict(caps.max_file_size))


async def test_a_large_staff_file_is_uploaded_from_its_spool(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, connector: WhatsAppConnector
) -> None:
    await customer_writes(sim, wa.text_message(ALICE, "send the contract"))
    data = bytes(range(256)) * (12 * 1024) + b"end"  # 3 MiB: spooled to disk, sent in chunks
    staff_file, calls = streamed_media(data, "big.pdf", "application/pdf")
    await connector.send_media(matrix_message(harness, "", msgtype="m.file", media=staff_file))
    (upload,) = sim.uploads
    assert upload.data == data and upload.mime_type == "application/pdf"
    assert calls == ["open"]  # never downloaded whole
