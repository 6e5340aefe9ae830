"""What the tests of Telegram updates mapped to remote events share: Ada, her chats, and mapping
an update with a check that its events survive the core's JSON storage."""

from __future__ import annotations

import json
from typing import Any

from aiogram.types import Update

from bridge.connectors.telegram.handle_remote import update_to_events
from bridge.events import RemoteChat, RemoteEvent, RemoteUser
from bridge.types import RemoteChatID, RemoteUserID

BOT_ID = 7000001
DATE = 1_700_000_000
ADA = {"id": 42, "is_bot": False, "first_name": "Ada", "last_name": "Lovelace", "username": "ada"}
PRIVATE = {
    "id": 42,
    "type": "private",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "username": "ada",
}
GROUP = {"id": -1001234567890, "type": "supergroup", "title": "Support group"}
CHANNEL = {"id": -1009876543210, "type": "channel", "title": "News"}
ADA_USER = RemoteUser(id=RemoteUserID("42"), displayname="Ada Lovelace")
ADA_CHAT = RemoteChat(id=RemoteChatID("42"), name="Ada Lovelace", is_group=False)


def message(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"message_id": 11, "date": DATE, "chat": PRIVATE, "from": ADA}
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def events(business: bool = False, **update: Any) -> list[RemoteEvent]:
    """Map an update and check that every event survives the core's JSON storage."""
    parsed = Update.model_validate({"update_id": 1, **update})
    result = update_to_events(parsed, bot_id=BOT_ID, business=business)
    for event in result:
        stored = json.loads(json.dumps(event.to_json()))
        assert RemoteEvent.from_json(stored) == event
        assert event.dedup_key()
    return result


def one(business: bool = False, **update: Any) -> RemoteEvent:
    result = events(business, **update)
    assert len(result) == 1, result
    return result[0]


def file(prefix: str, **fields: Any) -> dict[str, Any]:
    return {"file_id": f"{prefix}-id", "file_unique_id": f"{prefix}U", **fields}
