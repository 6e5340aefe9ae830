"""Ids Meta never sends: a wamid or wa_id becomes part of a database key (chat, sender,
message), so one with NUL or a lone surrogate (JSON escapes can carry both) refuses the
payload as a whole, before anything is recorded; long and non-ASCII ones are taken as they
are, and a reply to an id no message can have is a plain message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.connector import PermanentDeliveryError
from bridge.connectors.whatsapp import WhatsAppConnector
from bridge.connectors.whatsapp.handle_remote import MEDIA_PREFIX, PayloadError, parse_payload
from bridge.events import RemoteAttachment, RemoteDeliveryReceipt, RemoteMessage, RemoteReaction

from ..conftest import running
from . import payloads as wa
from .harness import WhatsAppHarness

NUMBER = "109876543210987"
CUSTOMER = "491701234567"
UNSTORABLE = ["4917\x00012", "wamid.\ud800", "\udfff"]


def payload(*, messages: Any = None, statuses: Any = None) -> dict[str, Any]:
    return wa.envelope(
        waba_id="104455667788990",
        phone_number_id=NUMBER,
        display_phone_number="15550001234",
        messages=messages,
        statuses=statuses,
    )


@pytest.mark.parametrize("odd", UNSTORABLE)
@pytest.mark.parametrize(
    "field",
    ["message.from", "message.id", "reaction.message_id", "status.id", "status.recipient_id"],
)
def test_an_unstorable_id_refuses_the_payload(field: str, odd: str) -> None:
    if field.startswith("status."):
        status = wa.status_update(wa.new_wamid(CUSTOMER), "delivered", CUSTOMER)
        status[field.removeprefix("status.")] = odd
        body = payload(statuses=[status])
    elif field == "reaction.message_id":
        body = payload(messages=[wa.reaction_message(CUSTOMER, odd, "👍")])
    else:
        message = wa.text_message(CUSTOMER, "hi")
        message[field.removeprefix("message.")] = odd
        body = payload(messages=[message])
    with pytest.raises(PayloadError, match="NUL or a lone surrogate"):
        parse_payload(body, NUMBER)


@pytest.mark.parametrize("odd", UNSTORABLE)
def test_a_reply_to_an_unstorable_id_is_a_plain_message(odd: str) -> None:
    message = wa.text_message(CUSTOMER, "hi", context=wa.reply_context("15550001234", odd))
    (event,) = parse_payload(payload(messages=[message]), NUMBER)
    assert isinstance(event, RemoteMessage) and event.reply_to is None and event.text == "hi"


@pytest.mark.parametrize(
    "odd", ["4917012345678" * 5_400, "例え.テスト", "😀👍🏽" * 1_000, "\u202e491701", "+49 170 1"]
)
def test_long_and_non_ascii_ids_are_taken_as_they_are(odd: str) -> None:
    message = wa.text_message(odd, "hi", context=wa.reply_context("15550001234", odd))
    message["id"] = odd
    reaction = wa.reaction_message(odd, odd, "👍")
    status = wa.status_update(odd, "delivered", odd)
    text, liked, delivered = parse_payload(
        payload(messages=[message, reaction], statuses=[status]), NUMBER
    )
    assert isinstance(text, RemoteMessage) and text.message_id == text.reply_to == odd
    assert text.chat.id == text.sender.id == odd
    assert isinstance(liked, RemoteReaction) and liked.message_id == odd
    assert isinstance(delivered, RemoteDeliveryReceipt) and delivered.chat.id == odd


@pytest.mark.parametrize("odd", UNSTORABLE)
def test_a_profile_name_no_database_can_hold_is_cleaned(odd: str) -> None:
    message = wa.text_message(CUSTOMER, "hi")
    body = payload(messages=[message])
    body["entry"][0]["changes"][0]["value"]["contacts"] = [wa.contact_profile(CUSTOMER, odd)]
    (event,) = parse_payload(body, NUMBER)
    clean = "".join("\ufffd" if ch == "\x00" or "\ud800" <= ch <= "\udfff" else ch for ch in odd)
    assert event.chat.name == event.sender.displayname == clean


# --------------------------------------------------------------------------- media


@pytest.fixture
async def harness() -> AsyncIterator[WhatsAppHarness]:
    async for instance in running(WhatsAppHarness(earlier_conversations=False)):
        yield instance


@pytest.mark.parametrize(
    "media_id",
    ["../../me", "..", "1234?fields=id", "1234#x", "12/34", "%2e%2e", "id\ud800", "a\x00b"]
    + ["例え", "😀" * 2_000, "7" * 70_000, ""],
)
async def test_a_media_id_meta_never_issued_is_a_clear_permanent_failure(
    harness: WhatsAppHarness, connector: WhatsAppConnector, media_id: str
) -> None:
    """The message with such a media id is bridged (its attachment fails with a notice);
    fetching the media fails once, for good, and asks the Graph API for nothing but a media
    id: no path, query or fragment of the id's making."""
    attachment = RemoteAttachment(url=MEDIA_PREFIX + media_id, filename="a.jpg")
    with pytest.raises(PermanentDeliveryError) as failure:
        await connector.download_attachment(attachment)
    assert len(failure.value.reason) < 1_000
    assert not harness.sim.rejected, [r.path for r in harness.sim.rejected]
