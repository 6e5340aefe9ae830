"""The Telegram connector's files: downloads (limits, failures without the token) and media sent
from Matrix as the Bot API sees it (method per type, captions, business chats, spooled files)."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import pytest
from aiogram.client.telegram import TelegramAPIServer

from bridge.connector import PermanentDeliveryError, TemporaryDeliveryError
from bridge.connectors.telegram import TelegramConnector
from bridge.connectors.telegram.handle_remote import FILE_PREFIX
from bridge.events import MessageRef, RemoteAttachment, RemoteMessage
from tests.connectors.media_support import downloaded, streamed_media
from tests.contract.harness import FakeHost
from tests.infra.ports import free_port

from . import connector_support
from . import updates as tg
from .connector_support import ALICE, BOB, business_updates, calls, chat, matrix_message, media
from .harness import TOKEN, TelegramHarness
from .sim_support import png
from .simulator import MiB, TelegramSimulator

# The fixtures shared by these tests (see connector_support).
harness = connector_support.harness
sim = connector_support.sim
connector = connector_support.connector
hook = connector_support.hook


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


# --------------------------------------------------------------------------- media


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
