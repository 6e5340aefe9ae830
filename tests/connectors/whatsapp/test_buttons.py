"""Reply buttons on WhatsApp against the simulator: an interactive "button" message inside the
window, limits refused, a button reply becoming one ``RemoteButtonPress`` that names the pressed
message and keeps the window open."""

from __future__ import annotations

import time

import pytest

from bridge.connector import PermanentDeliveryError, button_problem
from bridge.connectors.whatsapp import WhatsAppConnector
from bridge.events import Button, RemoteButtonPress
from bridge.types import RemoteChatID
from tests.contract.harness import FakeHost

from . import connector_support
from . import payloads as wa
from .connector_support import ALICE, HOUR, customer_writes, matrix_message
from .harness import WhatsAppHarness
from .simulator import WhatsAppSimulator

harness = connector_support.harness
sim = connector_support.sim

CHOICES = (Button("consent:yes", "Confirm"), Button("consent:no", "Decline"))


async def _customer_wrote(sim: WhatsAppSimulator, host: FakeHost, *, age: float = 0) -> None:
    await customer_writes(sim, wa.text_message(ALICE, "NEWSLETTER", timestamp=time.time() - age))
    await host.wait_for_events(1)


async def test_buttons_go_out_as_an_interactive_message(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    await _customer_wrote(sim, host)
    sent = await connector.send_message(
        matrix_message(harness, "Subscribe to the *newsletter*?", buttons=CHOICES)
    )
    (record,) = sim.sent
    assert record.wamid == sent.message_id and record.type == "interactive"
    assert record.body["interactive"] == {
        "type": "button",
        "body": {"text": "Subscribe to the *newsletter*?"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "consent:yes", "title": "Confirm"}},
                {"type": "reply", "reply": {"id": "consent:no", "title": "Decline"}},
            ]
        },
    }


async def test_a_long_text_ends_in_a_body_whatsapp_takes(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    await _customer_wrote(sim, host)
    sent = await connector.send_message(matrix_message(harness, "word " * 400, buttons=CHOICES))
    assert [r.type for r in sim.sent] == ["text", "interactive"]
    assert len(sim.sent[1].body["interactive"]["body"]["text"]) <= 1024
    assert sent.message_id == sim.sent[1].wamid


async def test_outside_the_window_buttons_are_refused_like_any_free_form_message(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    await _customer_wrote(sim, host, age=25 * HOUR)
    with pytest.raises(PermanentDeliveryError, match="24 hours"):
        await connector.send_message(matrix_message(harness, "Subscribe?", buttons=CHOICES))
    assert sim.sent == []


def test_the_capabilities_refuse_what_the_cloud_api_refuses(connector: WhatsAppConnector) -> None:
    caps, title = connector.capabilities, connector.title
    four = tuple(Button(f"b{n}", f"Choice {n}") for n in range(4))
    assert "at most 3" in (button_problem(four, caps, title) or "")
    long_title = (Button("b", "A title of 21 letters"),)
    assert "20 characters" in (button_problem(long_title, caps, title) or "")
    assert button_problem((Button("i" * 257, "ok"),), caps, title) is not None
    assert button_problem(CHOICES, caps, title) is None


async def test_the_simulator_refuses_bad_buttons_with_the_cloud_api_errors(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    await _customer_wrote(sim, host)
    for buttons, error in (
        ((Button("a", "Twenty-one characters"),), "Button title length invalid"),
        ((Button("a", "Same"), Button("b", "Same")), "Button title must be unique"),
    ):
        with pytest.raises(PermanentDeliveryError, match="131009"):
            await connector.send_message(matrix_message(harness, "?", buttons=buttons))
        assert error in str(sim.rejected[-1].error)
    assert sim.sent == []


async def test_a_button_reply_becomes_one_press_of_the_message(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost, connector: WhatsAppConnector
) -> None:
    await _customer_wrote(sim, host)
    sent = await connector.send_message(matrix_message(harness, "Subscribe?", buttons=CHOICES))
    delivery = await sim.press_button(sent.message_id, "consent:yes", duplicate=True)
    assert delivery.ok
    events = await host.wait_for_events(2)
    press = events[1]
    assert isinstance(press, RemoteButtonPress)
    assert press.chat.id == ALICE and press.sender.id == ALICE
    assert (press.message_id, press.button_id, press.title) == (
        sent.message_id, "consent:yes", "Confirm",
    )  # fmt: skip
    assert (
        press.press_id == delivery.payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    )
    assert len(host.duplicates) == 1  # the repeated webhook
    # The press is the customer writing: the window is open from it.
    meta = await host.portal_metadata(RemoteChatID(ALICE))
    assert meta["last_inbound_at"] == press.timestamp
