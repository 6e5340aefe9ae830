"""Inbound events: signature, JSON and schema checks, and the mapping to remote events."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from bridge.connector import StateKind
from bridge.connectors.webhook import WebhookConnector
from bridge.events import (
    RemoteAttachment,
    RemoteChat,
    RemoteDelete,
    RemoteEdit,
    RemoteMessage,
    RemoteReaction,
    RemoteReactionRemove,
    RemoteUser,
)
from bridge.types import MessageID, RemoteChatID, RemoteUserID
from tests.contract.harness import FakeHost

from .factories import changed
from .harness import SECRET, WebhookHarness, signature

BASE: dict[str, Any] = {
    "id": "m-1",
    "chat": {"id": "chat-1"},
    "sender": {"id": "cust-1"},
    "text": "hello",
}


def payload(**changes: Any) -> dict[str, Any]:
    return changed(BASE, **changes)


async def test_route_is_registered(connector: WebhookConnector, host: FakeHost) -> None:
    assert connector.inbound_path == "/connectors/support-webhook/events"
    assert ("POST", connector.inbound_path) in host.routes
    assert connector.state.kind == StateKind.CONNECTED


async def test_full_message_maps_every_field(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    status, answer = await harness.post(
        {
            "type": "message",
            "id": "m-42",
            "chat": {"id": "c-9", "name": "Order 9", "topic": "Refund", "is_group": True},
            "sender": {"id": "u-1", "name": "Jane", "avatar_url": "https://cdn.example/j.png"},
            "text": "See attached",
            "html": "<b>See</b> attached",
            "attachments": [
                {
                    "url": "https://files.example/a.pdf",
                    "filename": "a.pdf",
                    "mimetype": "application/pdf",
                    "size": 1234,
                },
                {"url": "http://files.example/b"},
            ],
            "reply_to": "m-41",
            "timestamp": 1700000000.5,
            "notice": True,
            "something_new": {"ignored": [1, 2, 3]},
        }
    )
    assert (status, answer) == (200, {"status": "accepted"})
    assert host.events == [
        RemoteMessage(
            chat=RemoteChat(RemoteChatID("c-9"), "Order 9", "Refund", is_group=True),
            sender=RemoteUser(RemoteUserID("u-1"), "Jane", "https://cdn.example/j.png"),
            timestamp=1700000000.5,
            message_id=MessageID("m-42"),
            text="See attached",
            html="<b>See</b> attached",
            attachments=(
                RemoteAttachment("https://files.example/a.pdf", "a.pdf", "application/pdf", 1234),
                RemoteAttachment("http://files.example/b"),
            ),
            reply_to=MessageID("m-41"),
            notice=True,
        )
    ]


async def test_minimal_message_defaults(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    assert await harness.post_ok(payload()) == "accepted"
    (event,) = host.events
    assert isinstance(event, RemoteMessage)
    assert event.chat == RemoteChat(RemoteChatID("chat-1"))
    assert event.sender == RemoteUser(RemoteUserID("cust-1"))
    assert (event.text, event.html, event.attachments, event.reply_to) == ("hello", None, (), None)
    assert event.timestamp is None and event.notice is False


async def test_single_attachment_without_text(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    attachment = {"url": "https://files.example/x.png", "mimetype": "image/png"}
    await harness.post_ok(payload(text=..., attachment=attachment))
    (event,) = host.events
    assert isinstance(event, RemoteMessage)
    assert event.text == ""
    assert event.attachments == (
        RemoteAttachment("https://files.example/x.png", None, "image/png"),
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"type": "edit", "text": "fixed", "html": "<i>fixed</i>", "edit_id": "e-1"},
            RemoteEdit,
        ),
        ({"type": "delete", "text": ...}, RemoteDelete),
        ({"type": "reaction", "emoji": "👍"}, RemoteReaction),
        ({"type": "reaction_remove", "emoji": "👍"}, RemoteReactionRemove),
    ],
)
async def test_other_types(
    harness: WebhookHarness,
    connector: WebhookConnector,
    host: FakeHost,
    changes: dict[str, Any],
    expected: type,
) -> None:
    await harness.post_ok(payload(**changes))
    (event,) = host.events
    assert type(event) is expected
    assert event.message_id == "m-1"  # type: ignore[attr-defined]
    assert event.chat.id == "chat-1" and event.sender.id == "cust-1"
    if isinstance(event, RemoteEdit):
        assert (event.text, event.html, event.edit_id) == ("fixed", "<i>fixed</i>", "e-1")
    if isinstance(event, RemoteReaction | RemoteReactionRemove):
        assert event.emoji == "👍"


async def test_duplicate_is_acknowledged_but_recorded_once(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    assert await harness.post_ok(payload()) == "accepted"
    assert await harness.post_ok(payload()) == "duplicate"
    assert len(host.events) == 1 and len(host.duplicates) == 1


# ---------------------------------------------------------------------------- signature


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha256=" + "0" * 64,
        "sha1=" + "0" * 40,
        "garbage",
        "sha256=zz\u00e9",
        "t=,sha256=" + "0" * 64,
        "t=1700000000,sha256=" + "0" * 64,
        "t=-5,sha256=" + "0" * 64,
        "t=1e9,sha256=" + "0" * 64,
    ],
)
async def test_bad_signature_is_401(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost, header: str | None
) -> None:
    headers = {} if header is None else {"X-Bridge-Signature": header}
    status, answer = await harness.post(payload(), sign=False, headers=headers)
    assert status == 401
    assert isinstance(answer["error"], str) and "Signature" in answer["error"]
    assert host.events == []


async def test_signature_with_other_secret_is_401(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    status, _ = await harness.post(payload(), secret="another-secret-of-some-length")
    assert status == 401 and host.events == []


async def test_signature_of_other_body_is_401(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    body = json.dumps(payload()).encode()
    forged = signature(json.dumps(payload(text="other")).encode())
    status, _ = await harness.post(body=body, sign=False, headers={"X-Bridge-Signature": forged})
    assert status == 401 and host.events == []


async def test_signature_hex_case_is_ignored(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    body = json.dumps(payload()).encode()
    stamp, digest = signature(body, SECRET).split(",sha256=")
    header = f"{stamp},sha256={digest.upper()}"
    status, _ = await harness.post(body=body, sign=False, headers={"X-Bridge-Signature": header})
    assert status == 200


async def test_signature_without_timestamp_is_401(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    """The old form, an HMAC of the body alone, could be replayed forever."""
    body = json.dumps(payload()).encode()
    header = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    status, answer = await harness.post(
        body=body, sign=False, headers={"X-Bridge-Signature": header}
    )
    assert status == 401
    assert "t=<unix seconds>,sha256=<hex>" in answer["error"]
    assert host.events == []


@pytest.mark.parametrize(
    ("age", "accepted"),
    [(299, True), (-299, True), (301, False), (-301, False), (30 * 86400, False)],
)
async def test_signature_timestamp_must_be_recent(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost, age: int, accepted: bool
) -> None:
    body = json.dumps(payload()).encode()
    header = signature(body, SECRET, int(time.time()) - age)
    status, answer = await harness.post(
        body=body, sign=False, headers={"X-Bridge-Signature": header}
    )
    assert (status == 200) == accepted, answer
    if not accepted:
        assert status == 401 and "timestamp is too" in answer["error"]
        assert host.events == []


async def test_replayed_request_is_refused_after_the_tolerance(
    harness: WebhookHarness, host: FakeHost
) -> None:
    """A captured request (headers and body) sent again later: the connector's tolerance is
    set to 1 second, and the replay is signed as if captured 2 seconds ago."""
    connector = harness.make_connector(host, signature_tolerance=1)
    await connector.start()
    try:
        body = json.dumps(payload()).encode()
        captured = {"X-Bridge-Signature": signature(body, SECRET, int(time.time()) - 2)}
        status, answer = await harness.post(body=body, sign=False, headers=captured)
        assert status == 401 and "too old" in answer["error"]
        assert host.events == []
    finally:
        await connector.stop()


# ---------------------------------------------------------------------------- JSON and schema


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"not json",
        b'{"id": "x",}',
        b"\xff\xfe{}",
        b'{"id": NaN}',
        b'{"timestamp": Infinity}',
        b'{"timestamp": 1' + b"0" * 5000 + b"}",
        b"[" * 30_000 + b"]" * 30_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    ],
)
async def test_malformed_json_is_400(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost, body: bytes
) -> None:
    status, answer = await harness.post(body=body)
    assert status == 400, answer
    assert isinstance(answer["error"], str)
    assert host.events == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"type": "sticker"}, "type"),
        ({"type": 1}, "type"),
        ({"id": ...}, "id"),
        ({"id": ""}, "id"),
        ({"id": 17}, "id"),
        ({"id": "x" * 256}, "id"),
        ({"id": ["m-1"]}, "id"),
        ({"chat": ...}, "chat"),
        ({"chat": "chat-1"}, "chat"),
        ({"chat": [{"id": "chat-1"}]}, "chat"),
        ({"chat": {}}, "chat.id"),
        ({"chat": {"id": 5}}, "chat.id"),
        ({"chat": {"id": {"id": "deep"}}}, "chat.id"),
        ({"chat": {"id": "c", "name": 5}}, "chat.name"),
        ({"chat": {"id": "c", "is_group": "yes"}}, "chat.is_group"),
        ({"sender": ...}, "sender"),
        ({"sender": {"name": "x"}}, "sender.id"),
        ({"sender": {"id": "u", "avatar_url": "javascript:alert(1)"}}, "sender.avatar_url"),
        ({"text": ...}, "text"),
        ({"text": ""}, "text"),
        ({"text": 42}, "text"),
        ({"text": "nul\u0000byte"}, "text"),
        ({"text": "lone \ud800 surrogate"}, "text"),
        ({"html": {"b": 1}}, "html"),
        ({"attachments": {"url": "https://x.example/a"}}, "attachments"),
        ({"attachments": ["https://x.example/a"]}, "attachments[0]"),
        ({"attachments": [{"filename": "a"}]}, "attachments[0].url"),
        ({"attachments": [{"url": "file:///etc/passwd"}]}, "attachments[0].url"),
        ({"attachments": [{"url": "https://x.example/a", "size": "1"}]}, "attachments[0].size"),
        ({"attachments": [{"url": "https://x.example/a", "size": -1}]}, "attachments[0].size"),
        ({"attachments": [{"url": "https://x.example/a", "size": True}]}, "attachments[0].size"),
        ({"attachment": [{"url": "https://x.example/a"}]}, "attachment"),
        (
            {"attachment": {"url": "https://x.example/a"}, "attachments": []},
            "attachment",
        ),
        ({"reply_to": 3}, "reply_to"),
        ({"timestamp": "2024-01-01"}, "timestamp"),
        ({"timestamp": True}, "timestamp"),
        ({"timestamp": -1}, "timestamp"),
        ({"timestamp": 1_700_000_000_000}, "timestamp"),
        ({"notice": "true"}, "notice"),
        ({"type": "edit", "text": ...}, "text"),
        ({"type": "edit", "edit_id": 1}, "edit_id"),
        ({"type": "reaction"}, "emoji"),
        ({"type": "reaction", "emoji": ""}, "emoji"),
        ({"type": "reaction_remove", "emoji": ["👍"]}, "emoji"),
    ],
)
async def test_schema_errors_name_the_field(
    harness: WebhookHarness,
    connector: WebhookConnector,
    host: FakeHost,
    changes: dict[str, Any],
    field: str,
) -> None:
    status, answer = await harness.post(payload(**changes))
    assert status == 400, answer
    assert answer["error"].startswith(f"{field}: "), answer
    assert host.events == []


@pytest.mark.parametrize("body", [[], [BASE], "message", 1, None, True])
async def test_body_must_be_an_object(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost, body: Any
) -> None:
    status, answer = await harness.post(body)
    assert status == 400 and "object" in answer["error"]


async def test_null_optional_fields_are_absent(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    await harness.post_ok(
        payload(type=None, html=None, reply_to=None, timestamp=None, attachments=None, notice=None)
    )
    (event,) = host.events
    assert isinstance(event, RemoteMessage) and event.reply_to is None


# ---------------------------------------------------------------------------- host and lifecycle


async def test_host_failure_answers_503_and_retry_succeeds(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    host.fail_next_events(1)
    status, answer = await harness.post(payload())
    assert status == 503 and "retry" in answer["error"]
    assert host.events == []
    assert await harness.post_ok(payload()) == "accepted"
    assert len(host.events) == 1


async def test_stopped_connector_hands_nothing_over(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    await connector.stop()
    assert connector.state.kind == StateKind.STOPPED
    status, _ = await harness.post(payload())
    assert status == 503 and host.events == []
    await connector.start()  # a restart reuses the route it registered
    assert await harness.post_ok(payload()) == "accepted"


async def test_other_methods_are_refused(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    assert harness.session is not None
    async with harness.session.get(host.route_url("/events")) as resp:
        assert resp.status == 405


@pytest.mark.parametrize("kind", ["message", "edit"])
async def test_html_is_sanitised(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost, kind: str
) -> None:
    html = (
        '<b>hi</b><script>alert(1)</script><iframe src="https://evil.example"></iframe>'
        '<a href="javascript:alert(1)">x</a><img src="https://track.example/p.gif">'
        '<a href="https://ok.example" onclick="steal()">ok</a>'
    )
    assert await harness.post_ok(payload(type=kind, html=html)) == "accepted"
    (event,) = host.events
    assert isinstance(event, RemoteMessage | RemoteEdit)
    assert event.html is not None
    for bad in ("script", "iframe", "javascript:", "onclick", "track.example", "alert"):
        assert bad not in event.html, event.html
    assert "<b>hi</b>" in event.html and 'href="https://ok.example"' in event.html


async def test_html_with_nothing_left_after_sanitising_is_dropped(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    assert await harness.post_ok(payload(html="<script>alert(1)</script>")) == "accepted"
    (event,) = host.events
    assert isinstance(event, RemoteMessage)
    assert (event.text, event.html) == ("hello", None)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sender": {"id": "u" * 256}}, "sender.id"),
        ({"sender": {"id": "é" * 128}}, "sender.id"),
        ({"sender": {"id": "😀" * 64}}, "sender.id"),
        ({"chat": {"id": "c" * 10_000}}, "chat.id"),
        ({"reply_to": "m" * 256}, "reply_to"),
        ({"type": "edit", "edit_id": "e" * 256}, "edit_id"),
    ],
)
async def test_absurd_ids_are_400(
    harness: WebhookHarness,
    connector: WebhookConnector,
    host: FakeHost,
    changes: dict[str, Any],
    field: str,
) -> None:
    status, answer = await harness.post(payload(**changes))
    assert status == 400, answer
    assert answer["error"] == f"{field}: must be at most 255 bytes of UTF-8", answer
    assert host.events == []


async def test_non_ascii_ids_within_255_bytes_are_accepted(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    sender = "é" * 127  # 254 bytes
    assert await harness.post_ok(payload(id="😀" * 63, sender={"id": sender})) == "accepted"
    (event,) = host.events
    assert event.sender.id == sender
