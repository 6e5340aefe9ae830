"""Remote ids of any length (a Message-ID of thousands of non-ASCII characters) are stored and
found on SQLite and PostgreSQL: indexes hold fixed-size digests, not the ids; and the upgrade
converts rows stored before."""

from __future__ import annotations

import random

from mautrix.util.async_db import Database, UpgradeTable

import bridge.db
from bridge.db import Ghost, Message, Portal, QueueItem, Reaction, RemoteDedup
from bridge.db.keys import digest
from tests.db.support import Databases

_rng = random.Random(7)
LONG = "<" + "".join(chr(_rng.randrange(0x400, 0x9FFF)) for _ in range(3000)) + "@mail.example>"
"""3,000 non-ASCII characters that do not compress (PostgreSQL compresses index entries)."""


async def test_long_remote_ids_are_stored_and_found(database: Database) -> None:
    assert len(LONG.encode()) > 6000
    item = await QueueItem.record_remote("mail", f"{LONG}/{LONG}", "rm:mail/x", {"n": 1})
    assert item is not None
    assert await QueueItem.record_remote("mail", f"{LONG}/{LONG}", "rm:mail/x", {}) is None
    assert await RemoteDedup.seen("mail", f"{LONG}/{LONG}")

    await Portal("mail", LONG, "!room:x", name="n", created_at=1).insert()
    portal = await Portal.get("mail", LONG)
    assert portal is not None and portal.chat == LONG
    portal.name = "renamed"
    await portal.save()
    Portal.forget_cached()
    found = await Portal.get("mail", LONG)
    assert found is not None and found.name == "renamed"

    await Ghost("mail", LONG, "@g:x", "Ghost").insert()
    ghost = await Ghost.get("mail", LONG)
    assert ghost is not None and ghost.remote_user == LONG
    ghost.displayname = "Other"
    await ghost.save()

    for part in (0, 1):
        await Message("mail", LONG, LONG, part, f"$e{part}", "!room:x", LONG, "@g:x", 5).insert()
    await Message("mail", LONG, LONG, 0, "$dup", "!room:x", LONG, "@g:x", 5).insert()  # kept
    parts = await Message.get_parts("mail", LONG, LONG)
    assert [(m.part, m.event_id, m.message_id) for m in parts] == [
        (0, "$e0", LONG), (1, "$e1", LONG),
    ]  # fmt: skip
    assert await Message.chat_of("mail", [LONG]) == LONG
    last = await Message.last_in_chat("mail", LONG, remote=True)
    assert last is not None and last.chat == LONG

    await Reaction("mail", LONG, LONG, LONG, LONG, "$r", "!room:x").insert()
    await Reaction("mail", LONG, LONG, LONG, LONG, "$r2", "!room:x").insert()  # replaces
    reaction = await Reaction.get("mail", LONG, LONG, LONG, LONG)
    assert reaction is not None and reaction.event_id == "$r2"
    assert await Reaction.by_sender("mail", LONG, LONG, LONG) == [reaction]
    await reaction.delete()
    assert await Reaction.get("mail", LONG, LONG, LONG, LONG) is None

    await parts[1].delete()
    await Message.delete_all("mail", LONG, "other")
    assert len(await Message.get_parts("mail", LONG, LONG)) == 1
    await Message.delete_all("mail", LONG, LONG)
    assert await Message.get_parts("mail", LONG, LONG) == []


async def test_upgrade_converts_rows_stored_before(databases: Databases) -> None:
    before = UpgradeTable()
    before.upgrades = bridge.db.upgrade_table.upgrades[:2]  # the schema of version 2
    old = Database.create(databases.url, upgrade_table=before)
    await old.start()
    await old.execute(
        "INSERT INTO portal (account, chat, room_id, created_at) VALUES ('tg', 'c1', '!r:x', 1)"
    )
    await old.execute(
        "INSERT INTO ghost (account, remote_user, mxid) VALUES ('tg', 'u1', '@tg_u1:x')"
    )
    await old.execute(
        "INSERT INTO message (account, chat, message_id, part, event_id, room_id, sender,"
        " sender_mxid, timestamp) VALUES ('tg', 'c1', 'm1', 0, '$e', '!r:x', 'u1', '@g:x', 1)"
    )
    await old.execute(
        "INSERT INTO reaction (account, chat, message_id, sender, emoji, event_id, room_id)"
        " VALUES ('tg', 'c1', 'm1', 'u1', '👍', '$r', '!r:x')"
    )
    await old.execute(
        "INSERT INTO remote_dedup (account, dedup_key, received_at) VALUES ('tg', 'c1/m1', 1)"
    )
    await old.stop()

    await databases.open()
    portal = await Portal.get("tg", "c1")
    assert portal is not None and portal.room_id == "!r:x"
    ghost = await Ghost.get("tg", "u1")
    assert ghost is not None and ghost.mxid == "@tg_u1:x"
    assert [m.event_id for m in await Message.get_parts("tg", "c1", "m1")] == ["$e"]
    assert await Message.chat_of("tg", ["m1"]) == "c1"
    reaction = await Reaction.get("tg", "c1", "m1", "u1", "👍")
    assert reaction is not None and reaction.event_id == "$r"
    assert await RemoteDedup.seen("tg", "c1/m1")
    assert await QueueItem.record_remote("tg", "c1/m1", "k", {}) is None  # still a duplicate
    # Stored again with the new code: the old rows are found, nothing doubles.
    await Message("tg", "c1", "m1", 0, "$other", "!r:x", "u1", "@g:x", 1).insert()
    assert [m.event_id for m in await Message.get_parts("tg", "c1", "m1")] == ["$e"]
    assert digest("c1/m1") == await bridge.db.RemoteDedup.db.fetchval(
        "SELECT dedup_key FROM remote_dedup"
    )
