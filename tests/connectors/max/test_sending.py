"""Matrix -> MAX against the simulator: text, HTML, long text, replies, edits, deletions,
media uploads, limits and errors."""

from __future__ import annotations

import pytest

from bridge.connector import PermanentDeliveryError, TemporaryDeliveryError
from bridge.connectors.max import MaxConnector
from bridge.connectors.max import handle_matrix as max_matrix
from bridge.connectors.whatsapp.client import PairLimiter
from bridge.events import MatrixEdit, MatrixMedia, MatrixRedaction, MessageRef
from tests.contract.harness import FakeHost

from .harness import MaxHarness
from .support import ALICE, deliver, dialog, portal, staff


@pytest.fixture(autouse=True)
def _unspaced(request: pytest.FixtureRequest) -> None:
    """Sends are spaced to MAX's 2 a second per chat; only ``test_rates_respected`` waits for
    that, the others send at once (and the simulator does not count)."""
    if "connector" in request.fixturenames and request.node.name != "test_rates_respected":
        connector = request.getfixturevalue("connector")
        connector.client.limiter = PairLimiter(1000, per_user=1e-3, per_number=1e-3)
        request.getfixturevalue("harness").sim.rate.enabled = False


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4


def media(data: bytes, name: str, mimetype: str) -> MatrixMedia:
    async def download() -> bytes:
        return data

    return MatrixMedia("mxc://example.com/f", name, mimetype, len(data), download)


async def test_html_goes_out_in_max_format(harness: MaxHarness, connector: MaxConnector) -> None:
    chat = dialog(harness.sim)
    html = "<p>Your <b>order</b> <a href='https://shop.example/42'>42</a></p><ul><li>tea</li></ul>"
    await connector.send_message(staff(chat, "Your order 42", html=html))
    (sent,) = harness.sim.sent
    assert sent.format == "html"
    assert sent.text == 'Your <b>order</b> <a href="https://shop.example/42">42</a>\n\n• tea'
    assert sent.plain == "Your order 42\n\n• tea"
    assert sent.chat_id == int(chat)


async def test_long_text_split_at_the_limit(harness: MaxHarness, connector: MaxConnector) -> None:
    text = ("word " * 2000).strip()  # 9999 characters
    sent = await connector.send_message(staff(dialog(harness.sim), text))
    parts = harness.sim.sent
    assert len(parts) == 3 and all(len(p.text or "") <= 4000 for p in parts)
    assert " ".join(p.text or "" for p in parts) == text
    assert sent.message_id == parts[0].mid


async def test_reply_edit_delete(harness: MaxHarness, connector: MaxConnector) -> None:
    sim = harness.sim
    chat = dialog(sim)
    update = sim.customer_message(ALICE, "Anna", "Where is my parcel?")
    await deliver(harness, update)
    mid = update["message"]["body"]["mid"]
    sent = await connector.send_reply(staff(chat, "On its way", reply_to=MessageRef(mid)))
    assert sim.sent[0].reply_to == mid
    target = MessageRef(sent.message_id)
    await connector.handle_matrix_edit(
        MatrixEdit(portal(chat), "$e2", "@alice:example.com", target, "Arrives today")
    )
    assert [(e.mid, e.plain) for e in sim.edits] == [(sent.message_id, "Arrives today")]
    await connector.handle_matrix_redaction(
        MatrixRedaction(portal(chat), "$e3", "@alice:example.com", target)
    )
    assert [d.mid for d in sim.deletions] == [sent.message_id]
    # The customer's message is not the bot's to change.
    with pytest.raises(PermanentDeliveryError):
        await connector.handle_matrix_redaction(
            MatrixRedaction(portal(chat), "$e4", "@alice:example.com", MessageRef(mid))
        )


async def test_delete_after_a_day_is_permanent(
    harness: MaxHarness, connector: MaxConnector
) -> None:
    chat = dialog(harness.sim)
    sent = await connector.send_message(staff(chat, "old news"))
    harness.sim.clock.advance(25 * 3600)
    with pytest.raises(PermanentDeliveryError):
        await connector.handle_matrix_redaction(
            MatrixRedaction(portal(chat), "$d", "@alice:example.com", MessageRef(sent.message_id))
        )


async def test_image_and_file_uploads(harness: MaxHarness, connector: MaxConnector) -> None:
    sim = harness.sim
    chat = dialog(sim)
    image = staff(chat, "", msgtype="m.image", media=media(JPEG, "photo.jpg", "image/jpeg"))
    image = image.__class__(**{**image.__dict__, "prefix": "Alice: "})
    await connector.send_media(image)
    pdf = b"%PDF-1.4 " + bytes(3000)
    await connector.send_media(
        staff(
            chat,
            "the invoice",
            msgtype="m.file",
            media=media(pdf, "invoice.pdf", "application/pdf"),
        )
    )
    first, second = sim.sent
    assert first.attachments[0]["type"] == "image" and first.uploads[0].data == JPEG
    assert first.text == "Alice:"  # the sender's name goes along as the caption
    assert second.attachments[0]["type"] == "file"
    assert (second.uploads[0].filename, second.uploads[0].data) == ("invoice.pdf", pdf)
    assert second.text == "the invoice"
    assert sim.slots == {}, "every one-time upload URL was used"


async def test_waits_while_the_upload_is_processed(
    harness: MaxHarness, connector: MaxConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(max_matrix, "NOT_READY_DELAY", 0.01)
    harness.sim.processing = 2
    await connector.send_media(
        staff(
            dialog(harness.sim),
            "clip",
            msgtype="m.video",
            media=media(b"v" * 100, "a.mp4", "video/mp4"),
        )
    )
    assert harness.sim.refusals("attachment.not.ready") == 2
    assert len(harness.sim.sent) == 1 and len(harness.sim.uploads) == 1  # uploaded once


async def test_429_is_temporary_with_retry_after_and_order_kept(
    harness: MaxHarness, connector: MaxConnector
) -> None:
    chat = dialog(harness.sim)
    harness.sim.fail(1, 429)
    with pytest.raises(TemporaryDeliveryError) as caught:
        await connector.send_message(staff(chat, "first"))
    assert caught.value.retry_after == 1.0
    await connector.send_message(staff(chat, "first"))
    await connector.send_message(staff(chat, "second"))
    assert [s.text for s in harness.sim.sent] == ["first", "second"]


async def test_5xx_temporary_and_denied_chat_permanent(
    harness: MaxHarness, connector: MaxConnector
) -> None:
    chat = dialog(harness.sim)
    harness.sim.fail(1, 503, "service.unavailable")
    with pytest.raises(TemporaryDeliveryError):
        await connector.send_message(staff(chat, "hello"))
    harness.sim.denied.add(int(chat))
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_message(staff(chat, "hello"))
    assert not isinstance(caught.value, TemporaryDeliveryError)
    assert "does not let the bot write in this chat" in caught.value.reason


async def test_rates_respected(harness: MaxHarness, connector: MaxConnector) -> None:
    """Four messages to one chat at once: the connector spaces them to the chat rate, so the
    simulator (2 a second per chat) throttles none."""
    chat = dialog(harness.sim)
    for index in range(4):
        await connector.send_message(staff(chat, f"part {index}"))
    assert harness.sim.rate.throttled == []
    assert len(harness.sim.sent) == 4


async def test_wrong_token_disconnected(harness: MaxHarness, host: FakeHost) -> None:
    connector = harness.make_connector(host, token="not-the-right-token-000000")
    await connector.start()
    try:
        assert host.state is not None and host.state.kind == "disconnected"
        assert "Invalid access_token" in host.state.message
        assert "not-the-right-token" not in host.state.message
    finally:
        await connector.stop()


async def test_typing_and_read_as_chat_actions(
    harness: MaxHarness, connector: MaxConnector
) -> None:
    from bridge.events import MatrixReadReceipt, MatrixTyping
    from bridge.types import RemoteUserID

    sim = harness.sim
    chat = dialog(sim)
    update = sim.customer_message(ALICE, "Anna", "Hello?")
    await deliver(harness, update)
    mid = update["message"]["body"]["mid"]
    for typing in (True, False):  # MAX has no "stopped typing": nothing is sent for False
        await connector.handle_matrix_typing(MatrixTyping(portal(chat), "@a:example.com", typing))
    own = await connector.send_message(staff(chat, "Hi"))
    for target in (MessageRef(own.message_id), MessageRef(mid, sender=RemoteUserID(str(ALICE)))):
        await connector.handle_matrix_read_receipt(
            MatrixReadReceipt(portal(chat), "@a:example.com", target)
        )
    assert [(c, a, seen) for c, a, _, seen in sim.actions] == [
        (int(chat), "typing_on", mid),
        (int(chat), "mark_seen", mid),
    ]
