"""Telegram updates that change what was said, mapped to remote events: edits, Telegram Business,
reactions, and the updates that give nothing."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.events import (
    RemoteChat,
    RemoteDelete,
    RemoteEdit,
    RemoteMessage,
    RemoteReaction,
    RemoteReactionRemove,
    RemoteUser,
)
from bridge.types import MessageID, RemoteChatID, RemoteUserID

from .remote_support import (
    ADA,
    ADA_CHAT,
    ADA_USER,
    BOT_ID,
    CHANNEL,
    DATE,
    GROUP,
    PRIVATE,
    events,
    file,
    message,
    one,
)

# --------------------------------------------------------------------------- edits


def test_edit() -> None:
    event = one(
        edited_message=message(
            text="fixed typo",
            entities=[{"type": "bold", "offset": 0, "length": 5}],
            edit_date=DATE + 60,
        )
    )
    assert event == RemoteEdit(
        chat=ADA_CHAT,
        sender=ADA_USER,
        timestamp=float(DATE + 60),
        message_id=MessageID("11"),
        text="fixed typo",
        html="<strong>fixed</strong> typo",
        edit_id=str(DATE + 60),
    )


def test_caption_edit() -> None:
    event = one(
        edited_message=message(
            photo=[file("p", width=1, height=1)], caption="new caption", edit_date=DATE + 5
        )
    )
    assert isinstance(event, RemoteEdit)
    assert event.text == "new caption"
    assert event.html is None
    assert event.edit_id == str(DATE + 5)


# --------------------------------------------------------------------------- business


def business_message(**fields: Any) -> dict[str, Any]:
    return message(business_connection_id="conn-1", **fields)


def test_business_message() -> None:
    event = one(business=True, business_message=business_message(text="hello shop"))
    assert event == RemoteMessage(
        chat=RemoteChat(id=RemoteChatID("b:conn-1:42"), name="Ada Lovelace", is_group=False),
        sender=ADA_USER,
        timestamp=float(DATE),
        message_id=MessageID("11"),
        text="hello shop",
    )


def test_business_updates_are_ignored_unless_enabled() -> None:
    assert events(business_message=business_message(text="x")) == []
    assert events(edited_business_message=business_message(text="x", edit_date=DATE)) == []
    deleted = {"business_connection_id": "conn-1", "chat": PRIVATE, "message_ids": [1]}
    assert events(deleted_business_messages=deleted) == []


def test_business_messages_sent_by_this_bot_are_ignored() -> None:
    me = {"id": BOT_ID, "is_bot": True, "first_name": "Bridge"}
    owner = {"id": 99, "is_bot": False, "first_name": "Shop owner"}
    sent = business_message(text="from the bot", sender_business_bot=me, **{"from": owner})
    assert events(business=True, business_message=sent) == []
    # What the owner writes from their own Telegram app is bridged.
    event = one(business=True, business_message=business_message(text="hi", **{"from": owner}))
    assert event.sender == RemoteUser(id=RemoteUserID("99"), displayname="Shop owner")


def test_business_edit() -> None:
    event = one(
        business=True,
        edited_business_message=business_message(text="changed", edit_date=DATE + 9),
    )
    assert isinstance(event, RemoteEdit)
    assert event.chat.id == "b:conn-1:42"
    assert event.edit_id == str(DATE + 9)


def test_deleted_business_messages() -> None:
    deleted = {"business_connection_id": "conn-1", "chat": PRIVATE, "message_ids": [3, 4]}
    result = events(business=True, deleted_business_messages=deleted)
    chat = RemoteChat(id=RemoteChatID("b:conn-1:42"), name="Ada Lovelace", is_group=False)
    sender = RemoteUser(id=RemoteUserID("42"), displayname="Ada Lovelace")
    assert result == [
        RemoteDelete(chat=chat, sender=sender, message_id=MessageID("3")),
        RemoteDelete(chat=chat, sender=sender, message_id=MessageID("4")),
    ]


# --------------------------------------------------------------------------- reactions


def reaction(old: list[dict[str, Any]], new: list[dict[str, Any]], **fields: Any) -> Any:
    data = {
        "chat": GROUP,
        "message_id": 77,
        "date": DATE,
        "old_reaction": old,
        "new_reaction": new,
        "user": ADA,
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def emoji(value: str) -> dict[str, Any]:
    return {"type": "emoji", "emoji": value}


GROUP_CHAT = RemoteChat(id=RemoteChatID("-1001234567890"), name="Support group", is_group=True)


def test_reaction_added() -> None:
    event = one(message_reaction=reaction([], [emoji("👍")]))
    assert event == RemoteReaction(
        chat=GROUP_CHAT,
        sender=ADA_USER,
        timestamp=float(DATE),
        message_id=MessageID("77"),
        emoji="👍",
    )


def test_reaction_changed() -> None:
    result = events(
        message_reaction=reaction([emoji("👍"), emoji("🔥")], [emoji("🔥"), emoji("❤")])
    )
    assert result == [
        RemoteReactionRemove(
            chat=GROUP_CHAT,
            sender=ADA_USER,
            timestamp=float(DATE),
            message_id=MessageID("77"),
            emoji="👍",
            removal_id=str(DATE),
        ),
        RemoteReaction(
            chat=GROUP_CHAT,
            sender=ADA_USER,
            timestamp=float(DATE),
            message_id=MessageID("77"),
            emoji="❤",
        ),
    ]


def test_custom_and_paid_reactions_are_skipped() -> None:
    custom = {"type": "custom_emoji", "custom_emoji_id": "5368324170671202286"}
    assert events(message_reaction=reaction([], [custom, {"type": "paid"}])) == []
    assert events(message_reaction=reaction([custom], [])) == []


def test_anonymous_reaction_comes_from_the_actor_chat() -> None:
    event = one(message_reaction=reaction([], [emoji("🎉")], user=None, actor_chat=CHANNEL))
    assert event.sender == RemoteUser(id=RemoteUserID("-1009876543210"), displayname="News")


def test_reactions_of_the_bot_and_of_nobody_are_skipped() -> None:
    me = {"id": BOT_ID, "is_bot": True, "first_name": "Bridge"}
    assert events(message_reaction=reaction([], [emoji("👍")], user=me)) == []
    assert events(message_reaction=reaction([], [emoji("👍")], user=None)) == []


# --------------------------------------------------------------------------- other updates


@pytest.mark.parametrize(
    "update",
    [
        {"channel_post": message(chat=CHANNEL, text="post", **{"from": None})},
        {"callback_query": {"id": "1", "from": ADA, "chat_instance": "ci", "data": "x"}},
        {
            "my_chat_member": {
                "chat": GROUP,
                "from": ADA,
                "date": DATE,
                "old_chat_member": {"status": "left", "user": ADA},
                "new_chat_member": {"status": "member", "user": ADA},
            }
        },
        {
            "business_connection": {
                "id": "conn-1",
                "user": ADA,
                "user_chat_id": 42,
                "date": DATE,
                "is_enabled": True,
            }
        },
        {
            "message_reaction_count": {
                "chat": GROUP,
                "message_id": 1,
                "date": DATE,
                "reactions": [],
            }
        },
    ],
)
def test_other_updates_give_nothing(update: dict[str, Any]) -> None:
    assert events(business=True, **update) == []
