"""Outbound: payloads, signatures, idempotency keys and the mapping of HTTP outcomes."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bridge.connector import PermanentDeliveryError, TemporaryDeliveryError
from bridge.connectors.webhook import WebhookConnector
from bridge.connectors.webhook.client import parse_retry_after
from bridge.connectors.webhook.protocol import SIGNATURE_HEADER, check
from bridge.events import (
    MatrixEdit,
    MatrixReaction,
    MatrixReactionRemove,
    MatrixRedaction,
    SentMessage,
)
from bridge.types import MessageID
from tests.connectors.media_support import streamed_media
from tests.contract.harness import FakeHost

from .factories import PORTAL, STAFF, closed_port_url, event_id, media, message, ref
from .harness import SECRET, Failure, WebhookHarness


def last_payload(harness: WebhookHarness) -> dict[str, Any]:
    return json.loads(harness.receiver.requests[-1].body)


async def test_message_payload(harness: WebhookHarness, connector: WebhookConnector) -> None:
    msg = message("Alice: hi", html="<b>Alice</b>: hi", timestamp=1700000000.25)
    sent = await connector.send_message(msg)
    assert sent == SentMessage(MessageID("remote-1"))
    assert last_payload(harness) == {
        "type": "message",
        "id": msg.event_id,
        "chat_id": "chat-1",
        "sender": {"mxid": STAFF, "name": "Alice"},
        "text": "Alice: hi",
        "html": "<b>Alice</b>: hi",
        "reply_to": None,
        "timestamp": 1700000000.25,
    }


async def test_message_without_timestamp_gets_the_current_time(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    await connector.send_message(message())
    payload = last_payload(harness)
    assert payload["html"] is None
    assert abs(payload["timestamp"] - time.time()) < 60


async def test_reply_payload(harness: WebhookHarness, connector: WebhookConnector) -> None:
    await connector.send_reply(message("Alice: yes", reply_to=ref("cust-msg-9")))
    assert last_payload(harness)["reply_to"] == "cust-msg-9"


async def test_edit_delete_reaction_payloads(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    target = ref("remote-7")
    common: dict[str, Any] = {"portal": PORTAL, "sender": STAFF, "target": target}
    base = {"chat_id": "chat-1", "sender": {"mxid": STAFF, "name": STAFF}, "target": "remote-7"}
    edit = MatrixEdit(event_id=event_id(), text="new", html="<i>new</i>", **common)
    await connector.handle_matrix_edit(edit)
    assert last_payload(harness) == {
        "type": "edit",
        "id": edit.event_id,
        **base,
        "text": "new",
        "html": "<i>new</i>",
    }
    redaction = MatrixRedaction(event_id=event_id(), **common)
    await connector.handle_matrix_redaction(redaction)
    assert last_payload(harness) == {"type": "delete", "id": redaction.event_id, **base}
    reaction = MatrixReaction(event_id=event_id(), emoji="🎉", **common)
    await connector.handle_matrix_reaction(reaction)
    assert last_payload(harness) == {
        "type": "reaction",
        "id": reaction.event_id,
        **base,
        "emoji": "🎉",
    }
    removal = MatrixReactionRemove(event_id=event_id(), emoji="🎉", **common)
    await connector.handle_matrix_reaction_remove(removal)
    assert last_payload(harness) == {
        "type": "reaction_remove",
        "id": removal.event_id,
        **base,
        "emoji": "🎉",
    }
    keys = [r.headers["Idempotency-Key"] for r in harness.receiver.requests]
    assert keys == [edit.event_id, redaction.event_id, reaction.event_id, removal.event_id]


async def test_media_payload(harness: WebhookHarness, connector: WebhookConnector) -> None:
    data = bytes(range(256)) * 4
    item, calls = media(data, name="photo.bin")
    sent = await connector.send_media(message("photo.bin", msgtype="m.image", media=item))
    assert sent.message_id == "remote-1"
    attachment = last_payload(harness)["attachment"]
    assert attachment == {
        "filename": "photo.bin",
        "mimetype": "application/octet-stream",
        "size": len(data),
        "data_base64": base64.b64encode(data).decode(),
    }
    assert calls == [1]


async def test_a_large_file_is_streamed_signed_and_whole(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    # Over one base64 chunk, and a length that is no multiple of 3: the base64 made chunk by
    # chunk must join up (the harness takes files up to 256 KiB).
    data = bytes(range(256)) * 800 + b"tail"
    item, calls = streamed_media(data, "big.bin", "application/octet-stream")
    await connector.send_media(message("big.bin", msgtype="m.file", media=item))
    request = harness.receiver.requests[-1]
    check(SECRET, request.body, request.headers[SIGNATURE_HEADER])
    assert int(request.headers["Content-Length"]) == len(request.body)
    attachment = json.loads(request.body)["attachment"]
    assert attachment["size"] == len(data)
    assert base64.b64decode(attachment["data_base64"], validate=True) == data
    assert calls == ["open"]  # read from the homeserver in chunks, never whole


async def test_send_message_with_media_sends_the_file(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    item, _ = media(b"abc")
    await connector.send_message(message("f", msgtype="m.file", media=item))
    assert base64.b64decode(last_payload(harness)["attachment"]["data_base64"]) == b"abc"


async def test_media_over_limit_after_download(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    limit = harness.valid_config()["max_file_size"]
    item, calls = media(b"x" * (limit + 1), size=None, name="huge.iso")
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_media(message("huge.iso", msgtype="m.file", media=item))
    assert "huge.iso" in caught.value.reason and str(limit) in caught.value.reason
    assert calls == [1] and harness.receiver.requests == []


# ---------------------------------------------------------------------------- signing


async def test_signature_and_headers(harness: WebhookHarness, connector: WebhookConnector) -> None:
    msg = message("Alice: ünïcödé ✓")
    await connector.send_message(msg)
    (request,) = harness.receiver.requests
    header = request.headers["X-Bridge-Signature"]
    stamp, _, digest = header.partition(",sha256=")
    when = int(stamp.removeprefix("t="))
    assert abs(time.time() - when) <= 5, "signed with the time it was sent"
    signed = f"{when}.".encode() + request.body
    assert digest == hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert request.signature_valid
    assert request.headers["Idempotency-Key"] == msg.event_id
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body.decode("utf-8"))["text"] == "Alice: ünïcödé ✓"


async def test_wrong_secret_is_rejected_by_the_receiver(
    harness: WebhookHarness, host: FakeHost
) -> None:
    connector = harness.make_connector(host, secret="a-different-secret-entirely")
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_message(message())
    assert "401" in caught.value.reason and "bad signature" in caught.value.reason


async def test_repeat_after_lost_answer_is_dropped_by_the_receiver(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    msg = message()
    first = await connector.send_message(msg)
    second = await connector.send_message(msg)  # the core retries after a crash
    assert first == second
    assert len(harness.receiver.requests) == 2 and len(await harness.remote_received()) == 1


# ---------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("answer_ids", "expected"),
    [(True, "remote-1"), (False, None)],
)
async def test_remote_id_comes_from_the_answer(
    harness: WebhookHarness, connector: WebhookConnector, answer_ids: bool, expected: str | None
) -> None:
    harness.receiver.answer_ids = answer_ids
    msg = message()
    sent = await connector.send_message(msg)
    assert sent.message_id == (expected or msg.event_id)


@pytest.mark.parametrize(
    "body",
    ["", "not json", "[1]", '{"id": 5}', '{"id": ""}', '{"id": null}', '"remote"'],
)
async def test_unusable_answer_falls_back_to_the_event_id(
    harness: WebhookHarness, connector: WebhookConnector, body: str
) -> None:
    harness.receiver.fail(Failure(200, body))
    msg = message()
    assert (await connector.send_message(msg)).message_id == msg.event_id


@pytest.mark.parametrize("status", [201, 202, 204])
async def test_any_2xx_is_success(
    harness: WebhookHarness, connector: WebhookConnector, status: int
) -> None:
    harness.receiver.fail(Failure(status))
    msg = message()
    assert (await connector.send_message(msg)).message_id == msg.event_id


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [
        (503, {"Retry-After": "7"}, 7.0),
        (429, {"Retry-After": "120"}, 120.0),
        (429, {"Retry-After": "1.5"}, 1.5),
        (500, {}, None),
        (502, {"Retry-After": "soon"}, None),
        (408, {}, None),
    ],
)
async def test_temporary_statuses(
    harness: WebhookHarness,
    connector: WebhookConnector,
    status: int,
    headers: dict[str, str],
    retry_after: float | None,
) -> None:
    harness.receiver.fail(Failure(status, "busy", headers))
    with pytest.raises(TemporaryDeliveryError) as caught:
        await connector.send_message(message())
    assert caught.value.retry_after == retry_after
    assert str(status) in caught.value.reason
    assert len(harness.receiver.requests) == 1, "the connector must not retry by itself"


async def test_retry_after_as_http_date(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    when = email.utils.formatdate(time.time() + 90, usegmt=True)
    harness.receiver.fail(Failure(503, "", {"Retry-After": when}))
    with pytest.raises(TemporaryDeliveryError) as caught:
        await connector.send_message(message())
    assert caught.value.retry_after is not None and 80 <= caught.value.retry_after <= 91


@pytest.mark.parametrize("status", [400, 403, 404, 409, 410, 413, 422, 301])
async def test_permanent_statuses(
    harness: WebhookHarness, connector: WebhookConnector, status: int
) -> None:
    harness.receiver.fail(Failure(status, '{"error": "chat 1 is closed"}', {"Location": "/x"}))
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_message(message())
    assert not isinstance(caught.value, TemporaryDeliveryError)
    assert f"HTTP {status}" in caught.value.reason
    assert "chat 1 is closed" in caught.value.reason


async def test_long_error_body_is_shortened(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    harness.receiver.fail(Failure(400, "why " * 10_000))
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_message(message())
    assert len(caught.value.reason) < 300


# ---------------------------------------------------------------------------- transport


async def test_unreachable_receiver_is_temporary(harness: WebhookHarness, host: FakeHost) -> None:
    connector = harness.make_connector(host, outbound_url=closed_port_url())
    with pytest.raises(TemporaryDeliveryError) as caught:
        await connector.send_message(message())
    assert "unreachable" in caught.value.reason


async def test_timeout_is_temporary(harness: WebhookHarness, host: FakeHost) -> None:
    connector = harness.make_connector(host, request_timeout=0.2)
    harness.receiver.delay = 1.0
    started = time.monotonic()
    with pytest.raises(TemporaryDeliveryError) as caught:
        await connector.send_message(message())
    assert time.monotonic() - started < 0.9
    assert caught.value.reason == "webhook receiver did not answer within 0.2 seconds"


def _disabled_calls(
    connector: WebhookConnector,
) -> list[Callable[[], Awaitable[Any]]]:
    target = ref("r-1")
    common: dict[str, Any] = {"portal": PORTAL, "event_id": event_id(), "sender": STAFF}
    item, _ = media(b"x")
    return [
        lambda: connector.send_message(message()),
        lambda: connector.send_reply(message(reply_to=target)),
        lambda: connector.send_media(message(msgtype="m.file", media=item)),
        lambda: connector.handle_matrix_edit(MatrixEdit(target=target, text="t", **common)),
        lambda: connector.handle_matrix_redaction(MatrixRedaction(target=target, **common)),
        lambda: connector.handle_matrix_reaction(
            MatrixReaction(target=target, emoji="x", **common)
        ),
        lambda: connector.handle_matrix_reaction_remove(
            MatrixReactionRemove(target=target, emoji="x", **common)
        ),
    ]


@pytest.mark.parametrize("index", range(7))
async def test_outbound_disabled_is_permanent(
    harness: WebhookHarness, host: FakeHost, index: int
) -> None:
    connector = harness.make_connector(host, outbound_url="")
    await connector.start()
    assert "outbound" in connector.state.message
    with pytest.raises(PermanentDeliveryError) as caught:
        await _disabled_calls(connector)[index]()
    assert caught.value.reason == "outbound delivery is not configured for this channel"
    await connector.stop()


# ---------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("  30 ", 30.0),
        ("-5", 0.0),
        ("nan", None),
        ("inf", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:00", None),
        ("next tuesday", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_date_in_the_future() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 45, usegmt=True)
    assert parse_retry_after(header, now=now) == 45.0
