"""The broadcast room: a message is the draft (answered with its recipients per channel), the
words steer the list's broadcast; scheduling; who may start one."""

from __future__ import annotations

import datetime

import pytest
from mautrix.util.async_db import Database

from bridge.connector import PermanentDeliveryError
from bridge.db.broadcast import Broadcast
from bridge.features.broadcast.engine import Engine
from bridge.features.broadcast.room import BroadcastRooms
from bridge.seams import DirectMessage, MediaRef, RoomMessage
from tests.features.broadcast.support import HOOK, TG, Services, config, engine, subscribe

LEA = "@lea:example.com"


class Room:
    def __init__(self, services: Services, rooms: BroadcastRooms, room_id: str) -> None:
        self.services, self.rooms, self.room_id = services, rooms, room_id
        self.n = 0

    async def say(self, body: str, media: MediaRef | None = None, sender: str = LEA) -> str:
        self.n += 1
        message = RoomMessage(
            self.room_id, f"$e{self.n}", sender, "m.image" if media else "m.text", body,
            media=media,
        )  # fmt: skip
        assert await self.rooms.on_room_message(message)
        room, text, txn = self.services.notices[-1]
        assert (room, txn) == (self.room_id, f"broadcast-$e{self.n}")
        return text


async def make(services: Services, **options: object) -> tuple[Room, BroadcastRooms, Engine]:
    cfg = config((HOOK, TG))
    eng, registry, _ = engine(services, cfg, **options)
    rooms = BroadcastRooms(eng, cfg, services)  # type: ignore[arg-type]
    await rooms.ensure()
    await subscribe(registry, HOOK, "ann", "bob")
    await subscribe(registry, TG, "111")
    return Room(services, rooms, "!broadcast:newsletter:example.com"), rooms, eng


async def test_draft_counts_and_send(database: Database) -> None:
    services = Services()
    room, rooms, eng = await make(services)
    other = RoomMessage("!elsewhere:example.com", "$x", LEA, "m.text", "hello")
    assert not await rooms.on_room_message(other)
    assert "there is no draft" in await room.say("send")
    first = await room.say("Spring news!")
    assert first.startswith("Draft ") and "3 recipients (2 on Webhook" in first
    assert "1 on Telegram (support-telegram)" in first
    answer = await room.say("Spring news, second try!")
    drafts = await Broadcast.in_states(("draft", "discarded"))
    assert [d.state for d in drafts] == ["discarded", "draft"]
    assert answer.startswith(f"Draft {drafts[1].id}")
    assert await room.say("SEND") == f"Broadcast {drafts[1].id} is starting."
    await eng.wait(drafts[1].id)
    assert sorted(services.chats()) == ["111", "ann", "bob"]
    assert {m.text.split("\n")[0] for _, _, m in services.sent} == {"Spring news, second try!"}
    status = await room.say("status")
    assert (
        status == f"Broadcast {drafts[1].id} (Newsletter), done: 3 sent, 0 failed, 0 skipped of 3."
    )
    listing = await room.say("recipients")
    assert "sent: 1 on Telegram (support-telegram), 2 on Webhook (support-webhook)" in listing
    assert "no recipient is failed" in await room.say("recipients failed")
    assert "usage: recipients" in await room.say("recipients lost")


async def test_a_file_is_a_draft_and_failures_are_listed(database: Database) -> None:
    services = Services()
    room, _, eng = await make(services)

    async def refuse(account: str, chat: str, message: DirectMessage) -> None:
        if account == TG:
            raise PermanentDeliveryError("blocked by the user")

    services.before = refuse
    image = MediaRef("mxc://example.com/abc", "sale.png", "image/png", 1234, "m.image")
    assert (await room.say("sale.png", image)).startswith("Draft ")
    await room.say("send")
    (found,) = await Broadcast.in_states(("running", "done"))
    await eng.wait(found.id)
    assert {(m.media, m.text) for _, _, m in services.sent} == {
        (image, "Reply STOP to unsubscribe.")
    }
    listing = await room.say("recipients failed")
    assert "contact 3 on Telegram (111): blocked by the user" in listing


async def test_scheduling_pausing_and_who_may_send(database: Database) -> None:
    services = Services(levels={"@eve:example.com": "none"})
    room, _, eng = await make(services)
    await room.say("Later news")
    refused = await room.say("send", sender="@eve:example.com")
    assert refused.startswith("⚠️ you may not broadcast on support-webhook, support-telegram")
    assert "no broadcast of this list" in await room.say("pause")
    answer = await room.say("send at 2999-01-01 10:00")
    (found,) = await Broadcast.in_states(("scheduled",))
    assert answer == f"Broadcast {found.id} is scheduled for 2999-01-01 10:00:00 UTC."
    await eng.tick()
    assert (await Broadcast.get(found.id)).state == "scheduled"  # type: ignore[union-attr]
    assert "(Newsletter), scheduled: 0 sent" in await room.say("status")
    assert "cannot pause" in await room.say("pause")
    assert await room.say("cancel") == f"Broadcast {found.id}: cancel done."
    assert (await Broadcast.get(found.id)).state == "cancelled"  # type: ignore[union-attr]
    assert services.sent == []
    # a due one starts at the next tick
    await room.say("Now news")
    await room.say("send at 23:59")
    (due,) = await Broadcast.in_states(("scheduled",))
    await Broadcast.set(due.id, scheduled_at=1)
    await eng.tick()
    await eng.wait(due.id)
    assert len(services.sent) == 3


@pytest.mark.parametrize(
    ("text", "problem"),
    [("25:00", "no such time"), ("tomorrow", "HH:MM"), ("2001-01-01 10:00", "has passed")],
)
async def test_bad_times_are_refused(database: Database, text: str, problem: str) -> None:
    services = Services()
    room, rooms, _ = await make(services)
    await room.say("News")
    assert problem in await room.say(f"send at {text}")
    assert await Broadcast.in_states(("scheduled",)) == []
    at = rooms.parse_time("00:00")
    assert at > datetime.datetime.now().timestamp() * 1000


async def test_only_the_drafts_author_sends_it_and_a_reply_is_no_draft(database: Database) -> None:
    """A colleague's "looks good" as a reply leaves the draft alone; written on its own it
    becomes the draft, and then only that colleague can send it: never by mistake."""
    services = Services()
    room, rooms, eng = await make(services)
    first = await room.say("Spring news!")
    reply = RoomMessage(room.room_id, "$r", "@bob:example.com", "m.text", "looks good",
                        reply_to="$e1")  # fmt: skip
    notices = len(services.notices)
    assert await rooms.on_room_message(reply)
    assert len(services.notices) == notices  # nothing answered, the draft unchanged
    (draft,) = await Broadcast.in_states(("draft",))
    assert first.startswith(f"Draft {draft.id}")
    await room.say("looks good, send it", sender="@bob:example.com")
    answer = await room.say("send")
    assert "is @bob:example.com's: they send it, or write yours" in answer
    assert services.sent == [] and await eng.current("newsletter") is None
