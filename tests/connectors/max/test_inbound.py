"""MAX -> the host, by webhook: every update type the bridge carries, the secret, refusals."""

from __future__ import annotations

import io
import json

import aiohttp

from bridge.connectors.max import MaxConnector
from bridge.events import (
    RemoteButtonPress,
    RemoteDelete,
    RemoteEdit,
    RemoteMessage,
)
from bridge.types import MessageID
from tests.contract.harness import FakeHost

from .harness import SECRET, MaxHarness
from .simulator import SECRET_HEADER
from .support import ALICE, BOB, GROUP, deliver, dialog, recorded, staff


async def test_subscribes_with_secret_and_update_types(
    harness: MaxHarness, connector: MaxConnector, host: FakeHost
) -> None:
    sub = harness.sim.subscription
    assert sub is not None
    assert sub["url"] == host.route_url("/webhook")
    assert sub["secret"] == SECRET
    assert "message_callback" in sub["update_types"] and "bot_started" in sub["update_types"]
    assert connector.public_address == harness.sim.username
    # The token travels in the header only, never in a query string.
    assert all("access_token" not in query for _, _, query in harness.sim.calls)


async def test_message_with_markup_and_locale(
    harness: MaxHarness, connector: MaxConnector, host: FakeHost
) -> None:
    markup = [{"type": "strong", "from": 6, "length": 5}, {"type": "link", "from": 0,
              "length": 5, "url": "https://example.com/"}]  # fmt: skip
    update = harness.sim.customer_message(ALICE, "Anna Petrova", "Hello world", markup=markup)
    (event,) = await recorded(harness, host, update)
    assert isinstance(event, RemoteMessage)
    assert event.text == "Hello world"
    assert event.html == '<a href="https://example.com/">Hello</a> <strong>world</strong>'
    assert event.chat.id == dialog(harness.sim) and not event.chat.is_group
    assert event.chat.name == "Anna Petrova"
    assert event.sender.id == str(ALICE) and event.sender.displayname == "Anna Petrova"
    assert event.metadata["routing"] == {"language": "ru"}
    assert event.message_id == update["message"]["body"]["mid"]


async def test_reply_edit_and_delete(
    harness: MaxHarness, connector: MaxConnector, host: FakeHost
) -> None:
    sim = harness.sim
    sent = await connector.send_message(staff(dialog(sim), "How can we help?"))
    reply = sim.customer_message(ALICE, "Anna", "My order", reply_to=sent.message_id)
    (message,) = await recorded(harness, host, reply)
    assert isinstance(message, RemoteMessage) and message.reply_to == sent.message_id
    mid = MessageID(reply["message"]["body"]["mid"])
    edited = sim.customer_edit(mid, "My order 42")
    await recorded(harness, host, edited, 2)
    edit = host.events[1]
    assert isinstance(edit, RemoteEdit)
    assert (edit.message_id, edit.text) == (mid, "My order 42")
    assert edit.edit_id == str(edited["timestamp"])
    await recorded(harness, host, sim.customer_delete(mid), 3)
    delete = host.events[2]
    assert isinstance(delete, RemoteDelete) and delete.message_id == mid


async def test_button_press_is_recorded_then_answered(
    harness: MaxHarness, connector: MaxConnector, host: FakeHost
) -> None:
    from bridge.events import Button

    sim = harness.sim
    buttons = (Button("consent:yes", "Yes, please"), Button("consent:no", "No"))
    sent = await connector.send_message(staff(dialog(sim), "Newsletter?", buttons=buttons))
    assert sim.sent[0].buttons == [("consent:yes", "Yes, please"), ("consent:no", "No")]
    update = sim.press(sent.message_id, "consent:no", ALICE)
    (press,) = await recorded(harness, host, update)
    assert isinstance(press, RemoteButtonPress)
    assert (press.button_id, press.title, press.message_id) == (
        "consent:no",
        "No",
        sent.message_id,
    )
    assert press.press_id == update["callback"]["callback_id"]
    assert [callback for callback, _ in sim.answers] == [press.press_id]


async def test_bot_started_carries_the_deep_link_payload(
    harness: MaxHarness, connector: MaxConnector, host: FakeHost
) -> None:
    (event,) = await recorded(harness, host, harness.sim.bot_started(BOB, "Boris", "offer-7"))
    assert isinstance(event, RemoteMessage) and event.notice
    assert event.chat.id == dialog(harness.sim, BOB)
    assert event.metadata["routing"] == {"start": "offer-7", "language": "ru"}
    assert event.metadata["portal"] == {"start_payload": "offer-7"}
    assert "Boris started" in event.text


async def test_group_membership_and_title_are_notices(
    harness: MaxHarness, connector: MaxConnector, host: FakeHost
) -> None:
    sim = harness.sim
    updates = [
        sim.member_change("bot_added", GROUP, ALICE, "Anna"),
        sim.member_change("user_added", GROUP, BOB, "Boris"),
        sim.member_change("user_removed", GROUP, BOB, "Boris"),
        sim.title_change(GROUP, ALICE, "Anna", "Order 42"),
        sim.member_change("bot_removed", GROUP, ALICE, "Anna"),
    ]
    for count, update in enumerate(updates, start=1):
        await recorded(harness, host, update, count)
    texts = [e.text for e in host.events if isinstance(e, RemoteMessage) and e.notice]
    assert texts == [
        "Anna added the bot to the group",
        "Boris joined the group",
        "Boris left the group",
        "Anna renamed the group to “Order 42”",
        "Anna removed the bot from the group",
    ]
    assert all(e.chat.id == str(GROUP) and e.chat.is_group for e in host.events)
    assert host.events[3].chat.name == "Order 42"


async def test_own_messages_and_channels_give_no_events(
    harness: MaxHarness, connector: MaxConnector, host: FakeHost
) -> None:
    sim = harness.sim
    own = sim.customer_message(sim.bot_id, "Support", "echo")
    assert (await deliver(harness, own)).status == 200
    post = sim.customer_message(ALICE, "Anna", "channel post")
    del post["message"]["sender"]
    assert (await deliver(harness, post)).status == 200
    await recorded(harness, host, sim.customer_message(ALICE, "Anna", "real"))
    assert [e.text for e in host.events] == ["real"]  # type: ignore[attr-defined]


async def test_location_contact_and_share_shown_as_text(
    harness: MaxHarness, connector: MaxConnector, host: FakeHost
) -> None:
    attachments = [
        {"type": "location", "latitude": 55.75, "longitude": 37.61},
        {"type": "contact", "payload": {"max_info": {"name": "Ivan"}}},
        {"type": "share", "payload": {"url": "https://example.com/x"}},
    ]
    update = harness.sim.customer_message(ALICE, "Anna", None, attachments=attachments)
    (event,) = await recorded(harness, host, update)
    assert isinstance(event, RemoteMessage)
    assert event.text.splitlines() == [
        "📍 https://www.openstreetmap.org/?mlat=55.750000&mlon=37.610000",
        "👤 Ivan",
        "🔗 https://example.com/x",
    ]


async def test_wrong_or_missing_secret_refused(
    harness: MaxHarness, connector: MaxConnector, host: FakeHost
) -> None:
    sim = harness.sim
    update = sim.customer_message(ALICE, "Anna", "forged")
    for secret in ("wrong-secret-" + "x" * 30, None, SECRET[:-1]):
        delivery = await sim.post_update(update, secret, attempts=1)
        assert delivery.status == 401
    assert host.events == []


async def test_unreadable_update_is_400_and_host_failure_retried(
    harness: MaxHarness, connector: MaxConnector, host: FakeHost
) -> None:
    sim = harness.sim
    for body in (b"not json", b"[]", json.dumps({"update_type": "message_created"}).encode()):
        assert (await sim.post_update(body, SECRET, attempts=1)).status == 400
    host.fail_next_events(1)
    delivery = await deliver(harness, sim.customer_message(ALICE, "Anna", "again"))
    # MAX delivers again after the 503: recorded once.
    assert [d.status for d in sim.webhook_deliveries[-2:]] == [503, 200]
    assert delivery.status == 200
    assert [e.text for e in host.events] == ["again"]  # type: ignore[attr-defined]


async def test_oversized_update_refused(
    harness: MaxHarness, connector: MaxConnector, host: FakeHost
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            host.route_url("/webhook"),
            data=io.BytesIO(b"{" + b" " * (1024 * 1024 + 1) + b"}"),
            headers={SECRET_HEADER: SECRET},
        ) as resp:
            assert resp.status == 413
