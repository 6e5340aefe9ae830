"""The messenger double opt-in end to end through a real Synapse, on SQLite and PostgreSQL (one
stack per backend for both channels): a Telegram deep link ``/start news`` and a WhatsApp
keyword each get the consent text with two buttons from the bridge; the customer's press on
"Yes, subscribe" confirms, the customer gets one confirmation, the room shows the request,
the press and the confirmation, and ``consent`` shows the ledger's requested + confirmed.
``consent link`` answers the form page of the mail account with its QR code."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import Stack, backend_database, build_stack
from tests.connectors.telegram import updates as tg
from tests.connectors.whatsapp import payloads as wa
from tests.e2e.helpers import body_is, customer_msg, join_invite_named
from tests.e2e.test_commands import _ask, _room_with_bot
from tests.infra.staff import StaffClient

TEXT = "Yes, send me the monthly newsletter here."
ASKED = f"{TEXT}\n\n(Consent text version 2026-01)"
THANKS = "Thank you: you are subscribed to Newsletter. Write STOP to end it any time."
FEATURES = {
    "consent": {
        "lists": {
            "newsletter": {
                "title": "Newsletter", "version": "2026-01", "text": TEXT,
                "keywords": ["NEWSLETTER"], "start": "news",
                "accounts": ["tg", "wa", "mail", "hooks"],
            }
        }
    }
}  # fmt: skip
_ids = itertools.count(7_400_001)
_numbers = itertools.count(4915130000001)


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=["sqlite", "postgres"])
async def optin(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Stack, StaffClient]]:
    db_url = backend_database(request, "optin")
    workdir = tmp_path_factory.mktemp("optin")
    async with build_stack(workdir, features=FEATURES, db_url=db_url) as stack:
        client = await StaffClient.login(
            stack.synapse.base_url, stack.staff_id, stack.staff_password
        )
        try:
            yield stack, client
        finally:
            await client.close()


def _body_has(text: str) -> Any:
    return lambda e: text in str(e.get("content", {}).get("body", ""))


async def _ledger(staff: StaffClient, room_id: str, account: str) -> list[str]:
    history = await _ask(staff, room_id, "!bridge consent")
    lines = history.splitlines()
    assert f"{account}:" in lines[0], history
    return [line.split(" — ")[2].split(" (")[0] for line in lines[1:]]


async def test_telegram_deep_link_buttons_and_press(optin: tuple[Stack, StaffClient]) -> None:
    stack, staff = optin
    sim = stack.telegram
    user = tg.user(next(_ids), "Olga", last_name="Optin")
    chat = tg.private_chat(user)
    sim.push_update(tg.message_update(tg.text_message(chat, user, "/start news")))
    room_id = await join_invite_named(staff, "Olga Optin")
    asked = await sim.wait_for_sent(lambda s: s.chat_id == chat["id"], timeout=30)
    assert asked.rendered == ASKED
    keyboard = asked.params["reply_markup"]
    assert "consent:yes:newsletter" in str(keyboard) and "No thanks" in str(keyboard)
    await staff.wait_for_event(_body_has(TEXT), room_id=room_id)  # staff see what was asked

    pressed = sim.press_button(chat["id"], asked.message_id, "consent:yes:newsletter")
    await staff.wait_for_event(body_is("🔘 Olga Optin pressed “Yes, subscribe”"), room_id=room_id)
    thanks = await sim.wait_for_sent(lambda s: s.rendered == THANKS, timeout=30)
    assert thanks.chat_id == chat["id"]
    await sim.wait_for_answer(pressed["callback_query"]["id"], timeout=30)
    await staff.wait_for_event(_body_has(THANKS), room_id=room_id)
    steps = await _ledger(staff, room_id, "tg")
    assert steps == ["newsletter: requested", "newsletter: confirmed"]
    assert [s.rendered for s in sim.sent if s.chat_id == chat["id"]] == [ASKED, THANKS]

    # Olga blocks the bot: Telegram tells the bridge (my_chat_member, kicked); her consent is
    # withdrawn and the staff see it in her conversation.
    sim.block_bot(user["id"])
    await staff.wait_for_event(_body_has("blocked Telegram"), room_id=room_id)
    await staff.wait_for_event(
        _body_has("The customer blocked the bot: consent withdrawn (Newsletter)"), room_id=room_id
    )
    steps = await _ledger(staff, room_id, "tg")
    assert steps == ["newsletter: requested", "newsletter: confirmed", "newsletter: withdrawn"]


async def test_whatsapp_keyword_buttons_and_press(optin: tuple[Stack, StaffClient]) -> None:
    stack, staff = optin
    sim = stack.whatsapp
    number = str(next(_numbers))
    names = {number: "Jana Optin"}
    assert (await sim.receive(wa.text_message(number, "Newsletter"), names=names)).ok
    room_id = await join_invite_named(staff, "Jana Optin")
    asked = await sim.wait_for_sent(lambda s: s.to == number, timeout=30)
    assert asked.type == "interactive"
    assert asked.content["body"]["text"] == ASKED
    titles = [b["reply"]["title"] for b in asked.content["action"]["buttons"]]
    assert titles == ["Yes, subscribe", "No thanks"]
    await staff.wait_for_event(_body_has(TEXT), room_id=room_id)

    delivery = await sim.press_button(asked.wamid, "consent:yes:newsletter", duplicate=True)
    assert delivery.ok and len(delivery.attempts) == 2
    thanks = await sim.wait_for_sent(
        lambda s: s.to == number and s.content.get("body") == THANKS, timeout=30
    )
    assert thanks.type == "text"
    await staff.wait_for_event(_body_has(THANKS), room_id=room_id)
    steps = await _ledger(staff, room_id, "wa")
    assert steps == ["newsletter: requested", "newsletter: confirmed"]
    assert len([s for s in sim.sent if s.to == number]) == 2  # the press came twice


async def test_consent_link_posts_the_form_page_and_its_qr_code(
    optin: tuple[Stack, StaffClient],
) -> None:
    stack, staff = optin
    room_id = await _room_with_bot(stack, staff)
    answer = await _ask(staff, room_id, "!bridge consent link newsletter mail")
    assert answer.splitlines()[1].endswith("/features/consent/form/newsletter"), answer
    answer = await _ask(staff, room_id, "!bridge consent link newsletter tg")
    bot = stack.telegram.bot_user["username"]
    assert f"https://t.me/{bot}?start=news" in answer, answer
    event = await staff.wait_for_event(
        lambda e: e.get("content", {}).get("body") == "newsletter-mail.png", room_id=room_id
    )
    assert event["sender"] == stack.bot_id


async def test_stop_after_a_real_opt_in(optin: tuple[Stack, StaffClient]) -> None:
    """Withdrawing is as easy as giving: after the deep link and the press, STOP withdraws at
    once, the customer gets one confirmation, the staff see it in the conversation."""
    stack, staff = optin
    sim = stack.telegram
    user = tg.user(next(_ids), "Stefan", last_name="Stop")
    chat = tg.private_chat(user)
    sim.push_update(tg.message_update(tg.text_message(chat, user, "/start news")))
    room_id = await join_invite_named(staff, "Stefan Stop")
    asked = await sim.wait_for_sent(lambda s: s.chat_id == chat["id"], timeout=30)
    sim.press_button(chat["id"], asked.message_id, "consent:yes:newsletter")
    await sim.wait_for_sent(lambda s: s.chat_id == chat["id"] and s.rendered == THANKS)
    sim.push_update(tg.message_update(tg.text_message(chat, user, "Stop!")))
    await staff.wait_for_event(_body_has("🛑 The customer withdrew consent"), room_id=room_id)
    steps = await _ledger(staff, room_id, "tg")
    assert steps == ["newsletter: requested", "newsletter: confirmed", "newsletter: withdrawn"]
    bye = [s for s in sim.sent if s.chat_id == chat["id"] and "unsubscribed" in (s.rendered or "")]
    assert len(bye) == 1


async def test_an_in_house_systems_consent_step(optin: tuple[Stack, StaffClient]) -> None:
    """The in-house system reports a confirmation with its proof through the signed webhook
    protocol: recorded once with that proof; a proof without its text version is refused with
    400 and records nothing."""
    stack, staff = optin
    chat = f"crm-{next(_ids)}"
    event = {
        "type": "consent", "id": f"step-{chat}", "chat": {"id": chat},
        "sender": {"id": f"user-{chat}", "name": "Carl Crm"}, "list": "newsletter",
        "step": "confirmed",
        "proof": {"at": int(time.time() * 1000) - 60_000, "source": "crm form 12",
                  "text_version": "2026-01"},
    }  # fmt: skip
    bad = {**event, "id": f"bad-{chat}", "proof": {**event["proof"], "text_version": ""}}
    status, answer = await stack.peer.send(stack.account, bad)
    assert status == 400 and "text_version" in str(answer)
    for _ in range(2):  # a repeat records nothing new
        status, _ = await stack.peer.send(stack.account, event)
        assert status == 200
    # The customer writes later: their conversation's `consent` shows the step and its proof.
    status, _ = await stack.peer.send(stack.account, customer_msg(chat, "Hello"))
    assert status == 200
    room_id = await join_invite_named(staff, f"Customer {chat}")
    history = await _ask(staff, room_id, "!bridge consent")
    assert history.count("newsletter: confirmed") == 1, history
    assert "newsletter: requested" not in history
