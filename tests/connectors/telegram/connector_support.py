"""What the Telegram connector's tests share: the harness (simulator and ``FakeHost``, no Synapse),
a connector polling or on a webhook, update and Matrix message builders."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.connectors.telegram import TelegramConnector
from bridge.events import MatrixMedia, MatrixMessage, RemoteMessage
from bridge.types import PortalKey, RemoteChatID
from tests.contract.harness import FakeHost, staff_message

from ..conftest import running
from . import updates as tg
from .harness import WEBHOOK_SECRET, TelegramHarness
from .simulator import TelegramSimulator

ALICE = 5001
BOB = 5002
_event_ids = itertools.count(1)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def harness() -> AsyncIterator[TelegramHarness]:
    async for instance in running(TelegramHarness()):
        instance.sim.add_user(ALICE, "Alice", last_name="Archer", username="alice")
        instance.sim.add_user(BOB, "Bob")
        yield instance


@pytest.fixture
def sim(harness: TelegramHarness) -> TelegramSimulator:
    return harness.sim


@pytest.fixture
async def connector(harness: TelegramHarness, host: FakeHost) -> AsyncIterator[TelegramConnector]:
    """A connector in polling mode, receiving."""
    instance = harness.make_connector(host)
    await instance.start()
    try:
        await harness.sim.wait_for_consumer()
        yield instance
    finally:
        await instance.stop()


@pytest.fixture
async def hook(harness: TelegramHarness, host: FakeHost) -> AsyncIterator[TelegramConnector]:
    """A connector in webhook mode, its webhook set at the simulator."""
    instance = harness.make_connector(
        host, mode="webhook", webhook_url=host.base_url, webhook_secret=WEBHOOK_SECRET
    )
    await instance.start()
    try:
        await harness.sim.wait_for(lambda: harness.sim.webhook_url)
        yield instance
    finally:
        await instance.stop()


def chat(user_id: int = ALICE) -> dict[str, Any]:
    first = "Alice" if user_id == ALICE else "Bob"
    return tg.private_chat({"id": user_id, "first_name": first})


def text_update(text: str, user_id: int = ALICE, **kw: Any) -> dict[str, Any]:
    sender = tg.user(user_id, "Alice" if user_id == ALICE else "Bob")
    return tg.message_update(tg.text_message(tg.private_chat(sender), sender, text, **kw))


def portal(harness: TelegramHarness, chat_id: int | str = ALICE) -> PortalKey:
    return PortalKey(harness.account_id, RemoteChatID(str(chat_id)))


def matrix_message(
    harness: TelegramHarness, text: str, *, chat_id: int | str = ALICE, **fields: Any
) -> MatrixMessage:
    return staff_message(portal(harness, chat_id), text, **fields)


def texts(host: FakeHost) -> list[str]:
    return [e.text for e in host.events if isinstance(e, RemoteMessage)]


def calls(sim: TelegramSimulator, method: str, since: int = 0) -> list[Any]:
    return [c for c in sim.requests[since:] if c.method.lower() == method.lower()]


def business_updates(sim: TelegramSimulator) -> list[dict[str, Any]]:
    owner = tg.user(9001, "Owner", username="shop_owner")
    connection = sim.add_business_connection("bc-1", owner)
    customer = tg.user(BOB, "Bob")
    msg = tg.text_message(
        tg.private_chat(customer), customer, "hi shop", business_connection_id="bc-1"
    )
    deleted = tg.deleted_business_messages("bc-1", tg.private_chat(customer), [msg["message_id"]])
    return [
        tg.business_connection_update(connection),
        tg.business_message_update(msg),
        tg.edited_business_message_update(tg.edited(msg, text="hi shop!")),
        tg.deleted_business_messages_update(deleted),
    ]


def media(data: bytes, filename: str, mimetype: str = "text/plain") -> MatrixMedia:
    async def download() -> bytes:
        return data

    return MatrixMedia(f"mxc://example.com/{filename}", filename, mimetype, len(data), download)
