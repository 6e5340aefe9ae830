"""Reply buttons on the webhook channel: ``buttons`` in the outbound message payload, and the
signed inbound ``button`` event becoming one ``RemoteButtonPress``."""

from __future__ import annotations

import json

from bridge.connectors.webhook import WebhookConnector
from bridge.events import Button, RemoteButtonPress
from tests.contract.harness import FakeHost

from .factories import message
from .harness import WebhookHarness

PRESS = {
    "type": "button",
    "id": "remote-1",
    "chat": {"id": "chat-1"},
    "sender": {"id": "cust-1", "name": "Jana"},
    "button_id": "consent:yes",
    "title": "Confirm",
    "press_id": "press-77",
}


async def test_buttons_go_out_in_the_message_payload(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    await connector.send_message(message("Subscribe?", buttons=(Button("consent:yes", "Yes"),)))
    await connector.send_message(message("No buttons"))
    with_buttons, without = (json.loads(r.body) for r in harness.receiver.requests)
    assert with_buttons["buttons"] == [{"id": "consent:yes", "title": "Yes"}]
    assert "buttons" not in without


async def test_a_button_event_becomes_one_press(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    assert await harness.post_ok(PRESS) == "accepted"
    assert await harness.post_ok(PRESS) == "duplicate"
    (event,) = host.events
    assert isinstance(event, RemoteButtonPress)
    assert (event.message_id, event.button_id, event.title, event.press_id) == (
        "remote-1", "consent:yes", "Confirm", "press-77",
    )  # fmt: skip
    assert event.sender.displayname == "Jana"


async def test_a_button_event_needs_its_ids(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    for missing in ("button_id", "press_id"):
        status, answer = await harness.post({k: v for k, v in PRESS.items() if k != missing})
        assert status == 400 and missing in answer["error"]
    assert host.events == []
