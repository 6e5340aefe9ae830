"""The routing facts an in-house system gives with a message, in the optional ``routing``
object of ``POST /events``: ``language``, ``to`` and its own ``fields``, bounded and checked
as the rest of the payload is."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.connectors.webhook import WebhookConnector
from bridge.connectors.webhook.handle_remote import (
    MAX_FIELD_VALUE_LENGTH,
    MAX_FIELDS,
    SchemaError,
    parse_event,
)
from bridge.events import RemoteMessage
from tests.contract.harness import FakeHost

from .harness import WebhookHarness


def message(**fields: Any) -> dict[str, Any]:
    return {"id": "m-1", "chat": {"id": "c-1"}, "sender": {"id": "u-1"}, "text": "hi", **fields}


def routing(facts: Any) -> Any:
    event = parse_event(message(routing=facts))
    assert isinstance(event, RemoteMessage)
    return event.metadata.get("routing")


def rejected(facts: Any) -> str:
    with pytest.raises(SchemaError) as caught:
        parse_event(message(routing=facts))
    return caught.value.field


def test_every_fact() -> None:
    facts = {
        "language": "pt-BR",
        "to": "sales@shop.example",
        "fields": {"plan": "gold", "seats": 12, "vip": True, "score": 0.5},
    }
    assert routing(facts) == {
        "language": "pt-br",
        "to": "sales@shop.example",
        "fields": {"plan": "gold", "seats": 12, "vip": True, "score": 0.5},
    }


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"language": "de"}, {"language": "de"}),
        ({"to": "support"}, {"to": "support"}),
        ({"fields": {"queue": "billing"}}, {"fields": {"queue": "billing"}}),
        ({"to": "", "fields": {}}, None),
        ({}, None),
        (None, None),
    ],
)
def test_only_the_facts_given(facts: Any, expected: Any) -> None:
    assert routing(facts) == expected


def test_without_routing_the_metadata_stays_empty() -> None:
    event = parse_event(message())
    assert isinstance(event, RemoteMessage) and event.metadata == {}


@pytest.mark.parametrize(
    ("facts", "field"),
    [
        ("de", "routing"),
        ({"langauge": "de"}, "routing.langauge"),
        ({"language": "German!"}, "routing.language"),
        ({"language": 7}, "routing.language"),
        ({"language": "de-" + "x" * 40}, "routing.language"),
        ({"to": "x" * 321}, "routing.to"),
        ({"to": "a\x00b"}, "routing.to"),
        ({"fields": ["a"]}, "routing.fields"),
        ({"fields": {"a": {"nested": 1}}}, "routing.fields.a"),
        ({"fields": {"a": [1, 2]}}, "routing.fields.a"),
        ({"fields": {"a": "x" * (MAX_FIELD_VALUE_LENGTH + 1)}}, "routing.fields.a"),
        ({"fields": {"a": "\ud800"}}, "routing.fields.a"),
        ({"fields": {"": 1}}, "routing.fields"),
        ({"fields": {"k" * 65: 1}}, "routing.fields"),
        ({"fields": {"a\ud800": 1}}, "routing.fields"),
        ({"fields": {f"f{i}": i for i in range(MAX_FIELDS + 1)}}, "routing.fields"),
    ],
)
def test_bad_facts_name_the_field(facts: Any, field: str) -> None:
    assert rejected(facts) == field


def test_the_largest_fields_pass() -> None:
    fields = {f"{i:064d}": "v" * MAX_FIELD_VALUE_LENGTH for i in range(MAX_FIELDS)}
    assert routing({"fields": fields}) == {"fields": fields}


def test_routing_is_read_only_with_a_message() -> None:
    event = parse_event(message(type="delete", routing={"language": "de"}))
    assert event.metadata == {}


async def test_posted_routing_reaches_the_host(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    facts = {"language": "fr", "to": "ventes", "fields": {"country": "FR", "order": 1234}}
    status, answer = await harness.post(message(routing=facts))
    assert (status, answer) == (200, {"status": "accepted"})
    (event,) = host.events
    assert isinstance(event, RemoteMessage)
    assert event.metadata == {"routing": facts}
    status, answer = await harness.post(message(id="m-2", routing={"fields": {"x": None}}))
    assert (status, answer) == (
        400,
        {"error": "routing.fields.x: must be a string, a number or true/false"},
    )
