"""The seams consent and broadcasts plug into: remote events that make no room (a block, an
in-house system's consent step) and receipts of roomless chats reach the inbound hooks; a
feature's own rooms get their messages (commands still run); a feature's HTTP routes are
served on the public listener; direct messages go straight to the connector."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bridge.config import parse
from bridge.connector import Capabilities, PermanentDeliveryError, Template
from bridge.core.appservice import AppServiceListener
from bridge.core.dispatcher import Dispatcher
from bridge.core.pipeline import Pipeline
from bridge.core.remote import RemoteHandler
from bridge.core.routing import MatrixRouter
from bridge.core.sender import MatrixSender
from bridge.core.services import Services
from bridge.db import Portal, QueueItem
from bridge.events import (
    Button,
    MatrixMessage,
    RemoteBlocked,
    RemoteChat,
    RemoteConsent,
    RemoteDeliveryReceipt,
    RemoteEvent,
    RemoteUser,
    SentMessage,
)
from bridge.seams import DirectMessage, Inbound, MediaRef, RoomMessage, Route, Seams
from bridge.types import AccountID, MessageID, RemoteChatID, RemoteUserID
from tests.infra.ports import free_port
from tests.test_config import example

from .outbound_support import RecordingConnector, RecordingNotices

ROOM = "!portal:example.com"
JANA = RemoteUser(RemoteUserID("42"), displayname="Jana")


class _Hook:
    def __init__(self) -> None:
        self.seen: list[Inbound] = []

    async def on_inbound(self, inbound: Inbound) -> None:
        self.seen.append(inbound)


class _NoRooms:
    """Ghosts and portals that must not be asked: these events make no room, no ghost."""

    def channel_title(self, account: str) -> str:
        return "Telegram"

    async def ensure(self, *args: Any) -> str:
        raise AssertionError("no ghost for an event that makes no room")

    async def get_or_create(self, *args: Any, **kwargs: Any) -> Portal:
        raise AssertionError("no room for an event that makes no room")


async def _through_the_pipeline(events: list[RemoteEvent]) -> tuple[_Hook, RecordingNotices]:
    hook, notices, none = _Hook(), RecordingNotices(), _NoRooms()
    fakes: Any = (None, none, none, {"acc": RecordingConnector()}, notices)
    seams = Seams(parse(example()), None)  # type: ignore[arg-type]
    seams.add_inbound_hook(hook)
    pipeline: Pipeline
    dispatcher = Dispatcher(lambda item: pipeline.process(item))
    unused: Any = None
    pipeline = Pipeline(dispatcher, unused, RemoteHandler(*fakes), unused, seams)
    try:
        for event in events:
            await pipeline.record_remote(AccountID("acc"), event)
        await dispatcher.wait_idle()
    finally:
        await dispatcher.stop()
    return hook, notices


def _blocked(chat: str) -> RemoteBlocked:
    return RemoteBlocked(RemoteChat(RemoteChatID(chat)), JANA, block_id="1700000000")


async def test_a_block_is_shown_in_its_room_once_and_reaches_the_hooks(database: object) -> None:
    await Portal("acc", "chat", ROOM, created_at=0).insert()
    hook, notices = await _through_the_pipeline([_blocked("chat"), _blocked("chat")])
    assert list(notices.posted.values()) == [
        "🚫 Jana blocked Telegram: nothing more reaches them here."
    ]
    (inbound,) = hook.seen  # the repeat was recorded once
    assert inbound.event == _blocked("chat") and inbound.conversation.room_id == ROOM


async def test_events_of_a_chat_without_a_room_reach_the_hooks_alone(database: object) -> None:
    consent = RemoteConsent(
        RemoteChat(RemoteChatID("crm-7")), JANA, consent_id="c-1", list="newsletter",
        step="confirmed", proof={"at": 1_700_000_000_000, "source": "crm"},
    )  # fmt: skip
    receipt = RemoteDeliveryReceipt(
        RemoteChat(RemoteChatID("far")), JANA, message_id=MessageID("m9")
    )
    assert RemoteEvent.from_json(consent.to_json()) == consent
    hook, notices = await _through_the_pipeline([_blocked("nowhere"), consent, receipt])
    assert notices.posted == {}
    seen = {i.event.chat.id: (i.event, i.conversation.room_id, i.first_contact) for i in hook.seen}
    assert seen == {  # three chats: three queues, in no order among them
        "nowhere": (_blocked("nowhere"), None, False), "crm-7": (consent, None, False),
        "far": (receipt, None, False),
    }  # fmt: skip
    assert len(hook.seen) == 3


# ------------------------------------------------------------------ direct messages


class _Templates(RecordingConnector):
    def __init__(self) -> None:
        super().__init__(Capabilities(html=False, max_buttons=0))
        self.templates: list[tuple[str, Template, list[str]]] = []

    async def list_templates(self) -> list[Template]:
        return [Template("news", "en", "News: {{1}}", 1)]

    async def send_template(self, chat: Any, template: Template, params: list[str]) -> SentMessage:
        self.templates.append((chat, template, params))
        return SentMessage(MessageID("wamid.1"))

    def chat_for_address(self, address: str) -> Any:
        return address


def _services(connectors: dict[str, Any]) -> Services:
    unused: Any = None
    portals: Any = type("P", (), {"channel_title": lambda self, a: "WhatsApp"})()
    sender: Any = type("S", (), {"media": MatrixSender.media})()  # files are never fetched
    return Services(parse(example()), connectors, sender, portals, unused, unused, unused)


async def test_a_direct_message_goes_straight_to_the_connector() -> None:
    connector = RecordingConnector(Capabilities(html=False))
    services = _services({"acc": connector})
    message = DirectMessage(
        "Hello", html="<b>Hello</b>", headers=(("List-Unsubscribe", "<https://x/u>"),),
        key="broadcast:1:7:acc",
    )  # fmt: skip
    assert await services.send_direct("acc", "chat-7", message) == "r1"
    (sent,) = connector.sent
    assert isinstance(sent, MatrixMessage)
    assert (sent.portal.account, sent.portal.chat, sent.event_id) == ("acc", "chat-7", message.key)
    assert sent.text == "Hello" and sent.html is None  # the channel carries no HTML
    assert sent.headers == message.headers and sent.automatic and sent.media is None


async def test_a_direct_template_and_what_cannot_go() -> None:
    connector = _Templates()
    services = _services({"wa": connector})
    sent = await services.send_direct(
        "wa", "4915", DirectMessage("News: hi", template="news", template_params=("hi",))
    )
    assert sent == "wamid.1"
    assert [(c, t.name, p) for c, t, p in connector.templates] == [("4915", "news", ["hi"])]
    with pytest.raises(PermanentDeliveryError, match="no template 'old'"):
        await services.send_direct("wa", "4915", DirectMessage("x", template="old"))
    with pytest.raises(PermanentDeliveryError, match="cannot show reply buttons"):
        await services.send_direct("wa", "4915", DirectMessage("x", buttons=(Button("a", "A"),)))
    with pytest.raises(PermanentDeliveryError, match="cannot carry files"):
        media = MediaRef("mxc://example.com/a", "a.png", "image/png", 3, "m.image")
        await services.send_direct("wa", "4915", DirectMessage("x", media=media))
    with pytest.raises(PermanentDeliveryError, match="not configured"):
        await services.send_direct("gone", "4915", DirectMessage("x"))
    assert connector.sent == []


def test_the_chat_of_an_address_is_the_connectors() -> None:
    services = _services({"wa": _Templates(), "plain": RecordingConnector()})
    assert services.chat_for_address("wa", "+49 15") == "+49 15"  # the connector's answer
    with pytest.raises(ValueError, match="no addresses"):
        services.chat_for_address("plain", "jana@example.com")
    with pytest.raises(ValueError, match="no addresses"):
        services.chat_for_address("gone", "jana@example.com")


# ------------------------------------------------------------------ a feature's rooms


class _Rooms:
    def __init__(self, mine: str) -> None:
        self.mine = mine
        self.got: list[RoomMessage] = []

    async def on_room_message(self, message: RoomMessage) -> bool:
        if message.room_id != self.mine:
            return False
        self.got.append(message)
        return True


class _Members:
    def __init__(self, count: int) -> None:
        self.count = count

    async def joined_members(self, room_id: str) -> list[str]:
        return [f"@u{i}:example.com" for i in range(self.count)]


def _message(room: str, body: str, **content: Any) -> QueueItem:
    event = {
        "type": "m.room.message", "room_id": room, "sender": "@lead:example.com",
        "event_id": f"$e-{body}", "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": body, **content},
    }  # fmt: skip
    return QueueItem(1, f"mx:{room}", "matrix", event, 0, 0)


@pytest.mark.parametrize("members", [2, 5])
async def test_a_features_room_gets_its_messages_and_commands_still_run(
    database: object, members: int
) -> None:
    commands: list[str] = []

    async def run(evt: Any, portal: Any, text: str) -> None:
        commands.append(text)

    seams = Seams(parse(example()), None)  # type: ignore[arg-type]
    handler = _Rooms("!news:example.com")
    seams.add_room_handler(handler)
    ghosts: Any = type("G", (), {"is_own": lambda self, user: user == "@bot:example.com"})()
    unused: Any = None
    router = MatrixRouter(
        parse(example()),
        _Members(members),
        ghosts,
        unused,
        unused,
        unused,
        run,
        seams,  # type: ignore[arg-type]
    )
    await router.route(_message("!news:example.com", "Our December news"))
    await router.route(_message("!news:example.com", "!bridge help"))
    picture = {
        "msgtype": "m.image",
        "url": "mxc://example.com/p",
        "info": {"mimetype": "image/png"},
    }
    await router.route(_message("!news:example.com", "tree.png", **picture))
    await router.route(_message("!elsewhere:example.com", "status"))  # nobody's: as before
    (text, image) = handler.got
    assert (text.body, text.sender, text.media) == ("Our December news", "@lead:example.com", None)
    assert image.media is not None and image.media.url == "mxc://example.com/p"
    assert image.media.msgtype == "m.image" and image.body == ""  # a file name is no caption
    # A command in the feature's room is a command; elsewhere a two-member room is the
    # management room, as it always was.
    assert commands == (["help", "status"] if members == 2 else ["help"])


# ------------------------------------------------------------------ a feature's pages


async def test_a_features_routes_are_served_on_the_public_listener() -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=f"form of {request.match_info['list']}")

    route = Route("consent", "GET", "/form/{list}", page)
    seams = Seams(parse(example()), None)  # type: ignore[arg-type]
    seams.add_route(route)
    with pytest.raises(ValueError, match="starts with /"):
        seams.add_route(Route("consent", "GET", "form", page))
    listener = AppServiceListener("hs-token", 1 << 20, lambda items: None)
    for added in seams.routes:
        listener.add_feature_route(added.method, added.full_path, added.handler)
    port = free_port()
    await listener.start("127.0.0.1", port)
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}/features/consent/form"
            async with http.get(f"{base}/newsletter") as r:
                assert (r.status, await r.text()) == (200, "form of newsletter")
            async with http.post(f"{base}/newsletter") as r:
                assert r.status == 405
    finally:
        await listener.stop()
