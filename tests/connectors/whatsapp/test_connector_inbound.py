"""Every inbound WhatsApp message kind and status as remote events, and media downloads through
the media node (token, checksum, limits)."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import pytest

from bridge.connector import PermanentDeliveryError, TemporaryDeliveryError
from bridge.connectors.whatsapp import WhatsAppConnector
from bridge.connectors.whatsapp.client import MAX_ANSWER
from bridge.connectors.whatsapp.client import _error as graph_error
from bridge.connectors.whatsapp.handle_remote import MEDIA_PREFIX
from bridge.events import (
    RemoteAttachment,
    RemoteDeliveryFailure,
    RemoteDeliveryReceipt,
    RemoteMessage,
    RemoteReaction,
    RemoteReactionRemove,
    RemoteReadReceipt,
)
from tests.connectors.media_support import downloaded
from tests.contract.harness import FakeHost

from . import connector_support
from . import payloads as wa
from .connector_support import (
    ALICE,
    JPEG,
    MediaServingSimulator,
    customer_writes,
    matrix_message,
    only,
)
from .harness import WhatsAppHarness
from .simulator import WhatsAppSimulator

# The fixtures shared by these tests (see connector_support).
harness = connector_support.harness
sim = connector_support.sim


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
    assert event.metadata == {
        "portal": {"last_inbound_at": float(int(sent_at))},
        "routing": {"start": "Is *order 17* _really_ ~late~? `A-17`"},
    }
    assert not event.notice and event.reply_to is None and event.attachments == ()


async def test_click_to_chat_text_and_ad_referral_are_routing_facts(
    sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    message = wa.text_message(ALICE, "  Spring offer  ")
    message["referral"] = {
        "source_id": "ad-123", "source_type": "ad", "headline": "Spring", "body": "ignored",
        "source_url": "x" * 2000, "ctwa_clid": ["not", "a", "string"],
    }  # fmt: skip
    await customer_writes(sim, message)
    event = only(host)
    assert event.metadata["routing"] == {
        "start": "Spring offer",
        "fields": {"referral": {"source_id": "ad-123", "source_type": "ad", "headline": "Spring"}},
    }
    await customer_writes(sim, wa.text_message(ALICE, "y" * 257))
    assert "routing" not in host.events[-1].metadata  # too long for a click-to-chat text


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
