"""The Telegram connector against the local Bot API simulator and a ``FakeHost`` (no Synapse):
polling offsets, the webhook endpoint, what is filtered, downloads, and everything sent from
Matrix as the Bot API sees it (split texts, HTML, replies, errors, reactions, media, limits)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import json
import logging
import re
import struct
import time
import traceback
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram.client.telegram import TelegramAPIServer

from bridge.connector import PermanentDeliveryError, StateKind, TemporaryDeliveryError
from bridge.connectors.telegram import TelegramConnector
from bridge.connectors.telegram.handle_remote import FILE_PREFIX
from bridge.events import (
    MatrixEdit,
    MatrixMedia,
    MatrixMessage,
    MatrixReaction,
    MatrixReactionRemove,
    MatrixTyping,
    MessageRef,
    RemoteAttachment,
    RemoteMessage,
)
from bridge.types import MessageID, PortalKey, RemoteChatID
from tests.connectors.media_support import downloaded, streamed_media
from tests.infra.ports import free_port

from ..conftest import running
from . import updates as tg
from .harness import TOKEN, WEBHOOK_SECRET, FakeHost, TelegramHarness
from .simulator import SECRET_HEADER, MiB, TelegramSimulator

ALICE = 5001
BOB = 5002
_event_ids = itertools.count(1)


def png(width: int = 4, height: int = 3) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x00" * width * 3 for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def harness() -> AsyncIterator[TelegramHarness]:
    async for instance in running(TelegramHarness()):
        instance.sim.add_user(ALICE, "Alice", last_name="Archer", username="alice")
        instance.sim.add_user(BOB, "Bob")
        yield instance


@pytest.fixture
def sim(harness: TelegramHarness) -> TelegramSimulator:
    return harness.sim


@pytest.fixture
async def connector(harness: TelegramHarness, host: FakeHost) -> AsyncIterator[TelegramConnector]:
    """A connector in polling mode, receiving."""
    instance = harness.make_connector(host)
    await instance.start()
    try:
        await harness.sim.wait_for_consumer()
        yield instance
    finally:
        await instance.stop()


@pytest.fixture
async def hook(harness: TelegramHarness, host: FakeHost) -> AsyncIterator[TelegramConnector]:
    """A connector in webhook mode, its webhook set at the simulator."""
    instance = harness.make_connector(
        host, mode="webhook", webhook_url=host.base_url, webhook_secret=WEBHOOK_SECRET
    )
    await instance.start()
    try:
        await harness.sim.wait_for(lambda: harness.sim.webhook_url)
        yield instance
    finally:
        await instance.stop()


def chat(user_id: int = ALICE) -> dict[str, Any]:
    first = "Alice" if user_id == ALICE else "Bob"
    return tg.private_chat({"id": user_id, "first_name": first})


def text_update(text: str, user_id: int = ALICE, **kw: Any) -> dict[str, Any]:
    sender = tg.user(user_id, "Alice" if user_id == ALICE else "Bob")
    return tg.message_update(tg.text_message(tg.private_chat(sender), sender, text, **kw))


def portal(harness: TelegramHarness, chat_id: int | str = ALICE) -> PortalKey:
    return PortalKey(harness.account_id, RemoteChatID(str(chat_id)))


def matrix_message(
    harness: TelegramHarness, text: str, *, chat_id: int | str = ALICE, **fields: Any
) -> MatrixMessage:
    fields.setdefault("msgtype", "m.text")
    return MatrixMessage(
        portal=portal(harness, chat_id),
        event_id=f"$event{next(_event_ids)}:example.com",
        sender="@alice:example.com",
        sender_name="Alice",
        text=text,
        **fields,
    )


def texts(host: FakeHost) -> list[str]:
    return [e.text for e in host.events if isinstance(e, RemoteMessage)]


def calls(sim: TelegramSimulator, method: str, since: int = 0) -> list[Any]:
    return [c for c in sim.requests[since:] if c.method.lower() == method.lower()]


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


def business_updates(sim: TelegramSimulator) -> list[dict[str, Any]]:
    owner = tg.user(9001, "Owner", username="shop_owner")
    connection = sim.add_business_connection("bc-1", owner)
    customer = tg.user(BOB, "Bob")
    msg = tg.text_message(
        tg.private_chat(customer), customer, "hi shop", business_connection_id="bc-1"
    )
    deleted = tg.deleted_business_messages("bc-1", tg.private_chat(customer), [msg["message_id"]])
    return [
        tg.business_connection_update(connection),
        tg.business_message_update(msg),
        tg.edited_business_message_update(tg.edited(msg, text="hi shop!")),
        tg.deleted_business_messages_update(deleted),
    ]


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


# --------------------------------------------------------------------------- downloads


async def test_download_attachment_returns_the_bytes(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost, connector: TelegramConnector
) -> None:
    data = b"%PDF-1.7\n" + bytes(range(256)) * 40
    stored = sim.add_file(data, kind="document", file_name="bill.pdf", mime_type="application/pdf")
    image = png(64, 48)
    photo = sim.add_file(image, kind="photo")
    alice = tg.user(ALICE, "Alice")
    await harness.deliver(
        tg.message_update(tg.document_message(chat(), alice, stored.ref(), file_name="bill.pdf"))
    )
    await harness.deliver(tg.message_update(tg.photo_message(chat(), alice, photo.ref())))
    document_event, photo_event = host.events
    assert isinstance(document_event, RemoteMessage) and isinstance(photo_event, RemoteMessage)
    assert await downloaded(connector, document_event.attachments[0]) == (
        data,
        "application/pdf",
    )
    content, mimetype = await downloaded(connector, photo_event.attachments[0])
    assert content == image and mimetype == "image/jpeg"


async def test_download_over_20_mb_refused_before_downloading(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost, connector: TelegramConnector
) -> None:
    stored = sim.add_file(b"big", kind="document", file_name="huge.zip", file_size=21 * MiB)
    alice = tg.user(ALICE, "Alice")
    msg = tg.document_message(
        chat(), alice, stored.ref(), file_name="huge.zip", mime_type="application/zip"
    )
    await harness.deliver(tg.message_update(msg))
    (event,) = host.events
    assert isinstance(event, RemoteMessage)
    (attachment,) = event.attachments
    assert attachment.size == 21 * MiB
    seen = len(sim.requests)
    with pytest.raises(PermanentDeliveryError) as caught:
        await downloaded(connector, attachment)
    assert "20 MB" in caught.value.reason
    assert "huge.zip" in caught.value.reason
    assert calls(sim, "getFile", seen) == [], "refused from the reported size, before getFile"

    # Size not in the update: getFile refuses it, and the reason is the same.
    unsized = RemoteAttachment(url=FILE_PREFIX + stored.file_id, filename="huge.zip")
    with pytest.raises(PermanentDeliveryError) as caught:
        await downloaded(connector, unsized)
    assert "20 MB" in caught.value.reason


def document(harness: TelegramHarness, sim: TelegramSimulator, data: bytes, name: str) -> Any:
    stored = sim.add_file(data, kind="document", file_name=name, mime_type="application/pdf")
    message = tg.document_message(chat(), tg.user(ALICE, "Alice"), stored.ref(), file_name=name)
    return harness.deliver(tg.message_update(message))


async def test_download_failure_shows_and_logs_no_token(
    harness: TelegramHarness,
    sim: TelegramSimulator,
    host: FakeHost,
    connector: TelegramConnector,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The file URL is /file/bot<token>/<path>; aiohttp's error for it shows the URL. Neither
    the reason (shown in the room) nor the traceback the core logs on each retry has it."""
    caplog.set_level(logging.DEBUG)
    await document(harness, sim, b"%PDF-1.7 receipt", "receipt.pdf")
    (event,) = host.events
    assert isinstance(event, RemoteMessage)
    secret = TOKEN.split(":", 1)[1]
    for serving in ("error", "unreachable"):
        sim.file_serving = "error"
        if serving == "unreachable":  # the file server's address refuses connections
            sim.file_serving = "whole"
            connector.client.session.api = TelegramAPIServer(
                base=connector.client.session.api.base,
                file=f"http://127.0.0.1:{free_port()}/file/bot{{token}}/{{path}}",
            )
        with pytest.raises(TemporaryDeliveryError) as caught:
            await downloaded(connector, event.attachments[0])
        # What the queue does with a failing item: log it with its traceback.
        logging.getLogger("bridge.core.dispatcher").exception(
            "Queue item failed", exc_info=caught.value
        )
        assert "receipt.pdf" in caught.value.reason
        assert secret not in caught.value.reason and secret not in str(caught.value)
    assert "HTTP 500" in caplog.text and "Connect" in caplog.text
    assert secret not in caplog.text


async def test_download_reads_to_the_end(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost, connector: TelegramConnector
) -> None:
    data = b"%PDF-1.7\n" + hashlib.sha256(b"seed").digest() * 65536  # 2 MiB and a bit
    await document(harness, sim, data, "big.pdf")
    (event,) = host.events
    assert isinstance(event, RemoteMessage)
    assert await downloaded(connector, event.attachments[0]) == (data, "application/pdf")


@pytest.mark.parametrize("serving", ["endless", "oversized"])
async def test_download_stops_at_the_limit(
    harness: TelegramHarness,
    sim: TelegramSimulator,
    host: FakeHost,
    connector: TelegramConnector,
    monkeypatch: pytest.MonkeyPatch,
    serving: str,
) -> None:
    """A file server that sends more than getFile said, without end or with a Content-Length
    over the limit, is cut off at the limit: the bridge never holds more."""
    monkeypatch.setattr("bridge.connectors.telegram.connector.DOWNLOAD_LIMIT", 256 * 1024)
    await document(harness, sim, b"%PDF-1.7 small", "small.pdf")
    (event,) = host.events
    assert isinstance(event, RemoteMessage)
    sim.file_serving = serving
    with pytest.raises(PermanentDeliveryError) as caught:
        await downloaded(connector, event.attachments[0])
    assert "small.pdf is over the 0.25 MiB" in caught.value.reason


# --------------------------------------------------------------------------- sending text


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


async def test_long_text_is_split_into_accepted_messages(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    words = "Grüße 😀 aus Köln 👩‍👩‍👧‍👦 " * 400
    emoji_only = "😀" * 3000  # 6000 UTF-16 units, one code point each: no word to cut at
    assert utf16(words) > 4096 and utf16(emoji_only) > 4096
    sent_words, sent_emoji = await asyncio.gather(
        connector.send_message(matrix_message(harness, words)),
        connector.send_message(matrix_message(harness, emoji_only, chat_id=BOB)),
    )
    assert sim.throttled == []
    for chat_id, original, sent in ((ALICE, words, sent_words), (BOB, emoji_only, sent_emoji)):
        parts = [s for s in sim.sent if s.chat_id == chat_id]
        assert len(parts) >= 2
        assert all(s.method == "sendMessage" and s.parse_mode == "HTML" for s in parts)
        assert all(0 < utf16(s.rendered or "") <= 4096 for s in parts)
        assert "".join((s.rendered or "").replace(" ", "") for s in parts) == original.replace(
            " ", ""
        )
        assert sent.message_id == str(parts[0].message_id)


async def test_long_text_retried_after_a_failure_midway_is_not_doubled(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    """The second chunk hits flood control: the core retries the whole message, and only the
    chunks not yet sent go out again."""
    text = " ".join(f"word{n}" for n in range(2500))
    msg = matrix_message(harness, text)
    sim.rate_limit_storm(1, retry_after=1, after=1)
    with pytest.raises(TemporaryDeliveryError):
        await connector.send_message(msg)
    assert len(sim.sent) == 1
    sent = await connector.send_message(msg)
    parts = [s.rendered or "" for s in sim.sent]
    assert len(parts) >= 3
    assert " ".join(parts).split() == text.split()  # each word once, in order
    assert sent.message_id == str(sim.sent[0].message_id)


HOSTILE_HTML = [
    "<b>bold <i>both</b> italic</i> end",
    "<script>alert(1)</script>visible",
    '<a href="javascript:alert(1)">click</a> me',
    "<a href='https://example.com/?a=1&b=<2>&c=\"3\"'>link</a>",
    "<img src=x onerror=alert(1)>after the image",
    "<p>unclosed <b>bold <code>code",
    "</b></i></a>stray closers",
    "&amp;lt; &bogus; &#xD800; &#0; &#x110000; 5 < 6 > 4 & done",
    '<pre><code class="language-&quot;><b>">x = 1</code></pre>',
    "<table><tr><td>cell</td><td>other</td></tr></table>",
    '<span data-mx-spoiler="why">secret</span> and <span data-mx-color="#f00">red</span>',
    "<blockquote><blockquote><blockquote>deep quote</blockquote></blockquote></blockquote>",
    '<font color="red">red</font><u><s><del><strike>x</strike></del></s></u>',
    '<a href="tg://user?id=1">someone</a> <a href="https://matrix.to/#/@a:b">a</a>',
    "<mx-reply><blockquote>quoted</blockquote></mx-reply>the reply",
    '<ol start="-5"><li>one<li>two</ol><ul><li><ul><li>nested</ul></ul>',
    "<b>" * 300 + "very deep" + "</b>" * 300,
    "<b><i><u><s><code>all at once</code></s></u></i></b>",
    "<tg-spoiler>telegram's own</tg-spoiler> <tg-emoji emoji-id='5'>👍</tg-emoji>",
    "<code><b>bold inside code</b></code> <pre><pre>pre in pre</pre></pre>",
    "x<br/><br><hr><h1>Title</h1><details><summary>s</summary>d</details>",
    "<a href='https://example.com/'><a href='https://evil.example/'>nested links</a></a>",
    "\u202eright-to-left\u202c \u0000nul \ud7ff \ufeff zero-width\u200b",
    "<b>" + "long bold text " * 400 + "</b>",
]


async def test_hostile_matrix_html_is_sent_as_html_and_accepted(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    chats = list(range(6001, 6001 + len(HOSTILE_HTML)))
    for chat_id in chats:
        sim.add_user(chat_id, f"Customer {chat_id}")
    await asyncio.gather(
        *(
            connector.send_message(
                matrix_message(harness, "fallback text", html=markup, chat_id=chat_id)
            )
            for chat_id, markup in zip(chats, HOSTILE_HTML, strict=True)
        )
    )
    refused = [c for c in sim.requests if c.status != 200 and c.method != "getUpdates"]
    assert refused == []
    for chat_id, markup in zip(chats, HOSTILE_HTML, strict=True):
        parts = [s for s in sim.sent if s.chat_id == chat_id]
        assert parts, markup
        assert all(s.parse_mode == "HTML" and s.rendered for s in parts), markup
    assert "alert" not in " ".join(s.rendered or "" for s in sim.sent)
    links = [e["url"] for s in sim.sent for e in s.entities if e["type"] == "text_link"]
    assert links and all(url.startswith(("https:", "http:", "tg:")) for url in links), links


async def test_reply_uses_reply_parameters(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost, connector: TelegramConnector
) -> None:
    delivered = await harness.deliver(text_update("where is my order?"))
    question = delivered["message"]["message_id"]
    ref = MessageRef(MessageID(str(question)))
    sent = await connector.send_reply(matrix_message(harness, "on its way", reply_to=ref))
    (record,) = sim.sent
    assert record.params["reply_parameters"]["message_id"] == question
    assert record.reply_to == question
    assert record.message["reply_to_message"]["message_id"] == question
    assert sent.message_id == str(record.message_id)
    assert "reply_to_message_id" not in record.params


async def test_reply_to_a_vanished_message_is_still_sent(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    ref = MessageRef(MessageID("999999"))
    await connector.send_reply(matrix_message(harness, "still here", reply_to=ref))
    (record,) = sim.sent
    assert record.reply_to is None
    assert record.rendered == "still here"


# --------------------------------------------------------------------------- errors


async def test_flood_limit_is_temporary_with_retry_after(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    sim.rate_limit_storm(1, retry_after=7)
    with pytest.raises(TemporaryDeliveryError) as caught:
        await connector.send_message(matrix_message(harness, "too fast"))
    assert caught.value.retry_after == 7
    assert sim.sent == []


async def test_blocked_user_is_permanent_and_says_so(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    sim.set_blocked(ALICE)
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_message(matrix_message(harness, "hello?"))
    assert not isinstance(caught.value, TemporaryDeliveryError)
    assert "the customer has blocked the bot" in caught.value.reason
    assert sim.sent == []


async def test_user_who_never_started_the_bot_is_permanent(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    sim.add_user(7777, "Stranger", started=False)
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_message(matrix_message(harness, "hi", chat_id=7777))
    assert "can't initiate conversation" in caught.value.reason


async def test_editing_to_the_same_text_is_not_an_error(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    sent = await connector.send_message(matrix_message(harness, "Same <text> & more"))

    def edit(text: str) -> MatrixEdit:
        return MatrixEdit(
            portal=portal(harness),
            event_id=f"$edit{next(_event_ids)}:example.com",
            sender="@alice:example.com",
            target=MessageRef(sent.message_id),
            text=text,
        )

    await connector.handle_matrix_edit(edit("Same <text> & more"))
    assert sim.edits == []
    (call,) = calls(sim, "editMessageText")
    assert "message is not modified" in (call.description or "")
    await connector.handle_matrix_edit(edit("Changed <text>"))
    (record,) = sim.edits
    assert record.rendered == "Changed <text>"


async def test_edit_of_a_caption(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    sent = await connector.send_media(
        matrix_message(harness, "old caption", msgtype="m.file", media=media(b"data", "a.txt"))
    )
    await connector.handle_matrix_edit(
        MatrixEdit(
            portal=portal(harness),
            event_id="$edit:example.com",
            sender="@alice:example.com",
            target=MessageRef(sent.message_id),
            text="new caption",
        )
    )
    (record,) = sim.edits
    assert record.method == "editMessageCaption" and record.rendered == "new caption"


# --------------------------------------------------------------------------- reactions, typing


async def customer_message(harness: TelegramHarness, text: str = "thanks!") -> MessageRef:
    delivered = await harness.deliver(text_update(text))
    return MessageRef(MessageID(str(delivered["message"]["message_id"])))


def reaction(harness: TelegramHarness, target: MessageRef, emoji: str) -> MatrixReaction:
    return MatrixReaction(
        portal=portal(harness),
        event_id=f"$react{next(_event_ids)}:example.com",
        sender="@alice:example.com",
        target=target,
        emoji=emoji,
    )


async def test_reaction_telegram_does_not_offer_is_permanent(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    target = await customer_message(harness)
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.handle_matrix_reaction(reaction(harness, target, "🦜"))
    assert "🦜" in caught.value.reason
    assert sim.reactions == []


async def test_heart_with_variation_selector_is_sent_without_it(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    target = await customer_message(harness)
    await connector.handle_matrix_reaction(reaction(harness, target, "❤️"))
    (record,) = sim.reactions
    assert record.emojis == ["❤"]
    assert record.message_id == int(target.message_id)
    await connector.handle_matrix_reaction_remove(
        MatrixReactionRemove(
            portal=portal(harness),
            event_id="$unreact:example.com",
            sender="@alice:example.com",
            target=target,
            emoji="❤️",
        )
    )
    assert sim.reactions[-1].emojis == []
    assert sim.message_reaction(ALICE, int(target.message_id)) == []


async def test_typing_sends_the_typing_action(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    await connector.handle_matrix_typing(
        MatrixTyping(portal=portal(harness), sender="@alice:example.com", typing=False)
    )
    assert sim.actions == []
    await connector.handle_matrix_typing(
        MatrixTyping(portal=portal(harness), sender="@alice:example.com", typing=True)
    )
    (action,) = sim.actions
    assert action.action == "typing" and action.chat_id == ALICE


async def test_bot_api_unreachable_gives_delivery_errors_without_the_token(
    harness: TelegramHarness, connector: TelegramConnector
) -> None:
    """Typing too: the core expects a DeliveryError from it, not aiogram's network error."""
    connector.client.session.api = TelegramAPIServer.from_base(f"http://127.0.0.1:{free_port()}")
    typing = MatrixTyping(portal=portal(harness), sender="@alice:example.com", typing=True)
    for call in (
        lambda: connector.handle_matrix_typing(typing),
        lambda: connector.send_message(matrix_message(harness, "hello")),
    ):
        with pytest.raises(TemporaryDeliveryError) as caught:
            await call()
        assert "Telegram unreachable" in caught.value.reason
        shown = "".join(traceback.format_exception(caught.value))
        assert TOKEN.split(":", 1)[1] not in shown


# --------------------------------------------------------------------------- media


def media(data: bytes, filename: str, mimetype: str = "text/plain") -> MatrixMedia:
    async def download() -> bytes:
        return data

    return MatrixMedia(f"mxc://example.com/{filename}", filename, mimetype, len(data), download)


@pytest.mark.parametrize(
    ("msgtype", "mimetype", "filename", "method"),
    [
        ("m.image", "image/png", "photo.png", "sendPhoto"),
        ("m.image", "image/jpeg", "photo.jpg", "sendPhoto"),
        ("m.image", "image/webp", "photo.webp", "sendPhoto"),
        ("m.image", "image/gif", "funny.gif", "sendAnimation"),
        ("m.image", "image/svg+xml", "logo.svg", "sendDocument"),
        ("m.video", "video/mp4", "clip.mp4", "sendVideo"),
        ("m.audio", "audio/mpeg", "song.mp3", "sendAudio"),
        ("m.file", "application/pdf", "invoice.pdf", "sendDocument"),
        ("m.file", "image/png", "scan.png", "sendDocument"),
    ],
)
async def test_send_media_picks_the_method(
    harness: TelegramHarness,
    sim: TelegramSimulator,
    connector: TelegramConnector,
    msgtype: str,
    mimetype: str,
    filename: str,
    method: str,
) -> None:
    data = png(8, 8) if mimetype.startswith("image/") else b"\x00\x01content" * 64
    sent = await connector.send_media(
        matrix_message(
            harness,
            "Here <you> go",
            msgtype=msgtype,
            media=media(data, filename, mimetype),
        )
    )
    (record,) = sim.sent
    assert record.method == method
    assert record.data == data
    assert record.filename == filename
    assert record.rendered == "Here <you> go"
    assert record.parse_mode == "HTML"
    assert sent.message_id == str(record.message_id)


async def test_send_media_without_caption(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    await connector.send_media(
        matrix_message(harness, "", msgtype="m.file", media=media(b"abc", "notes.txt"))
    )
    (record,) = sim.sent
    assert record.rendered is None and record.data == b"abc"


async def test_long_caption_goes_first_as_its_own_message(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    caption = "A long description of the attached file. " * 30
    assert len(caption) > 1024
    sent = await connector.send_media(
        matrix_message(harness, caption, msgtype="m.file", media=media(b"%PDF", "doc.pdf"))
    )
    text, document = sim.sent
    assert text.method == "sendMessage"
    assert (text.rendered or "").split() == caption.split()
    assert document.method == "sendDocument"
    assert document.rendered is None and document.data == b"%PDF"
    assert sent.message_id == str(document.message_id)
    assert sim.throttled == []


async def test_caption_within_1024_characters_stays_a_caption(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    """Telegram counts a caption's length after parsing the HTML: a plain caption of 960
    characters with ampersands (each escaped to five in the HTML) is one captioned file."""
    caption = "Tom & Jerry " * 80
    assert tg.utf16_len(caption.strip()) <= 1024
    await connector.send_media(
        matrix_message(harness, caption, msgtype="m.file", media=media(b"%PDF", "doc.pdf"))
    )
    assert [s.method for s in sim.sent] == ["sendDocument"], "caption sent apart"
    assert sim.sent[0].rendered == caption.strip()


async def test_caption_length_is_measured_on_what_is_sent(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    """The caption Telegram gets is the HTML's text, whatever the plain body says: when that
    is over 1024 characters it goes first as a message, it is never refused."""
    html = "<ul>" + "<li>an item of the order</li>" * 50 + "</ul>"
    await connector.send_media(
        matrix_message(
            harness, "the order", html=html, msgtype="m.file", media=media(b"%PDF", "o.pdf")
        )
    )
    assert [s.method for s in sim.sent] == ["sendMessage", "sendDocument"]
    assert sim.sent[0].rendered and sim.sent[0].rendered.count("an item of the order") == 50


async def test_send_into_a_business_chat_uses_its_connection(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost
) -> None:
    connector = harness.make_connector(host, business=True)
    await connector.start()
    try:
        for update in business_updates(sim)[:2]:
            await harness.deliver(update)
        (event,) = host.events
        message = matrix_message(
            harness,
            "thanks for writing",
            chat_id=event.chat.id,
            reply_to=MessageRef(
                event.message_id  # type: ignore[attr-defined]
            ),
        )
        await connector.send_reply(message)
    finally:
        await connector.stop()
    (record,) = sim.sent
    assert record.business_connection_id == "bc-1"
    assert record.chat_id == BOB
    assert record.reply_to == int(event.message_id)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- rate limits


async def test_burst_to_one_chat_never_hits_flood_control(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    """The simulator enforces Telegram's limits (a private chat: 1/s after a burst of 3); the
    connector's limiter spaces five concurrent sends so that none is refused."""
    assert sim.rate_limits.enabled
    started = time.monotonic()
    results = await asyncio.gather(
        *(connector.send_message(matrix_message(harness, f"message {n}")) for n in range(5))
    )
    elapsed = time.monotonic() - started
    print(f"\n5 messages to one private chat took {elapsed:.2f} s, no 429")
    assert sim.throttled == []
    assert [s.rendered for s in sim.sent] == [f"message {n}" for n in range(5)]
    assert [r.message_id for r in results] == [str(s.message_id) for s in sim.sent]
    assert elapsed < 10


async def test_flood_wait_holds_back_the_next_send_to_that_chat(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    sim.rate_limit_storm(1, retry_after=2)
    with pytest.raises(TemporaryDeliveryError):
        await connector.send_message(matrix_message(harness, "refused"))
    started = time.monotonic()
    await connector.send_message(matrix_message(harness, "later"))
    assert time.monotonic() - started >= 1.9
    assert [s.rendered for s in sim.sent] == ["later"]
    assert len(sim.throttled) == 1


async def test_other_chats_are_not_held_back(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    await connector.send_message(matrix_message(harness, "to Alice"))
    started = time.monotonic()
    await connector.send_message(matrix_message(harness, "to Bob", chat_id=BOB))
    assert time.monotonic() - started < 0.5


async def test_stop_closes_the_session(harness: TelegramHarness, host: FakeHost) -> None:
    connector = harness.make_connector(host)
    await connector.start()
    await harness.sim.wait_for_consumer()
    await asyncio.wait_for(connector.stop(), timeout=5)
    assert connector.state.kind == StateKind.STOPPED
    session = connector.client.bot.session
    inner: aiohttp.ClientSession | None = getattr(session, "_session", None)
    assert inner is None or inner.closed


async def test_a_large_staff_file_is_sent_from_its_spool(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    data = bytes(range(256)) * (12 * 1024) + b"end"  # 3 MiB: spooled to disk, sent in chunks
    staff_file, calls = streamed_media(data, "big.bin", "application/octet-stream")
    await connector.send_media(matrix_message(harness, "", msgtype="m.file", media=staff_file))
    (record,) = sim.sent
    assert record.method == "sendDocument"
    assert record.data == data
    assert calls == ["open"]  # never downloaded whole
