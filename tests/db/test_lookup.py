"""Finding a conversation by remote message ids (mail threading), on SQLite and PostgreSQL."""

from __future__ import annotations

from mautrix.util.async_db import Database

from bridge.db import Message


async def test_chat_of_finds_the_newest_matching_message(database: Database) -> None:
    def row(chat: str, mid: str, ts: int, account: str = "mail") -> Message:
        return Message(account, chat, mid, 0, f"$e-{mid}", "!r:x", None, "@s:x", ts)

    for message in (
        row("alice/thread-1", "m1@x", 1),
        row("alice/thread-2", "m2@x", 5),
        row("other", "m3@x", 9, account="other-account"),
    ):
        await message.insert()
    assert await Message.chat_of("mail", ["nope@x", "m1@x"]) == "alice/thread-1"
    assert await Message.chat_of("mail", ["m1@x", "m2@x"]) == "alice/thread-2"
    assert await Message.chat_of("mail", ["m3@x"]) is None  # another account's message
    assert await Message.chat_of("mail", []) is None
