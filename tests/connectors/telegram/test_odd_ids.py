"""Ids Telegram never issues: a Business connection id is text the bridge keeps as part of
the chat id (a database key). One that no database can hold (a lone surrogate, which JSON
escapes can carry, or NUL) makes the update unreadable: refused, not half stored."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.types import Update

from bridge.connectors.telegram.handle_remote import UnreadableUpdate, update_to_events
from bridge.events import RemoteDelete, RemoteMessage
from tests.connectors.telegram import updates as tg

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
