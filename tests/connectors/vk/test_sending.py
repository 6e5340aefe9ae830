"""Connector -> VK: text, long text in parts, replies, edits, deletions, photos and documents
through the upload servers; VK's limits and errors (error 6 retried in order, 901 a permanent
failure with a clear reason); ``random_id`` from the Matrix event, so that a repeat after a
crash never reaches the customer twice."""

from __future__ import annotations

import asyncio

import pytest

from bridge.connector import PermanentDeliveryError, TemporaryDeliveryError
from bridge.connectors.vk import VKConnector
from bridge.connectors.vk.handle_matrix import random_id
from bridge.events import MatrixEdit, MatrixMedia, MatrixRedaction, MessageRef
from bridge.types import MessageID, PortalKey, RemoteChatID
from tests.contract.harness import FakeHost, staff_message

from .harness import VKHarness

CUSTOMER = 700_000_201


@pytest.fixture(autouse=True)
def quick_backoff(connector: VKConnector) -> None:
    connector.client.backoff = 0.01


def portal(harness: VKHarness, peer: int = CUSTOMER) -> PortalKey:
    harness.sim.allow(peer)
    return PortalKey(harness.account_id, RemoteChatID(str(peer)))


def media(data: bytes, name: str, mime: str) -> MatrixMedia:
    async def download() -> bytes:
        return data

    return MatrixMedia(f"mxc://example.com/{name}", name, mime, len(data), download)


async def test_text_reply_edit_delete(harness: VKHarness, connector: VKConnector) -> None:
    key = portal(harness)
    first = await connector.send_message(staff_message(key, "Alice: Hello"))
    ref = MessageRef(first.message_id)
    reply = await connector.send_reply(staff_message(key, "Alice: see above", reply_to=ref))
    await connector.handle_matrix_edit(
        MatrixEdit(key, "$e:x", "@alice:x", MessageRef(reply.message_id), "Alice: fixed")
    )
    await connector.handle_matrix_redaction(MatrixRedaction(key, "$r:x", "@alice:x", ref))
    one, two = harness.sim.sent
    assert first.message_id == f"{CUSTOMER}_1" and reply.message_id == f"{CUSTOMER}_2"
    assert one.text == "Alice: Hello" and one.deleted
    assert two.reply_to == 1 and two.edits == ["Alice: fixed"]


async def test_long_text_goes_in_parts_each_with_its_random_id(
    harness: VKHarness, connector: VKConnector
) -> None:
    text = ("word " * 1000).strip()  # 4999 characters: two parts
    msg = staff_message(portal(harness), text)
    await connector.send_message(msg)
    parts = harness.sim.sent
    assert [len(p.text) for p in parts] == [4094, 904]
    assert " ".join(p.text for p in parts) == text
    assert [p.random_id for p in parts] == [
        random_id(f"{msg.event_id}:text:0"), random_id(f"{msg.event_id}:text:1"),
    ]  # fmt: skip


async def test_a_repeat_after_a_crash_is_dropped_by_random_id(
    harness: VKHarness, connector: VKConnector, host: FakeHost
) -> None:
    msg = staff_message(portal(harness), "only once")
    first = await connector.send_message(msg)
    # The bridge crashed before it recorded the send: a new connector sends the event again.
    again = harness.make_connector(host)  # sending needs no start
    second = await again.send_message(msg)
    assert second.message_id == first.message_id
    (sent,) = harness.sim.sent
    assert sent.repeats == 1
    assert random_id("x") == random_id("x") and 0 < random_id("x") < 2**31


async def test_photo_and_document(harness: VKHarness, connector: VKConnector) -> None:
    key = portal(harness)
    jpeg, pdf = b"\xff\xd8" + bytes(300), b"%PDF-1.4" + bytes(300)
    photo = staff_message(
        key, "pic.jpg", msgtype="m.image", media=media(jpeg, "pic.jpg", "image/jpeg")
    )
    doc = staff_message(
        key, "a.pdf", msgtype="m.file", media=media(pdf, "a.pdf", "application/pdf")
    )
    await connector.send_media(photo)
    await connector.send_media(doc)
    one, two = harness.sim.sent
    assert one.attachments[0].startswith("photo-") and one.files[0].data == jpeg
    assert two.attachments[0].startswith("doc-") and two.files[0].data == pdf
    assert two.files[0].filename == "a.pdf"


async def test_error_6_is_retried_in_order(harness: VKHarness, connector: VKConnector) -> None:
    key = portal(harness)
    harness.sim.storm(2, 6)
    await connector.send_message(staff_message(key, "first"))
    await connector.send_message(staff_message(key, "second"))
    assert [m.text for m in harness.sim.sent] == ["first", "second"]
    assert [r.code for r in harness.sim.rejected] == [6, 6]
    harness.sim.storm(4, 6)  # past the retries in place: the core's backoff takes over
    with pytest.raises(TemporaryDeliveryError) as caught:
        await connector.send_message(staff_message(key, "third"))
    assert caught.value.retry_after == 1.0 and "VK error 6" in caught.value.reason


async def test_the_rate_is_kept(harness: VKHarness, connector: VKConnector) -> None:
    key = portal(harness)
    await asyncio.gather(*(connector.send_message(staff_message(key, f"{i}")) for i in range(24)))
    assert len(harness.sim.sent) == 24
    assert harness.sim.rejected == []


async def test_no_permission_is_a_permanent_failure_with_a_reason(
    harness: VKHarness, connector: VKConnector
) -> None:
    key = PortalKey(harness.account_id, RemoteChatID(str(CUSTOMER + 1)))  # never wrote
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_message(staff_message(key, "hello?"))
    assert "wrote to it first or allowed its messages" in caught.value.reason
    assert "901" in caught.value.reason
    assert harness.sim.sent == []


async def test_too_old_to_edit_and_oversized_file(
    harness: VKHarness, connector: VKConnector
) -> None:
    key = portal(harness)
    sent = await connector.send_message(staff_message(key, "old"))
    harness.sim.clock.advance(25 * 3600)
    with pytest.raises(PermanentDeliveryError, match="over a day old"):
        await connector.handle_matrix_edit(
            MatrixEdit(key, "$e:x", "@a:x", MessageRef(MessageID(sent.message_id)), "new")
        )
    big = MatrixMedia("mxc://x/big", "big.bin", "application/zip", 300 * 2**20, _never)
    with pytest.raises(PermanentDeliveryError, match="200 MB"):
        await connector.send_media(staff_message(key, "big.bin", msgtype="m.file", media=big))


async def _never() -> bytes:
    raise AssertionError("downloaded a file that is over the limit")
