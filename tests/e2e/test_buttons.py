"""Reply buttons end to end, the customer's half: a press on a button of the bot's message, from
the Telegram and WhatsApp simulators through the running bridge, shows in the portal room on
Synapse as a notice of the customer's ghost, once.

The sending half (``Services.send_text`` with buttons) has no caller in the running bridge until a
feature (consent) uses it: no command sends buttons, and none is added for a test. It is proven
by the core tests (``tests/core/test_buttons.py``) and the connector tests against the simulators;
here the pressed message stands for one the bridge sent (the Telegram simulator's earlier bot
message with a keyboard; a WhatsApp ``button_reply`` naming a message by its wamid)."""

from __future__ import annotations

import itertools
from typing import Any

from tests.conftest import Stack
from tests.connectors.telegram import updates as tg
from tests.connectors.whatsapp import payloads as wa
from tests.e2e.helpers import body_is, join_invite_named
from tests.infra.staff import StaffClient

_ids = itertools.count(7_300_001)
_numbers = itertools.count(4915120000001)
KEYBOARD = {
    "inline_keyboard": [
        [
            {"text": "Confirm", "callback_data": "consent:yes"},
            {"text": "Decline", "callback_data": "consent:no"},
        ]
    ]
}


def _notices(staff: StaffClient, room_id: str, body: str) -> list[dict[str, Any]]:
    found = staff.find_events(body_is(body), room_id=room_id)
    return [e for e in found if e["content"].get("msgtype") == "m.notice"]


async def test_a_telegram_press_shows_in_the_room_and_is_answered(
    stack: Stack, staff: StaffClient
) -> None:
    sim = stack.telegram
    user = tg.user(next(_ids), "Olga", last_name="Presser")
    chat = tg.private_chat(user)
    sim.push_update(tg.message_update(tg.text_message(chat, user, "newsletter please")))
    room_id = await join_invite_named(staff, "Olga Presser")
    first = await staff.wait_for_event(body_is("newsletter please"), room_id=room_id)
    offer = sim.add_bot_message(chat["id"], "Subscribe?", reply_markup=KEYBOARD)
    pressed = sim.press_button(chat["id"], offer["message_id"], "consent:yes")
    notice = await staff.wait_for_event(
        body_is("🔘 Olga Presser pressed “Confirm”"), room_id=room_id
    )
    assert notice["sender"] == first["sender"]  # the customer's ghost
    assert notice["content"]["msgtype"] == "m.notice"
    await sim.wait_for_answer(pressed["callback_query"]["id"], timeout=30)


async def test_a_whatsapp_button_reply_delivered_twice_shows_once(
    stack: Stack, staff: StaffClient
) -> None:
    number = str(next(_numbers))
    names = {number: "Jana Drueckt"}
    assert (await stack.whatsapp.receive(wa.text_message(number, "STARTE"), names=names)).ok
    room_id = await join_invite_named(staff, "Jana Drueckt")
    first = await staff.wait_for_event(body_is("STARTE"), room_id=room_id)
    context = wa.reply_context(stack.whatsapp.display_phone_number, "wamid.offer-1")
    press = wa.button_reply_message(number, "consent:no", "Decline", context=context)
    delivery = await stack.whatsapp.receive(press, names=names, duplicate=True)
    assert delivery.ok and len(delivery.attempts) == 2
    body = "🔘 Jana Drueckt pressed “Decline”"
    notice = await staff.wait_for_event(body_is(body), room_id=room_id)
    assert notice["sender"] == first["sender"]
    # Something after it, so that a second notice would have been synced by then.
    assert (await stack.whatsapp.receive(wa.text_message(number, "danke"), names=names)).ok
    await staff.wait_for_event(body_is("danke"), room_id=room_id)
    assert len(_notices(staff, room_id, body)) == 1
