"""The routing facts a Telegram message gives the team inbox, in ``metadata["routing"]``: the
``/start`` payload of a deep link and the language the customer's app is set to."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.connectors.telegram import TelegramConnector
from bridge.events import RemoteMessage
from tests.contract.harness import FakeHost

from . import connector_support
from . import updates as tg
from .connector_support import ALICE
from .harness import TelegramHarness
from .remote_support import ADA, GROUP, message, one
from .simulator import TelegramSimulator

# The fixtures shared by the connector's tests (see connector_support).
harness = connector_support.harness
sim = connector_support.sim
connector = connector_support.connector


def routing(business: bool = False, **update: Any) -> Any:
    event = one(business, **update)
    assert isinstance(event, RemoteMessage)
    return event.metadata.get("routing")


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("/start ad-spring_24", None, {"start": "ad-spring_24"}),
        ("/start ad-spring_24", "de", {"start": "ad-spring_24", "language": "de"}),
        ("Hallo", "de", {"language": "de"}),
        ("Olá", "pt-BR", {"language": "pt-br"}),
        ("/start", "en", {"language": "en"}),
        ("/start bad!", None, None),
        ("hello", None, None),
        ("hello", "", None),
        ("hello", "not a language", None),
    ],
)
def test_start_payload_and_language(text: str, language: str | None, expected: Any) -> None:
    sender = {**ADA, "language_code": language} if language is not None else ADA
    assert routing(message=message(text=text, **{"from": sender})) == expected


def test_the_start_payload_stays_in_the_portal_metadata() -> None:
    event = one(message=message(text="/start abc", **{"from": {**ADA, "language_code": "fr"}}))
    assert event.metadata == {
        "portal": {"start_payload": "abc"},
        "routing": {"start": "abc", "language": "fr"},
    }


def test_group_member_language_but_no_start_payload() -> None:
    bob = {"id": 43, "is_bot": False, "first_name": "Bob", "language_code": "es"}
    assert routing(message=message(chat=GROUP, text="/start abc", **{"from": bob})) == {
        "language": "es"
    }


def test_no_language_for_a_channel_post_in_a_group() -> None:
    posted = message(
        chat=GROUP, sender_chat=GROUP, text="news", **{"from": {**ADA, "language_code": "de"}}
    )
    assert routing(message=posted) is None


def test_business_chat_language_of_the_customer_not_of_the_owner() -> None:
    customer = message(
        business_connection_id="conn-1", text="hi", **{"from": {**ADA, "language_code": "it"}}
    )
    assert routing(True, business_message=customer) == {"language": "it"}
    owner = {"id": 99, "is_bot": False, "first_name": "Owner", "language_code": "en"}
    answer = message(business_connection_id="conn-1", text="hello", **{"from": owner})
    assert routing(True, business_message=answer) is None


async def test_a_deep_link_through_the_simulator(
    harness: TelegramHarness,
    sim: TelegramSimulator,
    host: FakeHost,
    connector: TelegramConnector,
) -> None:
    sender = tg.user(ALICE, "Alice", language_code="de")
    started = tg.text_message(tg.private_chat(sender), sender, "/start campaign-7")
    await harness.deliver(tg.message_update(started))
    (event,) = host.events
    assert isinstance(event, RemoteMessage)
    assert event.metadata["routing"] == {"start": "campaign-7", "language": "de"}
    assert event.metadata["portal"] == {"start_payload": "campaign-7"}
