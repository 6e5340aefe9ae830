"""Reply buttons in the core: ``Services.send_text`` carries them through the durable queue to a
connector that has them, a channel without them gets nothing but a notice, and the customer's
press is recorded once, shown in the room (a notice of their ghost, in reply to the pressed
message) and handed to the inbound hooks once."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config import parse
from bridge.connector import Capabilities
from bridge.core.dispatcher import Dispatcher
from bridge.core.outbound import OutboundHandler
from bridge.core.pipeline import Pipeline
from bridge.core.remote import RemoteHandler
from bridge.core.services import Services
from bridge.db import Message, Portal, QueueItem
from bridge.events import (
    Button,
    RemoteButtonPress,
    RemoteChat,
    RemoteEvent,
    RemoteUser,
)
from bridge.seams import ConversationRef, Inbound, Seams
from bridge.types import AccountID, MessageID, RemoteChatID, RemoteUserID
from tests.test_config import example

from .outbound_support import RecordingConnector, RecordingNotices

ROOM = "!portal:example.com"
GHOST = "@telegram_42:example.com"
CHOICES = (Button("consent:yes", "Confirm"), Button("consent:no", "Decline"))
REF = ConversationRef(AccountID("acc"), RemoteChatID("chat"), ROOM)


class _Dispatcher:
    def submit(self, item: QueueItem) -> None:
        self.item = item


async def _sent_through_the_queue(
    max_buttons: int, buttons: tuple[Button, ...] = CHOICES
) -> tuple[RecordingConnector, RecordingNotices]:
    await Portal("acc", "chat", ROOM, created_at=0).insert()
    config = parse(example())
    connector, notices, dispatcher = (
        RecordingConnector(Capabilities(max_buttons=max_buttons, max_button_title=20)),
        RecordingNotices(),
        _Dispatcher(),
    )
    fake: Any = {"acc": connector}
    services = Services(config, fake, None, None, None, None, dispatcher)  # type: ignore[arg-type]
    assert services.capabilities("acc") is connector.capabilities
    assert await services.send_text(REF, "Subscribe?", reason="consent", buttons=buttons)
    item = await QueueItem.get(dispatcher.item.id)  # as stored: the buttons are in the row
    assert item is not None
    handler = OutboundHandler(config, None, fake, notices, Seams(config, services))  # type: ignore[arg-type]
    await handler.handle(item)
    return connector, notices


async def test_buttons_reach_a_connector_that_has_them(database: object) -> None:
    connector, notices = await _sent_through_the_queue(max_buttons=3)
    (msg,) = connector.sent
    assert msg.buttons == CHOICES and msg.automatic
    assert list(notices.posted.values()) == [
        "🤖 Automatic message (consent):\nSubscribe?\n[Confirm] [Decline]"
    ]


@pytest.mark.parametrize(
    ("max_buttons", "buttons", "reason"),
    [
        (0, CHOICES, "Test channel cannot show reply buttons"),
        (1, CHOICES, "Test channel shows at most 1 reply buttons, not 2"),
        (3, (Button("x", "A title of 21 letters"),), "longer than the 20 characters"),
    ],
)
async def test_buttons_the_channel_cannot_show_are_refused_with_a_notice(
    database: object, max_buttons: int, buttons: tuple[Button, ...], reason: str
) -> None:
    connector, notices = await _sent_through_the_queue(max_buttons, buttons)
    assert connector.sent == [] and notices.posted == {}
    (failure,) = notices.failures
    assert reason in failure


class _Sender:
    def __init__(self) -> None:
        self.sent: dict[str, tuple[str, dict[str, Any]]] = {}

    async def ensure_joined(self, room_id: str, *, as_user: str | None = None) -> None:
        pass

    async def send(
        self, room_id: str, content: dict[str, Any], *, txn: str, as_user: Any, **_: Any
    ) -> str:
        self.sent.setdefault(txn, (as_user, content))  # once per transaction, as Synapse does
        return f"$event-{txn}"


class _Ghosts:
    async def ensure(self, account: str, user: RemoteUser, *_: Any) -> str:
        return GHOST


class _Portals:
    def channel_title(self, account: str) -> str:
        return "Test channel"

    async def get_or_create(self, account: str, chat: Any, *args: Any, **kwargs: Any) -> Portal:
        """The stored portal (its room exists): what the real one returns then."""
        portal = await Portal.get(account, chat.id)
        assert portal is not None and portal.room_id
        return portal


class _Hook:
    def __init__(self) -> None:
        self.seen: list[Inbound] = []

    async def on_inbound(self, inbound: Inbound) -> None:
        self.seen.append(inbound)


def _press(press_id: str = "q1") -> RemoteButtonPress:
    return RemoteButtonPress(
        chat=RemoteChat(RemoteChatID("chat")),
        sender=RemoteUser(RemoteUserID("42"), displayname="Jana"),
        message_id=MessageID("r1"),
        button_id="consent:yes",
        title="Confirm",
        press_id=press_id,
    )


def test_a_press_survives_the_queue_payload() -> None:
    press = _press()
    assert RemoteEvent.from_json(press.to_json()) == press
    assert press.dedup_key() != _press("q2").dedup_key()


async def test_a_press_is_shown_once_and_reaches_the_hooks_once(database: object) -> None:
    await Portal("acc", "chat", ROOM, created_at=0).insert()
    await Message("acc", "chat", MessageID("r1"), 0, "$offer", ROOM, None, "@bot", 0).insert()
    sender, hook = _Sender(), _Hook()
    fakes: Any = (
        sender,
        _Portals(),
        _Ghosts(),
        {"acc": RecordingConnector(Capabilities(max_buttons=3))},
        RecordingNotices(),
    )
    remote = RemoteHandler(*fakes)
    seams = Seams(parse(example()), None)  # type: ignore[arg-type]
    seams.add_inbound_hook(hook)
    pipeline: Pipeline
    dispatcher = Dispatcher(lambda item: pipeline.process(item))
    unused: Any = None
    pipeline = Pipeline(dispatcher, unused, remote, unused, seams)
    try:
        assert await pipeline.record_remote(AccountID("acc"), _press())
        assert not await pipeline.record_remote(AccountID("acc"), _press())  # redelivered
        await dispatcher.wait_idle()
    finally:
        await dispatcher.stop()
    ((ghost, content),) = sender.sent.values()
    assert ghost == GHOST
    assert content["msgtype"] == "m.notice"
    assert content["body"] == "🔘 Jana pressed “Confirm”"
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": "$offer"}}
    (inbound,) = hook.seen
    assert inbound.event == _press() and inbound.conversation == REF
    assert not inbound.first_contact
