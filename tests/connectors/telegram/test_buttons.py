"""Reply buttons on Telegram against the simulator: an inline keyboard sent, limits refused, a
press (polling and webhook) becoming one ``RemoteButtonPress`` and its query answered."""

from __future__ import annotations

import pytest

from bridge.connector import PermanentDeliveryError
from bridge.connectors.telegram import TelegramConnector
from bridge.events import Button, RemoteButtonPress
from tests.contract.harness import FakeHost

from . import connector_support
from .connector_support import ALICE, calls, matrix_message
from .harness import TelegramHarness
from .simulator import QUERY_INVALID, TelegramSimulator

harness = connector_support.harness
sim = connector_support.sim
connector = connector_support.connector
hook = connector_support.hook

CHOICES = (Button("consent:yes", "Confirm ✅"), Button("consent:no", "Decline"))


async def test_buttons_go_out_as_an_inline_keyboard(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    sent = await connector.send_message(
        matrix_message(harness, "Subscribe to the newsletter?", buttons=CHOICES)
    )
    (record,) = sim.sent
    assert str(record.message_id) == sent.message_id
    assert record.message["reply_markup"] == {
        "inline_keyboard": [
            [
                {"text": "Confirm ✅", "callback_data": "consent:yes"},
                {"text": "Decline", "callback_data": "consent:no"},
            ]
        ]
    }


async def test_buttons_sit_under_the_last_part_of_a_long_text(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    sent = await connector.send_message(matrix_message(harness, "word " * 1500, buttons=CHOICES))
    assert len(sim.sent) == 2
    assert "reply_markup" not in sim.sent[0].message
    assert sim.sent[1].message["reply_markup"]["inline_keyboard"]
    assert sent.message_id == str(sim.sent[1].message_id)  # the message a press names


async def test_callback_data_over_64_bytes_is_refused_before_sending(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    too_long = Button("ü" * 33, "Confirm")  # 66 bytes, 33 characters
    with pytest.raises(PermanentDeliveryError, match="66 bytes"):
        await connector.send_message(matrix_message(harness, "?", buttons=(too_long,)))
    assert calls(sim, "sendMessage") == []
    assert connector.capabilities.max_button_id == 64


async def test_simulator_refuses_what_the_bot_api_refuses(sim: TelegramSimulator) -> None:
    import aiohttp

    url = f"{sim.base_url}/bot{sim.token}/sendMessage"
    cases = {
        "BUTTON_DATA_INVALID": [[{"text": "x", "callback_data": "d" * 65}]],
        "Text buttons are unallowed": [[{"text": "x"}]],
        "Array of Arrays": [{"text": "x", "callback_data": "y"}],
    }
    async with aiohttp.ClientSession() as http:
        for expected, keyboard in cases.items():
            body = {"chat_id": ALICE, "text": "hi", "reply_markup": {"inline_keyboard": keyboard}}
            async with http.post(url, json=body) as resp:
                answer = await resp.json()
            assert resp.status == 400 and expected in answer["description"], answer
    assert sim.sent == []


async def test_a_press_becomes_one_event_and_is_answered(
    harness: TelegramHarness,
    sim: TelegramSimulator,
    host: FakeHost,
    connector: TelegramConnector,
) -> None:
    sent = await connector.send_message(matrix_message(harness, "Subscribe?", buttons=CHOICES))
    update = sim.press_button(ALICE, int(sent.message_id), "consent:yes")
    query_id = update["callback_query"]["id"]
    (event,) = await host.wait_for_events(1)
    assert isinstance(event, RemoteButtonPress)
    assert event.chat.id == str(ALICE) and event.sender.id == str(ALICE)
    assert (event.message_id, event.button_id, event.title) == (
        sent.message_id, "consent:yes", "Confirm ✅",
    )  # fmt: skip
    assert event.press_id == query_id
    await sim.wait_for_answer(query_id)
    await sim.wait_for_confirmed(update["update_id"])
    # A query is answered once: a second answer fails as on Telegram.
    with pytest.raises(PermanentDeliveryError, match="query is too old"):
        await connector.client.call(lambda: connector.client.bot.answer_callback_query(query_id))
    assert QUERY_INVALID in (calls(sim, "answerCallbackQuery")[-1].description or "")


async def test_a_press_delivered_twice_to_the_webhook_is_recorded_once(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost, hook: TelegramConnector
) -> None:
    sent = await hook.send_message(matrix_message(harness, "Subscribe?", buttons=CHOICES))
    stored = sim.message(ALICE, int(sent.message_id))
    assert stored is not None
    update = sim.press_button(ALICE, int(sent.message_id), "consent:no")
    await sim.wait_for_confirmed(update["update_id"])
    repeat = await sim.post_webhook(update, secret=sim.webhook_secret)
    assert repeat.ok
    (event,) = host.events
    assert isinstance(event, RemoteButtonPress) and event.button_id == "consent:no"
    assert len(host.duplicates) == 1


def test_pressing_a_button_that_is_not_there_is_a_test_error(sim: TelegramSimulator) -> None:
    message = sim.add_bot_message(ALICE, "no keyboard")
    with pytest.raises(ValueError, match="no button"):
        sim.press_button(ALICE, message["message_id"], "consent:yes")
