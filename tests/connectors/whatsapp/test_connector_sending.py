"""Everything sent from Matrix as the Graph API sees it: the 24-hour window, error codes, texts,
replies, reactions, read receipts and media (limits, spooled files)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bridge.connector import PermanentDeliveryError, TemporaryDeliveryError
from bridge.connectors.whatsapp import WhatsAppConnector
from bridge.connectors.whatsapp.capabilities import UPLOAD_LIMITS
from bridge.events import MatrixReaction, MatrixReactionRemove, MatrixReadReceipt, MessageRef
from bridge.types import MessageID, RemoteChatID, RemoteUserID
from tests.connectors.media_support import streamed_media
from tests.contract.harness import FakeHost

from . import connector_support
from . import payloads as wa
from .connector_support import (
    ALICE,
    BOB,
    HOUR,
    JPEG,
    customer_writes,
    matrix_message,
    media,
    nothing_requested,
    only,
    portal,
)
from .harness import WhatsAppHarness
from .simulator import MiB, WhatsAppSimulator

# The fixtures shared by these tests (see connector_support).
harness = connector_support.harness
sim = connector_support.sim


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
