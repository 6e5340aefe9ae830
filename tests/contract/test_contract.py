"""The connector contract: every registered connector, through its harness, passes these."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.connector import (
    Capabilities,
    ConfigError,
    DeleteHandler,
    EditHandler,
    MediaDownloader,
    MediaSender,
    NetworkConnector,
    PermanentDeliveryError,
    ReactionHandler,
    ReadReceiptHandler,
    ReplyHandler,
    StateKind,
    TemporaryDeliveryError,
    TypingHandler,
    button_problem,
)
from bridge.events import (
    Button,
    MatrixEdit,
    MatrixMedia,
    MatrixMessage,
    MatrixReaction,
    MatrixReactionRemove,
    MatrixReadReceipt,
    MatrixRedaction,
    MatrixTyping,
    MessageRef,
    RemoteButtonPress,
    RemoteMessage,
    SentMessage,
)
from bridge.types import MessageID, PortalKey, RemoteChatID, RemoteUserID
from tests.connectors.media_support import downloaded

from .fake_host import FakeHost
from .fixtures import running
from .harness import ConnectorHarness, Received, staff_message
from .registry import harness_classes


@pytest.fixture(params=harness_classes(), ids=lambda cls: cls.name)
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[ConnectorHarness]:
    async for instance in running(request.param()):
        yield instance


def portal(harness: ConnectorHarness, chat: str = "chat-1") -> PortalKey:
    return PortalKey(harness.account_id, RemoteChatID(harness.remote_id("chat", chat)))


def message_ref(harness: ConnectorHarness, message: str, sender: str) -> MessageRef:
    """A remote message the suite had the remote side send (labels, see ``remote_id``)."""
    return MessageRef(
        MessageID(harness.remote_id("message", message)),
        sender=RemoteUserID(harness.remote_id("user", sender)),
    )


def matrix_message(harness: ConnectorHarness, text: str, **fields: Any) -> MatrixMessage:
    return staff_message(fields.pop("portal", portal(harness)), text, **fields)


async def received_of(harness: ConnectorHarness, kind: str) -> list[Received]:
    return [item for item in await harness.remote_received() if item["type"] == kind]


# ---------------------------------------------------------------------------- config


def test_valid_config_parses(harness: ConnectorHarness) -> None:
    harness.connector_class.parse_config(harness.valid_config(), harness.config_key)


def test_invalid_configs_name_the_key(harness: ConnectorHarness) -> None:
    cases = harness.invalid_configs()
    assert cases, "a harness must list invalid configs"
    for raw, expected_key in cases:
        with pytest.raises(ConfigError) as caught:
            harness.connector_class.parse_config(raw, harness.config_key)
        assert caught.value.key == expected_key, (raw, str(caught.value))
        assert caught.value.message


def test_class_declares_channel_and_title(harness: ConnectorHarness) -> None:
    cls = harness.connector_class
    assert isinstance(cls.channel, str) and cls.channel
    assert isinstance(cls.title, str) and cls.title


async def test_init_is_offline(harness: ConnectorHarness, host: FakeHost) -> None:
    connector = harness.make_connector(host)
    assert isinstance(connector, NetworkConnector)
    assert host.routes == {} and host.events == []
    assert await harness.remote_received() == []


async def test_capabilities_are_data(harness: ConnectorHarness, host: FakeHost) -> None:
    connector = harness.make_connector(host)
    caps = connector.capabilities
    assert isinstance(caps, Capabilities)
    assert caps.delivery_deadline > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.html = not caps.html  # type: ignore[misc]


# ---------------------------------------------------------------------------- lifecycle


async def test_connected_after_start(connector: NetworkConnector, host: FakeHost) -> None:
    assert connector.state.kind == StateKind.CONNECTED
    assert host.state == connector.state


async def test_stop_completes(harness: ConnectorHarness, host: FakeHost) -> None:
    connector = harness.make_connector(host)
    await connector.start()
    await asyncio.wait_for(connector.stop(), timeout=5)


# ---------------------------------------------------------------------------- remote -> host


async def test_remote_message_reaches_host(
    harness: ConnectorHarness, connector: NetworkConnector, host: FakeHost
) -> None:
    await harness.remote_sends_message("chat-7", "customer-3", "Hello, shop!", "msg-1")
    (event,) = await host.wait_for_events(1)
    assert isinstance(event, RemoteMessage)
    assert event.chat.id == harness.remote_id("chat", "chat-7")
    assert event.sender.id == harness.remote_id("user", "customer-3")
    assert event.text == "Hello, shop!"
    assert event.message_id == harness.remote_id("message", "msg-1")


async def test_sender_name_reaches_host(
    harness: ConnectorHarness, connector: NetworkConnector, host: FakeHost
) -> None:
    await harness.remote_sends_message("c", "u", "hi", "m1", sender_name="Carla Customer")
    (event,) = await host.wait_for_events(1)
    assert event.sender.displayname == "Carla Customer"


async def test_duplicate_delivery_recorded_once(
    harness: ConnectorHarness, connector: NetworkConnector, host: FakeHost
) -> None:
    await harness.remote_sends_message("chat-1", "customer-1", "once", "msg-dup")
    await harness.remote_sends_duplicate("chat-1", "customer-1", "once", "msg-dup")
    await harness.remote_sends_message("chat-1", "customer-1", "twice", "msg-next")
    await host.wait_for_events(2)
    expected = [harness.remote_id("message", "msg-dup"), harness.remote_id("message", "msg-next")]
    assert [e.message_id for e in host.events] == expected  # type: ignore[attr-defined]
    assert len(host.duplicates) == 1


# ---------------------------------------------------------------------------- Matrix -> remote


async def test_send_message_reaches_remote(
    harness: ConnectorHarness, connector: NetworkConnector
) -> None:
    sent = await connector.send_message(matrix_message(harness, "Alice: your order shipped"))
    assert isinstance(sent, SentMessage)
    assert isinstance(sent.message_id, str) and sent.message_id
    (item,) = await received_of(harness, "message")
    assert item["chat_id"] == harness.remote_id("chat", "chat-1")
    assert "your order shipped" in (item["text"] or "")
    assert item["id"] == sent.message_id


async def test_temporary_failure(harness: ConnectorHarness, connector: NetworkConnector) -> None:
    await harness.make_remote_fail("temporary")
    with pytest.raises(TemporaryDeliveryError) as caught:
        await connector.send_message(matrix_message(harness, "try later"))
    assert caught.value.reason
    # The core retries; the remote side has recovered by then.
    sent = await connector.send_message(matrix_message(harness, "try later"))
    assert sent.message_id


async def test_permanent_failure(harness: ConnectorHarness, connector: NetworkConnector) -> None:
    await harness.make_remote_fail("permanent")
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_message(matrix_message(harness, "rejected"))
    assert caught.value.reason
    assert not isinstance(caught.value, TemporaryDeliveryError)


# ---------------------------------------------------------------------------- capabilities


def _claims(connector: NetworkConnector, protocol: type) -> bool:
    """Whether the connector claims ``protocol``. When it does not, check that it really has
    none of the protocol's methods: the core relies on the isinstance check alone to tell staff
    that the channel lacks the feature, so a half-implemented protocol would go unnoticed."""
    if isinstance(connector, protocol):
        return True
    methods = [m for m in vars(protocol) if m.startswith(("handle_matrix_", "send_", "download_"))]
    present = [m for m in methods if callable(getattr(connector, m, None))]
    assert not present, (
        f"{type(connector).__name__} has {present} but not all of {protocol.__name__}"
    )
    return False


async def test_reply(
    harness: ConnectorHarness, connector: NetworkConnector, host: FakeHost
) -> None:
    if not _claims(connector, ReplyHandler):
        return
    assert isinstance(connector, ReplyHandler)
    await harness.remote_sends_message("chat-1", "customer-1", "Where is it?", "msg-q")
    await host.wait_for_events(1)
    ref = message_ref(harness, "msg-q", "customer-1")
    sent = await connector.send_reply(matrix_message(harness, "On its way", reply_to=ref))
    assert sent.message_id
    (item,) = await received_of(harness, "message")
    assert item["reply_to"] == harness.remote_id("message", "msg-q")
    assert "On its way" in (item["text"] or "")


async def test_edit(harness: ConnectorHarness, connector: NetworkConnector) -> None:
    if not _claims(connector, EditHandler):
        return
    assert isinstance(connector, EditHandler)
    sent = await connector.send_message(matrix_message(harness, "Teh answer"))
    await connector.handle_matrix_edit(
        MatrixEdit(
            portal=portal(harness),
            event_id="$edit:example.com",
            sender="@alice:example.com",
            target=MessageRef(sent.message_id),
            text="The answer",
        )
    )
    (item,) = await received_of(harness, "edit")
    assert item["target"] == sent.message_id
    assert "The answer" in (item["text"] or "")


async def test_delete(harness: ConnectorHarness, connector: NetworkConnector) -> None:
    if not _claims(connector, DeleteHandler):
        return
    assert isinstance(connector, DeleteHandler)
    sent = await connector.send_message(matrix_message(harness, "oops"))
    await connector.handle_matrix_redaction(
        MatrixRedaction(
            portal=portal(harness),
            event_id="$redaction:example.com",
            sender="@alice:example.com",
            target=MessageRef(sent.message_id),
        )
    )
    (item,) = await received_of(harness, "delete")
    assert item["target"] == sent.message_id


async def test_reactions(
    harness: ConnectorHarness, connector: NetworkConnector, host: FakeHost
) -> None:
    if not _claims(connector, ReactionHandler):
        return
    assert isinstance(connector, ReactionHandler)
    await harness.remote_sends_message("chat-1", "customer-1", "Thanks!", "msg-thanks")
    await host.wait_for_events(1)
    target = message_ref(harness, "msg-thanks", "customer-1")
    common: dict[str, Any] = {
        "portal": portal(harness),
        "sender": "@alice:example.com",
        "target": target,
    }
    await connector.handle_matrix_reaction(
        MatrixReaction(event_id="$react:example.com", emoji="👍", **common)
    )
    await connector.handle_matrix_reaction_remove(
        MatrixReactionRemove(event_id="$unreact:example.com", emoji="👍", **common)
    )
    (added,) = await received_of(harness, "reaction")
    (removed,) = await received_of(harness, "reaction_remove")
    assert added["target"] == removed["target"] == harness.remote_id("message", "msg-thanks")
    assert added["emoji"] == removed["emoji"] == "👍"


async def test_send_media(harness: ConnectorHarness, connector: NetworkConnector) -> None:
    if not _claims(connector, MediaSender):
        return
    assert isinstance(connector, MediaSender)
    data = bytes(range(256)) * 8

    async def download() -> bytes:
        return data

    media = MatrixMedia(
        "mxc://example.com/abc", "invoice.pdf", "application/pdf", len(data), download
    )
    sent = await connector.send_media(
        matrix_message(harness, "invoice.pdf", msgtype="m.file", media=media)
    )
    assert sent.message_id
    (item,) = await received_of(harness, "message")
    attachment = item.get("attachment")
    assert attachment is not None
    assert attachment["data"] == data
    assert attachment["filename"] == "invoice.pdf"


async def test_send_media_over_limit_is_permanent(
    harness: ConnectorHarness, connector: NetworkConnector
) -> None:
    if not _claims(connector, MediaSender):
        return
    assert isinstance(connector, MediaSender)
    limits = connector.capabilities.max_file_size
    limit = limits.get("m.file", limits.get("*"))
    if limit is None:
        pytest.skip("the connector declares no file size limit")
    downloads = 0

    async def download() -> bytes:
        nonlocal downloads
        downloads += 1
        return b"\0" * (limit + 1)

    media = MatrixMedia(
        "mxc://example.com/big", "big.bin", "application/octet-stream", limit + 1, download
    )
    with pytest.raises(PermanentDeliveryError):
        await connector.send_media(
            matrix_message(harness, "big.bin", msgtype="m.file", media=media)
        )
    assert downloads == 0, "a declared size over the limit must be refused before downloading"
    assert await received_of(harness, "message") == []


async def test_download_attachment(
    harness: ConnectorHarness, connector: NetworkConnector, host: FakeHost
) -> None:
    if not _claims(connector, MediaDownloader):
        return
    assert isinstance(connector, MediaDownloader)
    data = b"\x89PNG\r\n\x1a\n" + bytes(1000)
    await harness.remote_sends_attachment(
        "chat-1", "customer-1", "msg-pic", data, "pic.png", "image/png"
    )
    (event,) = await host.wait_for_events(1)
    assert isinstance(event, RemoteMessage)
    # The file sent; a connector may add its own (email attaches the original .eml).
    attachment = next(
        (a for a in event.attachments if a.filename == "pic.png"), event.attachments[0]
    )
    content, mimetype = await downloaded(connector, attachment)
    assert content == data
    assert mimetype == "image/png"


async def test_read_receipt(
    harness: ConnectorHarness, connector: NetworkConnector, host: FakeHost
) -> None:
    if not _claims(connector, ReadReceiptHandler):
        return
    assert isinstance(connector, ReadReceiptHandler)
    await harness.remote_sends_message("chat-1", "customer-1", "Hi", "msg-read")
    await host.wait_for_events(1)
    target = message_ref(harness, "msg-read", "customer-1")
    await connector.handle_matrix_read_receipt(
        MatrixReadReceipt(portal=portal(harness), sender="@alice:example.com", target=target)
    )
    (item,) = await received_of(harness, "read_receipt")
    assert item["target"] == harness.remote_id("message", "msg-read")


async def test_typing(harness: ConnectorHarness, connector: NetworkConnector) -> None:
    if not _claims(connector, TypingHandler):
        return
    assert isinstance(connector, TypingHandler)
    await connector.handle_matrix_typing(
        MatrixTyping(portal=portal(harness), sender="@alice:example.com", typing=True)
    )
    items = await received_of(harness, "typing")
    assert items and items[-1]["chat_id"] == harness.remote_id("chat", "chat-1")


async def test_buttons_round_trip(
    harness: ConnectorHarness, connector: NetworkConnector, host: FakeHost
) -> None:
    """A connector whose capabilities take reply buttons shows them, and the customer's press
    comes back as one ``RemoteButtonPress`` naming the message and the button; one without
    them is never handed buttons (the core refuses them with this reason)."""
    if connector.capabilities.max_buttons == 0:
        reason = button_problem((Button("consent:yes", "Confirm"),), connector.capabilities, "x")
        assert reason == "x cannot show reply buttons"
        return
    # The customer writes first (a WhatsApp window is open, a Telegram chat is started).
    await harness.remote_sends_message("chat-1", "customer-1", "Sign me up", "msg-in")
    await host.wait_for_events(1)
    buttons = (Button("consent:yes", "Confirm"), Button("consent:no", "Decline"))
    sent = await connector.send_message(
        matrix_message(
            harness, "Subscribe?", buttons=buttons[: connector.capabilities.max_buttons]
        )
    )
    (item,) = await received_of(harness, "message")
    assert item["id"] == sent.message_id
    assert item["buttons"] == [(b.id, b.title) for b in buttons[: len(item["buttons"])]]
    assert item["buttons"]
    await harness.remote_presses_button("chat-1", "customer-1", sent.message_id, "consent:yes")
    (_, press) = await host.wait_for_events(2)
    assert isinstance(press, RemoteButtonPress)
    assert press.chat.id == harness.remote_id("chat", "chat-1")
    assert press.sender.id == harness.remote_id("user", "customer-1")
    assert (press.message_id, press.button_id, press.title) == (
        sent.message_id, "consent:yes", "Confirm",
    )  # fmt: skip
