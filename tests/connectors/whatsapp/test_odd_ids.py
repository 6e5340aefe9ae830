"""Ids Meta never sends: a wamid or wa_id becomes part of a database key (chat, sender,
message), so one with NUL or a lone surrogate (JSON escapes can carry both) refuses the
payload as a whole, before anything is recorded; long and non-ASCII ones are taken as they
are, and a reply to an id no message can have is a plain message."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.connectors.whatsapp.handle_remote import PayloadError, parse_payload
from bridge.events import RemoteDeliveryReceipt, RemoteMessage, RemoteReaction

from . import payloads as wa

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
