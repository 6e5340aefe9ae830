"""One ordering domain per conversation: the customer's events and the staff's events of one
conversation run one at a time, in order, so state read and written by both directions loses
no update; conversation state written value by value loses nothing to a concurrent writer."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from bridge.core.dispatcher import Dispatcher
from bridge.core.pipeline import Pipeline
from bridge.core.util import conversation_key
from bridge.db import Conversation, Portal, QueueItem
from bridge.events import RemoteChat, RemoteMessage, RemoteUser
from bridge.seams import Seams
from bridge.types import AccountID, MessageID, RemoteChatID, RemoteUserID

ACCOUNT, CHAT, ROOM = "acc", "chat-1", "!portal:example.com"
EACH = 40


class _Counter:
    """Stands in for the handlers of both directions: each item reads the conversation's
    count, yields (as any database or network call does), and writes it back plus one."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.order: list[str] = []

    async def bump(self, what: str) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        count = (await Conversation.data(ACCOUNT, CHAT)).get("count", 0)
        await asyncio.sleep(random.uniform(0, 0.003))
        await Conversation.put_data(ACCOUNT, CHAT, {"count": count + 1})
        self.order.append(what)
        self.running -= 1

    async def route(self, item: QueueItem) -> None:
        await self.bump(f"staff {item.payload['n']}")

    async def handle(self, account: str, event: RemoteMessage) -> None:
        await self.bump(f"customer {event.message_id}")


def _message(i: int) -> RemoteMessage:
    return RemoteMessage(
        chat=RemoteChat(RemoteChatID(CHAT)),
        sender=RemoteUser(RemoteUserID("customer")),
        message_id=MessageID(str(i)),
        text=f"in {i}",
    )


async def test_both_directions_of_a_conversation_lose_no_update(database: object) -> None:
    await Portal(ACCOUNT, CHAT, ROOM, created_at=0).insert()
    await Conversation.ensure(ACCOUNT, CHAT, 0)
    counter = _Counter()
    pipeline: Pipeline
    dispatcher = Dispatcher(lambda item: pipeline.process(item))
    seams: Any = Seams(config=None, services=None)  # type: ignore[arg-type]
    fake: Any = counter
    pipeline = Pipeline(dispatcher, fake, fake, fake, seams)

    async def customer() -> None:
        for i in range(EACH):
            assert await pipeline.record_remote(AccountID(ACCOUNT), _message(i))
            await asyncio.sleep(random.uniform(0, 0.002))

    async def staff() -> None:
        for i in range(EACH):
            event = {"type": "m.room.message", "room_id": ROOM, "n": i}
            key = await Pipeline.matrix_key(event)
            items = await QueueItem.record_transaction(f"txn{i}", [(key, "matrix", event)])
            assert items is not None
            for item in items:
                dispatcher.submit(item)
            await asyncio.sleep(random.uniform(0, 0.002))

    try:
        await asyncio.gather(customer(), staff())
        await asyncio.wait_for(dispatcher.wait_idle(), 30)
    finally:
        await dispatcher.stop()
    assert (await Conversation.data(ACCOUNT, CHAT))["count"] == 2 * EACH
    assert counter.most == 1
    # Each direction in its own order.
    for who in ("customer", "staff"):
        seen = [int(w.split()[1]) for w in counter.order if w.startswith(who)]
        assert seen == list(range(EACH))


async def test_a_room_that_is_no_portal_keeps_its_own_key(database: object) -> None:
    await Portal(ACCOUNT, CHAT, ROOM, created_at=0).insert()
    assert await Pipeline.matrix_key({"room_id": ROOM}) == conversation_key(ACCOUNT, CHAT)
    assert await Pipeline.matrix_key({"room_id": "!dm:example.com"}) == "mx:!dm:example.com"


async def test_concurrent_writers_of_conversation_values_lose_nothing(database: object) -> None:
    await Conversation.ensure(ACCOUNT, CHAT, 0)

    async def writer(prefix: str) -> None:
        for i in range(EACH):
            await Conversation.put_data(ACCOUNT, CHAT, {f"{prefix}{i}": i})

    await asyncio.gather(writer("remote"), writer("staff"), writer("feature"))
    data = await Conversation.data(ACCOUNT, CHAT)
    assert len(data) == 3 * EACH
    assert all(data[f"staff{i}"] == i for i in range(EACH))


async def test_first_contact_is_stable_and_business_started_has_none(database: object) -> None:
    assert await Conversation.first_message_of(ACCOUNT, CHAT, "m1", 0) == "m1"
    assert await Conversation.first_message_of(ACCOUNT, CHAT, "m1", 0) == "m1"  # a retry
    assert await Conversation.first_message_of(ACCOUNT, CHAT, "m2", 0) == "m1"
    await Conversation.ensure(ACCOUNT, "started-by-us", 0, "")
    assert await Conversation.first_message_of(ACCOUNT, "started-by-us", "m1", 0) == ""
