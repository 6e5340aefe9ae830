"""Bridge-initiated messages (``outbound`` queue items): the gates see them first, the
connector gets each once even when the item runs again after a crash, and the room shows
exactly what the customer got, once."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config import parse
from bridge.core.outbound import OutboundHandler
from bridge.core.services import Services
from bridge.db import Message, Portal, QueueItem
from bridge.seams import PASS, ConversationRef, Outgoing, Refuse, Seams, Verdict
from bridge.types import AccountID, RemoteChatID
from tests.test_config import example

from .outbound_support import RecordingConnector, RecordingNotices

ROOM = "!portal:example.com"


class _NoConsent:
    async def check(self, outgoing: Outgoing) -> Verdict:
        return Refuse("no consent") if "offer" in outgoing.text else PASS


class _Crash(Exception):
    pass


@pytest.fixture
async def parts(database: object) -> tuple[OutboundHandler, RecordingConnector, RecordingNotices]:
    await Portal("acc", "chat", ROOM, created_at=0).insert()
    config = parse(example())
    connector, notices = RecordingConnector(), RecordingNotices()
    seams = Seams(config, None)  # type: ignore[arg-type]
    seams.add_outbound_gate(_NoConsent())
    fake: Any = {"acc": connector}
    handler = OutboundHandler(config, None, fake, notices, seams)  # type: ignore[arg-type]
    return handler, connector, notices


async def _item(text: str) -> QueueItem:
    payload = {
        "account": "acc",
        "chat": "chat",
        "text": text,
        "by": "welcome",
        "reason": "welcome",
    }
    return await QueueItem.enqueue("rm:acc/chat", "outbound", payload)


async def test_sent_once_across_a_crash_after_sending(
    parts: tuple[OutboundHandler, RecordingConnector, RecordingNotices],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler, connector, notices = parts
    item = await _item("Welcome!")

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise _Crash

    # The process dies right after the connector took it and the item recorded that.
    with monkeypatch.context() as m:
        m.setattr(handler, "_show", crash)
        with pytest.raises(_Crash):
            await handler.handle(item)
    again = await QueueItem.get(item.id)  # what a restart loads
    assert again is not None and again.payload["sent"]["message_id"] == "r1"
    await handler.handle(again)
    await handler.handle(again)  # and once more: nothing new
    assert [m.text for m in connector.sent] == ["Welcome!"]
    assert list(notices.posted.values()) == ["🤖 Automatic message (welcome):\nWelcome!"]
    mapped = await Message.get_parts("acc", "chat", "r1")
    assert [m.event_id for m in mapped] == [next(f"$notice-{t}" for t in notices.posted)]


async def test_a_gate_refuses_and_nothing_is_sent(
    parts: tuple[OutboundHandler, RecordingConnector, RecordingNotices],
) -> None:
    handler, connector, notices = parts
    await handler.handle(await _item("A special offer"))
    assert connector.sent == [] and notices.posted == {}
    assert notices.failures == ["no consent"]


async def test_a_permanent_refusal_is_shown_and_not_retried(
    parts: tuple[OutboundHandler, RecordingConnector, RecordingNotices],
) -> None:
    handler, connector, notices = parts
    connector.refuse = True
    item = await _item("Welcome!")
    await handler.handle(item)
    assert notices.failures == ["the window is closed"] and notices.posted == {}
    assert "sent" not in (await QueueItem.get(item.id) or item).payload


async def test_each_message_has_a_name_of_its_own(
    parts: tuple[OutboundHandler, RecordingConnector, RecordingNotices],
) -> None:
    """The connector's id of a message (a webhook's Idempotency-Key, a mail's Message-ID)
    never repeats, although SQLite gives the id of a deleted queue row to the next one."""
    handler, connector, _ = parts

    class _Dispatcher:
        def submit(self, item: QueueItem) -> None:
            self.item = item

    dispatcher = _Dispatcher()
    services = Services(parse(example()), {"acc": connector}, None, None, None, None, dispatcher)  # type: ignore[arg-type,dict-item]
    ref = ConversationRef(AccountID("acc"), RemoteChatID("chat"), ROOM)
    for text in ("first", "second"):
        assert await services.send_text(ref, text, reason="welcome")
        await handler.handle(dispatcher.item)
        await dispatcher.item.delete()
    first, second = connector.sent
    assert first.event_id != second.event_id
