"""Ids Telegram never issues: a Business connection id is text the bridge keeps as part of
the chat id (a database key). One that no database can hold (a lone surrogate, which JSON
escapes can carry, or NUL) makes the update unreadable: refused, not half stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram.types import Update

from bridge.connector import PermanentDeliveryError
from bridge.connectors.telegram import TelegramConnector
from bridge.connectors.telegram.handle_remote import (
    FILE_PREFIX,
    UnreadableUpdate,
    update_to_events,
)
from bridge.events import RemoteAttachment, RemoteDelete, RemoteMessage
from tests.connectors.telegram import updates as tg

from ..conftest import running
from .harness import TelegramHarness

ALICE = tg.user(5_200_001, "Alice")
CHAT = tg.private_chat(ALICE)


def business_updates(connection: str) -> list[dict[str, Any]]:
    message = tg.text_message(CHAT, ALICE, "biz", business_connection_id=connection)
    return [
        tg.business_message_update(message),
        tg.edited_business_message_update(tg.edited(message, text="edited")),
        {"deleted_business_messages": tg.deleted_business_messages(connection, CHAT, [1])},
    ]


@pytest.mark.parametrize("connection", ["\ud800", "a\x00b", "conn\udfff"])
@pytest.mark.parametrize("index", [0, 1, 2])
def test_an_unstorable_business_connection_id_is_refused(connection: str, index: int) -> None:
    update = Update.model_validate({"update_id": 1, **business_updates(connection)[index]})
    with pytest.raises(UnreadableUpdate, match="business_connection_id"):
        update_to_events(update, bot_id=1, business=True)


@pytest.mark.parametrize(
    "connection", ["例え.テスト:😀", "\u202eevil", "x" * 70_000, "a:b:c", "Ωμέγα" * 2_000]
)
def test_long_and_non_ascii_business_connection_ids_are_bridged(connection: str) -> None:
    message, _, deleted = business_updates(connection)
    for raw, kind in ((message, RemoteMessage), (deleted, RemoteDelete)):
        update = Update.model_validate({"update_id": 1, **raw})
        (event,) = update_to_events(update, bot_id=1, business=True)
        assert isinstance(event, kind)
        assert event.chat.id == f"b:{connection}:{CHAT['id']}"


@pytest.mark.parametrize("odd", ["a\x00b", "id\ud800", "\udfff"])
def test_names_no_database_can_hold_are_cleaned(odd: str) -> None:
    """Titles, names and usernames become room names and display names (stored): NUL and
    lone surrogates become U+FFFD, everything else stays."""
    clean = odd.replace("\x00", "\ufffd").replace("\ud800", "\ufffd").replace("\udfff", "\ufffd")
    user = tg.user(7, odd, last_name="Ωμέγα")
    group = tg.group_chat(-(2**64), odd)
    nameless = tg.user(8, " ", username=odd)
    updates = [
        tg.message_update(tg.text_message(group, user, "hi")),
        tg.message_update(tg.text_message(tg.private_chat(nameless), nameless, "hi")),
    ]
    first, second = (
        update_to_events(Update.model_validate({"update_id": 1, **u}), bot_id=1, business=False)
        for u in updates
    )
    (in_group,), (private,) = first, second
    assert in_group.chat.name == clean and in_group.sender.displayname == f"{clean} Ωμέγα"
    assert private.chat.name == private.sender.displayname == f"@{clean}"


# --------------------------------------------------------------------------- files


@pytest.fixture
async def harness() -> AsyncIterator[TelegramHarness]:
    async for instance in running(TelegramHarness()):
        yield instance


@pytest.mark.parametrize(
    "file_id", ["x" * 70_000, "例え😀" * 3_000, "\u202eevil", "a\x00b", "id\ud800", "a/../b?c#d"]
)
async def test_a_file_id_telegram_never_issued_is_a_clear_permanent_failure(
    connector: TelegramConnector, file_id: str
) -> None:
    """A file of an odd id is bridged as an attachment (the message is not lost); fetching it
    fails once, for good, with a reason the staff can read - not an endless retry."""
    attachment = RemoteAttachment(url=FILE_PREFIX + file_id, filename="a.pdf", size=10)
    with pytest.raises(PermanentDeliveryError) as failure:
        await connector.download_attachment(attachment)
    assert len(failure.value.reason) < 1_000
