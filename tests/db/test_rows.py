"""Row classes of the mapping tables: portals, ghosts, messages, reactions, channel accounts."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest
from mautrix.util.async_db import Database

from bridge.db import ChannelAccount, Ghost, Message, Portal, Reaction

UNIQUE_VIOLATION = (sqlite3.IntegrityError, asyncpg.UniqueViolationError)


# ---------------------------------------------------------------------------- portal


async def test_portal_insert_and_get(database: Database) -> None:
    portal = Portal(
        "acc", "chat-1", "!r1:example.com", name="Kundin Müller 🦊", topic="Support",
        is_group=True, metadata={"lang": "de", "n": [1, 2]}, created_at=1_700_000_000_123,
    )  # fmt: skip
    await portal.insert()
    assert await Portal.get("acc", "chat-1") == portal
    assert await Portal.get_by_room("!r1:example.com") == portal
    assert await Portal.get("acc", "chat-2") is None
    assert await Portal.get("other", "chat-1") is None
    assert await Portal.get_by_room("!missing:example.com") is None


async def test_portal_is_group_is_a_bool_on_every_backend(database: Database) -> None:
    await Portal("acc", "dm", None, is_group=False).insert()
    await Portal("acc", "group", None, is_group=True).insert()
    dm, group = await Portal.get("acc", "dm"), await Portal.get("acc", "group")
    assert dm is not None and dm.is_group is False
    assert group is not None and group.is_group is True


async def test_portals_without_room_do_not_collide(database: Database) -> None:
    await Portal("acc", "a", None).insert()
    await Portal("acc", "b", None).insert()
    assert await Portal.count() == 2
    with pytest.raises(UNIQUE_VIOLATION):
        await Portal("acc", "a", "!other:example.com").insert()


async def test_portal_room_id_is_unique(database: Database) -> None:
    await Portal("acc", "a", "!same:example.com").insert()
    with pytest.raises(UNIQUE_VIOLATION):
        await Portal("acc", "b", "!same:example.com").insert()


async def test_portal_all_is_ordered_and_filters_by_account(database: Database) -> None:
    for account, chat in [("b", "2"), ("a", "9"), ("b", "1"), ("a", "10")]:
        await Portal(account, chat, f"!{account}{chat}:example.com").insert()
    assert [(p.account, p.chat) for p in await Portal.all()] == [
        ("a", "10"), ("a", "9"), ("b", "1"), ("b", "2"),
    ]  # fmt: skip
    assert [p.chat for p in await Portal.all("b")] == ["1", "2"]
    assert await Portal.all("nobody") == []
    assert await Portal.count() == 4


async def test_portal_save_updates_every_mutable_column(database: Database) -> None:
    portal = Portal("acc", "chat", None, created_at=5)
    await portal.insert()
    portal.room_id = "!new:example.com"
    portal.name = "Renamed"
    portal.topic = "New topic"
    portal.is_group = True
    portal.metadata = {"k": "v"}
    portal.created_at = 6
    await portal.save()
    assert await Portal.get("acc", "chat") == portal
    assert await Portal.get_by_room("!new:example.com") == portal


async def test_portal_delete_removes_only_that_portal(database: Database) -> None:
    keep = Portal("acc", "keep", "!keep:example.com")
    drop = Portal("acc", "drop", "!drop:example.com")
    await keep.insert()
    await drop.insert()
    await drop.delete()
    assert await Portal.get("acc", "drop") is None
    assert await Portal.get_by_room("!drop:example.com") is None
    assert await Portal.get("acc", "keep") == keep


# ---------------------------------------------------------------------------- ghost


async def test_ghost_insert_get_and_get_by_mxid(database: Database) -> None:
    ghost = Ghost("acc", "user/1", "@bridge_acc_user/1:example.com", "Zoë", "mxc://x/y", {"a": 1})
    await ghost.insert()
    assert await Ghost.get("acc", "user/1") == ghost
    assert await Ghost.get_by_mxid("@bridge_acc_user/1:example.com") == ghost
    assert await Ghost.get("acc", "user/2") is None
    assert await Ghost.get("other", "user/1") is None
    assert await Ghost.get_by_mxid("@nobody:example.com") is None


async def test_ghost_defaults_round_trip(database: Database) -> None:
    await Ghost("acc", "u", "@u:example.com").insert()
    ghost = await Ghost.get("acc", "u")
    assert ghost == Ghost("acc", "u", "@u:example.com", None, None, {})


async def test_ghost_save_updates_profile(database: Database) -> None:
    ghost = Ghost("acc", "u", "@u:example.com", "Old")
    await ghost.insert()
    await Ghost("acc", "other", "@other:example.com", "Other").insert()
    ghost.displayname = "New name"
    ghost.avatar_url = "mxc://example.com/abc"
    ghost.metadata = {"seen": True}
    await ghost.save()
    assert await Ghost.get("acc", "u") == ghost
    other = await Ghost.get("acc", "other")
    assert other is not None and other.displayname == "Other"


async def test_ghost_mxid_is_unique(database: Database) -> None:
    await Ghost("acc", "u1", "@same:example.com").insert()
    with pytest.raises(UNIQUE_VIOLATION):
        await Ghost("acc", "u2", "@same:example.com").insert()


# ---------------------------------------------------------------------------- message


def _msg(message_id: str, part: int, event_id: str, **kw: object) -> Message:
    values: dict[str, object] = {
        "account": "acc", "chat": "chat", "message_id": message_id, "part": part,
        "event_id": event_id, "room_id": "!room:example.com", "sender": "remote-user",
        "sender_mxid": "@ghost:example.com", "timestamp": 1000, "metadata": {},
    }  # fmt: skip
    values.update(kw)
    return Message(**values)  # type: ignore[arg-type]


async def test_message_parts_come_back_in_numeric_part_order(database: Database) -> None:
    for part in (10, 2, 0, 1):
        await _msg("m1", part, f"$e{part}").insert()
    await _msg("m2", 0, "$other").insert()
    parts = await Message.get_parts("acc", "chat", "m1")
    assert [p.part for p in parts] == [0, 1, 2, 10]
    assert [p.event_id for p in parts] == ["$e0", "$e1", "$e2", "$e10"]
    assert await Message.get_parts("acc", "chat", "missing") == []
    assert await Message.get_parts("acc", "other-chat", "m1") == []


async def test_message_get_by_event(database: Database) -> None:
    msg = _msg("m1", 0, "$event", sender=None, metadata={"edit": 2}, timestamp=123456789012)
    await msg.insert()
    assert await Message.get_by_event("!room:example.com", "$event") == msg
    assert await Message.get_by_event("!elsewhere:example.com", "$event") is None
    assert await Message.get_by_event("!room:example.com", "$nope") is None


async def test_message_insert_conflict_is_ignored(database: Database) -> None:
    first = _msg("m1", 0, "$first")
    await first.insert()
    await _msg("m1", 0, "$second", timestamp=2000).insert()  # same key: no error, no change
    assert await Message.get_parts("acc", "chat", "m1") == [first]
    assert await Message.get_by_event("!room:example.com", "$second") is None


async def test_message_delete_all_and_delete(database: Database) -> None:
    for part in range(3):
        await _msg("m1", part, f"$a{part}").insert()
    keep = _msg("m2", 0, "$b")
    await keep.insert()
    single = _msg("m3", 0, "$c")
    await single.insert()
    await Message.delete_all("acc", "chat", "m1")
    assert await Message.get_parts("acc", "chat", "m1") == []
    await single.delete()
    assert await Message.get_parts("acc", "chat", "m3") == []
    assert await Message.get_parts("acc", "chat", "m2") == [keep]


async def test_message_last_in_chat_by_direction(database: Database) -> None:
    await _msg("r1", 0, "$r1", timestamp=100).insert()
    await _msg("r2", 0, "$r2", timestamp=300).insert()
    await _msg("s1", 0, "$s1", sender=None, timestamp=200).insert()
    await _msg("s2", 0, "$s2", sender=None, timestamp=400, chat="other").insert()
    last_remote = await Message.last_in_chat("acc", "chat", remote=True)
    last_staff = await Message.last_in_chat("acc", "chat", remote=False)
    assert last_remote is not None and last_remote.message_id == "r2"
    assert last_staff is not None and last_staff.message_id == "s1"
    assert await Message.last_in_chat("acc", "empty", remote=True) is None


# ---------------------------------------------------------------------------- reaction


def _reaction(event_id: str, emoji: str = "👍🏽", sender: str = "remote-user") -> Reaction:
    return Reaction("acc", "chat", "m1", sender, emoji, event_id, "!room:example.com")


async def test_reaction_insert_get_and_get_by_event(database: Database) -> None:
    reaction = _reaction("$r1")
    await reaction.insert()
    assert await Reaction.get("acc", "chat", "m1", "remote-user", "👍🏽") == reaction
    assert await Reaction.get_by_event("!room:example.com", "$r1") == reaction
    assert await Reaction.get("acc", "chat", "m1", "remote-user", "👍") is None
    assert await Reaction.get_by_event("!room:example.com", "$nope") is None


async def test_reaction_insert_upserts_the_event(database: Database) -> None:
    await _reaction("$old").insert()
    await _reaction("$new").insert()
    current = await Reaction.get("acc", "chat", "m1", "remote-user", "👍🏽")
    assert current is not None and current.event_id == "$new"
    assert await Reaction.get_by_event("!room:example.com", "$old") is None
    assert await Reaction.get_by_event("!room:example.com", "$new") == current


async def test_reaction_delete_removes_only_that_reaction(database: Database) -> None:
    mine, theirs = _reaction("$1", sender="@staff:example.com"), _reaction("$2")
    other_emoji = _reaction("$3", emoji="❤️")
    for r in (mine, theirs, other_emoji):
        await r.insert()
    await mine.delete()
    assert await Reaction.get_by_event("!room:example.com", "$1") is None
    assert await Reaction.get_by_event("!room:example.com", "$2") == theirs
    assert await Reaction.get_by_event("!room:example.com", "$3") == other_emoji


# ---------------------------------------------------------------------------- channel account


async def test_channel_account_ensure_save_get(database: Database) -> None:
    assert await ChannelAccount.get("support") is None
    account = await ChannelAccount.ensure("support", "webhook")
    assert account == ChannelAccount("support", "webhook", {})
    assert await ChannelAccount.get("support") == account

    account.data = {"offset": 42, "uids": [1, 2, 3], "nested": {"ok": True, "name": "Åsa"}}
    await account.save()
    assert await ChannelAccount.get("support") == account

    again = await ChannelAccount.ensure("support", "webhook")
    assert again.data == account.data  # ensure never resets stored data
    other = await ChannelAccount.ensure("sales", "webhook")
    assert other.data == {}
    assert (await ChannelAccount.get("support")) == account
