"""VK -> connector: every event type the connector carries, through the Callback API (secret,
confirmation, retries) and the Bots Long Poll API (``ts`` saved durably, expired keys)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from bridge.connectors.vk import VKConnector
from bridge.connectors.vk.connector import CALLBACK_PATH
from bridge.events import Button, RemoteButtonPress, RemoteEdit, RemoteMessage, RemoteTyping
from bridge.types import PortalKey, RemoteChatID
from tests.contract.harness import FakeHost, staff_message

from ..conftest import running
from .harness import CONFIRMATION, SECRET, VKHarness

CUSTOMER = 700_000_101


async def post(host: FakeHost, body: Any) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(host.route_url(CALLBACK_PATH), json=body) as resp:
            return resp.status, await resp.text()


async def deliver(harness: VKHarness, event: dict[str, Any]) -> None:
    delivery = await harness.sim.deliver(event)
    assert delivery is None or delivery.ok, delivery


async def test_confirmation_answers_the_code(harness: VKHarness, connector: VKConnector) -> None:
    assert await harness.sim.confirm() == CONFIRMATION


async def test_wrong_secret_is_refused_and_nothing_recorded(
    harness: VKHarness, connector: VKConnector, host: FakeHost
) -> None:
    event = harness.sim.message(CUSTOMER, "hi")
    for secret in (None, "", SECRET[:-1], SECRET + "x", "\ud800", 42):
        body = {**event} if secret is None else {**event, "secret": secret}
        status, _ = await post(host, body)
        assert status == 403
    status, answer = await post(host, {"type": "confirmation", "group_id": 1, "secret": "x"})
    assert status == 403 and CONFIRMATION not in answer
    status, answer = await post(host, {"type": "confirmation", "group_id": 1})
    assert status == 400 and CONFIRMATION not in answer
    wanted = {"type": "confirmation", "group_id": harness.sim.group_id}
    assert await post(host, wanted) == (200, CONFIRMATION)  # VK may leave the secret out
    assert host.events == []


async def test_message_with_name_photo_doc_reply_and_ref(
    harness: VKHarness, connector: VKConnector, host: FakeHost
) -> None:
    harness.sim.name(CUSTOMER, "Ivan", "Petrov")
    first = harness.sim.message(CUSTOMER, "Hello [club1|Shop]!", ref="promo-7")
    await deliver(harness, first)
    photo = harness.sim.photo(b"\xff\xd8jpeg")
    doc = harness.sim.doc(b"%PDF", "invoice.pdf", "application/pdf")
    await deliver(harness, harness.sim.message(CUSTOMER, "", attachments=[photo, doc], reply_to=1))
    one, two = host.events
    assert isinstance(one, RemoteMessage) and isinstance(two, RemoteMessage)
    assert one.chat.id == str(CUSTOMER) and one.chat.name == "Ivan Petrov"
    assert one.sender.displayname == "Ivan Petrov"
    assert one.message_id == f"{CUSTOMER}_1"
    assert one.text == "Hello Shop!"
    assert one.html == 'Hello <a href="https://vk.com/club1">Shop</a>!'
    assert one.metadata["routing"]["start"] == "promo-7"
    assert two.reply_to == f"{CUSTOMER}_1"
    photo_file, doc_file = two.attachments
    assert photo_file.mimetype == "image/jpeg" and photo_file.url.endswith(
        photo["photo"]["sizes"][1]["url"].rsplit("/", 1)[1]
    ), "the largest size"
    assert doc_file.filename == "invoice.pdf" and doc_file.mimetype == "application/pdf"
    media, mimetype = await connector.download_attachment(doc_file)
    with media:
        assert b"".join([c async for c in media.chunks()]) == b"%PDF"


async def test_group_chat_edit_typing_and_permissions(
    harness: VKHarness, connector: VKConnector, host: FakeHost
) -> None:
    chat = 2_000_000_005
    await deliver(harness, harness.sim.message(CUSTOMER, "in the chat", peer_id=chat))
    await deliver(harness, harness.sim.edit(CUSTOMER, 1, "edited", peer_id=chat))
    await deliver(harness, harness.sim.typing(CUSTOMER))
    await deliver(harness, harness.sim.permission(CUSTOMER, False))
    await deliver(harness, harness.sim.permission(CUSTOMER, True))
    message, edit, typing, deny, allow = host.events
    assert isinstance(message, RemoteMessage) and message.chat.is_group
    assert message.chat.id == str(chat) and message.sender.id == str(CUSTOMER)
    assert isinstance(edit, RemoteEdit) and edit.message_id == f"{chat}_1"
    assert edit.text == "edited"
    assert isinstance(typing, RemoteTyping) and typing.chat.id == str(CUSTOMER)
    assert isinstance(deny, RemoteMessage) and deny.notice and "no longer" in deny.text
    assert isinstance(allow, RemoteMessage) and allow.notice and "allows" in allow.text


async def test_retry_after_a_failed_store_is_recorded_once(
    harness: VKHarness, connector: VKConnector, host: FakeHost
) -> None:
    host.fail_next_events(1)
    delivery = await harness.sim.post_callback(harness.sim.message(CUSTOMER, "again"))
    assert [a.status for a in delivery.attempts] == [500, 200]
    # VK repeats an event whose "ok" was lost: the same event id, recorded once.
    await harness.sim.post_callback(delivery.event)
    assert [e.message_id for e in host.events] == [f"{CUSTOMER}_1"]


@pytest.mark.parametrize(
    "body",
    [[], "text", {"type": "message_new", "object": {"message": {"peer_id": "x"}}}],
)
async def test_unreadable_events_are_answered_without_recording(
    harness: VKHarness, connector: VKConnector, host: FakeHost, body: Any
) -> None:
    if isinstance(body, dict):
        body = {**body, "secret": SECRET, "group_id": harness.sim.group_id}
    status, _ = await post(host, body)
    assert status in (200, 400)
    assert host.events == []


async def test_long_poll_saves_ts_and_resumes_after_restart() -> None:
    async for harness in running(VKHarness(mode="longpoll")):
        async with FakeHost(harness.account_id) as host:
            connector = harness.make_connector(host)
            await connector.start()
            await deliver(harness, harness.sim.message(CUSTOMER, "one"))
            await deliver(harness, harness.sim.message(CUSTOMER, "two"))
            await harness.sim.wait_for(lambda: host.data.get("ts") == "3")
            await connector.stop()
            # A restart (the same saved data) goes on from the saved ts: nothing fetched twice.
            again = harness.make_connector(host)
            await again.start()
            harness.sim.lp_key = "rotated"  # VK expires the key (failed 2): a new one is had
            await deliver(harness, harness.sim.message(CUSTOMER, "three"))
            await again.stop()
            assert [e.text for e in host.events if isinstance(e, RemoteMessage)] == [
                "one", "two", "three",
            ]  # fmt: skip
            assert host.duplicates == []
            servers = [m for m, _ in harness.sim.calls if m == "groups.getLongPollServer"]
            assert len(servers) == 3


async def test_a_failed_name_lookup_leaves_the_name_unset(
    harness: VKHarness, connector: VKConnector, host: FakeHost
) -> None:
    harness.sim.name(CUSTOMER, "Ivan", "Petrov")
    harness.sim.storm(1, 10)  # users.get answers "internal server error"
    await deliver(harness, harness.sim.message(CUSTOMER, "one"))
    await deliver(harness, harness.sim.message(CUSTOMER + 1, "two"))  # VK shows no such user
    first, second = host.events
    assert first.sender.displayname is None and first.chat.name is None
    assert second.sender.displayname == f"VK user {CUSTOMER + 1}"


async def test_a_button_press_is_recorded_and_answered(
    harness: VKHarness, connector: VKConnector, host: FakeHost
) -> None:
    await deliver(harness, harness.sim.message(CUSTOMER, "Sign me up"))
    buttons = (Button("consent:yes", "Да, подписаться"), Button("consent:no", "Нет"))
    key = PortalKey(harness.account_id, RemoteChatID(str(CUSTOMER)))
    sent = await connector.send_message(staff_message(key, "Subscribe?", buttons=buttons))
    (message,) = harness.sim.sent
    assert [label for label, _ in message.buttons] == ["Да, подписаться", "Нет"]
    press = harness.sim.press(CUSTOMER, CUSTOMER, message.cmid, "Нет")
    await deliver(harness, press)
    await deliver(harness, press)  # VK repeats it: recorded once
    _, recorded = host.events
    assert isinstance(recorded, RemoteButtonPress)
    assert (recorded.message_id, recorded.button_id, recorded.title) == (
        sent.message_id, "consent:no", "Нет",
    )  # fmt: skip
    assert harness.sim.event_answers[0]["event_id"] == press["object"]["event_id"]
