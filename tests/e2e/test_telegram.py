"""Telegram end to end: the Bot API simulator <-> the bridge <-> a staff client on Synapse."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import struct
import zlib
from typing import Any

from tests.conftest import WEBHOOK_SECRET, Stack
from tests.connectors.telegram import updates as tg
from tests.connectors.telegram.simulator import TelegramSimulator
from tests.e2e.helpers import body_is, join_invite_named
from tests.infra.staff import StaffClient

_ids = itertools.count(7_000_001)


def _png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _customer(first: str, last: str = "Customer") -> tuple[dict[str, Any], dict[str, Any]]:
    user = tg.user(next(_ids), first, last_name=last)
    return user, tg.private_chat(user)


async def _open(
    stack: Stack, staff: StaffClient, sim: TelegramSimulator, first: str, text: str = "Hello"
) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A customer writes to the bot; returns the portal room, user, chat and first message."""
    user, chat = _customer(first)
    msg = tg.text_message(chat, user, text)
    sim.push_update(tg.message_update(msg))
    room_id = await join_invite_named(staff, f"{first} Customer")
    await staff.wait_for_event(body_is(text), room_id=room_id)
    return room_id, user, chat, msg


def _ev(staff: StaffClient, room_id: str, predicate: Any, timeout: float = 30) -> Any:
    return staff.wait_for_event(predicate, room_id=room_id, timeout=timeout)


def _msgtype(kind: str) -> Any:
    return lambda e: e.get("type") == "m.room.message" and e["content"].get("msgtype") == kind


async def test_private_chat_formatting_both_ways(stack: Stack, staff: StaffClient) -> None:
    sim = stack.telegram
    user, chat = _customer("Ivan", "Formatted")
    sim.push_update(tg.message_update(tg.html_message(chat, user, "<b>Hi</b> <i>there</i> 👋")))
    room_id = await join_invite_named(staff, "Ivan Formatted")
    event = await _ev(staff, room_id, body_is("Hi there 👋"))
    assert "<strong>Hi</strong>" in event["content"]["formatted_body"]
    assert "<em>there</em>" in event["content"]["formatted_body"]
    members = await staff.joined_members(room_id)
    assert event["sender"] in members

    reply = await staff.send_text(
        room_id,
        "Sure!",
        html="<strong>Sure</strong><script>x</script>!",
        reply_to=event["event_id"],
    )
    sent = await sim.wait_for_sent(lambda s: s.chat_id == chat["id"], timeout=30)
    assert sent.parse_mode == "HTML"
    assert sent.rendered == "staff: Sure!"
    assert sent.text is not None and "<b>Sure</b>" in sent.text and "script" not in sent.text
    assert sent.reply_to is not None
    assert reply


async def test_group_members_are_separate_ghosts(stack: Stack, staff: StaffClient) -> None:
    sim = stack.telegram
    group = tg.group_chat(-100_000_000_000 - next(_ids), "ACME Purchasing")
    anna, boris = tg.user(next(_ids), "Anna", last_name="A"), tg.user(next(_ids), "Boris")
    sim.push_update(tg.message_update(tg.text_message(group, anna, "from anna")))
    sim.push_update(tg.message_update(tg.text_message(group, boris, "from boris")))
    room_id = await join_invite_named(staff, "ACME Purchasing")
    a = await _ev(staff, room_id, body_is("from anna"))
    b = await _ev(staff, room_id, body_is("from boris"))
    assert a["sender"] != b["sender"]
    profile = await staff.api("GET", f"/_matrix/client/v3/profile/{a['sender']}")
    assert profile["displayname"] == "Anna A (Telegram)"


async def test_media_kinds_reach_matrix(stack: Stack, staff: StaffClient) -> None:
    sim = stack.telegram
    room_id, user, chat, _ = await _open(stack, staff, sim, "Media")
    png = _png()
    photo = sim.add_file(png, kind="photo")
    sim.push_update(
        tg.message_update(tg.photo_message(chat, user, photo.ref(), caption="the photo"))
    )
    image = await _ev(staff, room_id, _msgtype("m.image"))
    server, media_id = image["content"]["url"][len("mxc://") :].split("/", 1)
    assert (await staff.nio.download(server_name=server, media_id=media_id)).body == png
    await _ev(staff, room_id, body_is("the photo"))

    doc = sim.add_file(b"%PDF-1.4 doc", kind="document", file_name="offer.pdf")
    sim.push_update(
        tg.message_update(tg.document_message(chat, user, doc.ref(), file_name="offer.pdf"))
    )
    file_event = await _ev(staff, room_id, _msgtype("m.file"))
    assert file_event["content"]["body"] == "offer.pdf"

    voice = sim.add_file(b"OggS voice", kind="voice")
    sim.push_update(tg.message_update(tg.voice_message(chat, user, voice.ref())))
    assert (await _ev(staff, room_id, _msgtype("m.audio")))["content"]["info"][
        "mimetype"
    ] == "audio/ogg"

    video = sim.add_file(b"\x00\x00\x00\x18ftypmp42", kind="video")
    sim.push_update(tg.message_update(tg.video_message(chat, user, video.ref())))
    await _ev(staff, room_id, _msgtype("m.video"))

    sticker = sim.add_file(png, kind="sticker")
    sim.push_update(tg.message_update(tg.sticker_message(chat, user, sticker.ref())))
    await _ev(
        staff, room_id, lambda e: _msgtype("m.image")(e) and e["content"]["body"].endswith(".webp")
    )

    sim.push_update(tg.message_update(tg.location_message(chat, user, 52.52, 13.405)))
    await _ev(
        staff,
        room_id,
        lambda e: "📍 Location: 52.52, 13.405" in e.get("content", {}).get("body", ""),
    )
    sim.push_update(tg.message_update(tg.contact_message(chat, user, "+4930123456", "Max")))
    await _ev(staff, room_id, lambda e: "+4930123456" in e.get("content", {}).get("body", ""))
    sim.push_update(tg.message_update(tg.poll_message(chat, user, "Which day?", ["Mon", "Tue"])))
    poll = await _ev(
        staff, room_id, lambda e: "📊 Poll: Which day?" in e.get("content", {}).get("body", "")
    )
    assert "Tue" in poll["content"]["body"]

    big = sim.add_file(b"x", kind="document", file_name="huge.zip", file_size=25 * 1024 * 1024)
    sim.push_update(
        tg.message_update(tg.document_message(chat, user, big.ref(), file_name="huge.zip"))
    )
    notice = await _ev(
        staff, room_id, lambda e: "huge.zip" in e.get("content", {}).get("body", "")
    )
    assert notice["content"]["msgtype"] == "m.notice"
    assert "20 MB" in notice["content"]["body"]


async def test_edits_reactions_replies_and_business_deletes(
    stack: Stack, staff: StaffClient
) -> None:
    sim = stack.telegram
    room_id, user, chat, first = await _open(stack, staff, sim, "Relations", "original text")
    original = await _ev(staff, room_id, body_is("original text"))
    sim.push_update(tg.edited_message_update(tg.edited(first, text="edited text")))
    edit = await _ev(
        staff,
        room_id,
        lambda e: e["content"].get("m.new_content", {}).get("body") == "edited text",
    )
    assert edit["content"]["m.relates_to"]["event_id"] == original["event_id"]

    staff_msg = await staff.send_text(room_id, "our answer")
    sent = await sim.wait_for_sent(
        lambda s: s.chat_id == chat["id"] and s.rendered == "staff: our answer", timeout=30
    )
    reaction = tg.message_reaction(chat, sent.message_id, user, new=["👍"])
    sim.push_update(tg.message_reaction_update(reaction))
    react = await _ev(staff, room_id, lambda e: e.get("type") == "m.reaction")
    assert react["content"]["m.relates_to"]["event_id"] == staff_msg
    assert react["content"]["m.relates_to"]["key"] == "👍"
    sim.push_update(
        tg.message_reaction_update(tg.message_reaction(chat, sent.message_id, user, old=["👍"]))
    )
    await _ev(
        staff,
        room_id,
        lambda e: (
            e.get("type") == "m.room.redaction"
            and e.get("redacts", e["content"].get("redacts")) == react["event_id"]
        ),
    )

    reply = tg.text_message(chat, user, "replying to you", reply_to=sent.message)
    sim.push_update(tg.message_update(reply))
    replied = await _ev(staff, room_id, body_is("replying to you"))
    assert replied["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == staff_msg


async def test_staff_edits_deletes_reacts_and_sends_files(
    stack: Stack, staff: StaffClient
) -> None:
    sim = stack.telegram
    room_id, user, chat, _ = await _open(stack, staff, sim, "Outbound")
    customer_event = staff.find_events(body_is("Hello"), room_id=room_id)[-1]
    msg_id = await staff.send_text(room_id, "first version")
    sent = await sim.wait_for_sent(
        lambda s: s.chat_id == chat["id"] and s.rendered == "staff: first version", timeout=30
    )
    await staff.edit(room_id, msg_id, "second version")
    edit = await sim.wait_for_edit(lambda e: e.message_id == sent.message_id, timeout=30)
    assert edit.rendered == "staff: second version"
    await staff.react(room_id, customer_event["event_id"], "❤️")
    reaction = await sim.wait_for_reaction(lambda r: r.chat_id == chat["id"], timeout=30)
    assert reaction.emojis == ["❤"]
    bad = await staff.react(room_id, customer_event["event_id"], "🦆")
    await _ev(
        staff,
        room_id,
        lambda e: (
            e["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id") == bad
        ),
    )
    await staff.redact(room_id, msg_id)
    deletion = await sim.wait_for_deletion(lambda d: d.message_id == sent.message_id, timeout=30)
    assert deletion.chat_id == chat["id"]

    # Past Telegram's 48 hours a deletion is refused with a notice instead.
    old_id = await staff.send_text(room_id, "old message")
    old = await sim.wait_for_sent(lambda s: s.rendered == "staff: old message", timeout=30)
    sim.age_message(chat["id"], old.message_id, 49 * 3600)
    await staff.redact(room_id, old_id)
    notice = await _ev(
        staff,
        room_id,
        lambda e: (
            e["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id") == old_id
        ),
    )
    assert "Not delivered" in notice["content"]["body"]

    upload, _ = await staff.nio.upload(
        lambda *_: _png(), content_type="image/png", filename="p.png", filesize=len(_png())
    )
    await staff.send_event(room_id, "m.room.message", {
        "msgtype": "m.image", "body": "p.png", "url": upload.content_uri,
        "info": {"mimetype": "image/png", "size": len(_png())},
    })  # fmt: skip
    photo = await sim.wait_for_sent(lambda s: s.method == "sendPhoto", timeout=30)
    assert photo.data == _png()
    too_big = await staff.send_event(room_id, "m.room.message", {
        "msgtype": "m.image", "body": "big.png", "url": upload.content_uri,
        "info": {"mimetype": "image/png", "size": 11 * 1024 * 1024},
    })  # fmt: skip
    notice = await _ev(
        staff,
        room_id,
        lambda e: (
            e["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
            == too_big
        ),
    )
    assert "at most 10.0 MB" in notice["content"]["body"]

    long_text = ("word " * 1000).strip()  # 4999 characters: two Telegram messages
    await staff.send_text(room_id, long_text)
    await sim.wait_for(
        lambda: (
            len(
                [
                    s
                    for s in sim.sent
                    if s.chat_id == chat["id"] and s.rendered and s.rendered.startswith("word")
                ]
            )
            >= 1
        ),
        timeout=30,
    )
    parts = await sim.wait_for(
        lambda: (
            [
                s
                for s in sim.sent
                if s.chat_id == chat["id"] and s.rendered and ("word" in s.rendered)
            ]
            if len(
                [
                    s
                    for s in sim.sent
                    if s.chat_id == chat["id"] and s.rendered and "word" in s.rendered
                ]
            )
            >= 2
            else None
        ),
        timeout=30,
    )
    assert all(len(p.rendered or "") <= 4096 for p in parts)
    assert (
        " ".join((p.rendered or "").replace("staff: ", "") for p in parts).split()
        == long_text.split()
    )


async def test_start_payload_is_recorded(stack: Stack, staff: StaffClient) -> None:
    sim = stack.telegram
    user, chat = _customer("Deeplink")
    sim.push_update(tg.message_update(tg.start_message(chat, user, "optin-42_x")))
    room_id = await join_invite_named(staff, "Deeplink Customer")
    await _ev(staff, room_id, body_is("/start optin-42_x"))
    db = sqlite3.connect(stack.workdir / "bridge.db")
    try:
        (value,) = db.execute(
            "SELECT value FROM conversation_data JOIN conversation USING (account, chat_key)"
            " WHERE account='tg' AND chat=? AND name='start_payload'",
            (str(chat["id"]),),
        ).fetchone()
    finally:
        db.close()
    assert value == '"optin-42_x"'


async def test_rate_limit_storm_loses_and_reorders_nothing(
    stack: Stack, staff: StaffClient
) -> None:
    sim = stack.telegram
    room_id, user, chat, _ = await _open(stack, staff, sim, "Storm")
    sim.rate_limit_storm(4, retry_after=1)
    bodies = [f"storm {i}" for i in range(6)]
    for body in bodies:
        await staff.send_text(room_id, body)
    await sim.wait_for(
        lambda: (
            len(
                [
                    s
                    for s in sim.sent
                    if s.chat_id == chat["id"] and (s.rendered or "").startswith("staff: storm")
                ]
            )
            == 6
        ),
        timeout=90,
    )
    got = [
        s.rendered
        for s in sim.sent
        if s.chat_id == chat["id"] and (s.rendered or "").startswith("staff: storm")
    ]
    assert got == [f"staff: {b}" for b in bodies]
    assert len([t for t in sim.throttled if t.scope == "storm"]) == 4


async def test_business_messages_bridge_like_private_chats(
    stack: Stack, staff: StaffClient
) -> None:
    sim = stack.telegram
    owner = tg.user(next(_ids), "Shop", last_name="Owner")
    sim.add_business_connection("bc-1", owner)
    sim.push_update(tg.business_connection_update(tg.business_connection("bc-1", owner)))
    user, chat = _customer("Business")
    msg = tg.text_message(chat, user, "hello shop", business_connection_id="bc-1")
    sim.push_update(tg.business_message_update(msg))
    room_id = await join_invite_named(staff, "Business Customer")
    await _ev(staff, room_id, body_is("hello shop"))
    await staff.send_text(room_id, "hello customer")
    sent = await sim.wait_for_sent(lambda s: s.business_connection_id == "bc-1", timeout=30)
    assert sent.chat_id == chat["id"] and sent.rendered == "staff: hello customer"
    sim.push_update(
        tg.deleted_business_messages_update(
            tg.deleted_business_messages("bc-1", chat, [msg["message_id"]])
        )
    )
    await _ev(staff, room_id, lambda e: e.get("type") == "m.room.redaction")


async def test_webhook_mode_secret_and_duplicates(stack: Stack, staff: StaffClient) -> None:
    sim = stack.telegram_hook
    assert sim.webhook_url and sim.webhook_url.endswith("/connectors/tg-hook/webhook")
    assert sim.webhook_secret == WEBHOOK_SECRET
    user, chat = _customer("Hooked")
    msg = tg.text_message(chat, user, "via webhook")
    sim.deliver_webhook_twice(tg.message_update(msg))
    room_id = await join_invite_named(staff, "Hooked Customer")
    await _ev(staff, room_id, body_is("via webhook"))
    forged = await sim.post_webhook(
        tg.message_update(tg.text_message(chat, user, "forged")), secret="wrong"
    )
    assert forged.status == 401
    missing = await sim.post_webhook(
        tg.message_update(tg.text_message(chat, user, "forged")), secret=None
    )
    assert missing.status == 401
    await staff.send_text(room_id, "marker")
    await sim.wait_for_sent(lambda s: s.rendered == "staff: marker", timeout=30)
    events = [e for e in await staff.room_messages(room_id) if body_is("via webhook")(e)]
    assert len(events) == 1
    assert not staff.find_events(body_is("forged"))
    assert len([d for d in sim.webhook_deliveries if d.ok]) >= 2


async def test_polling_restart_neither_skips_nor_repeats(stack: Stack, staff: StaffClient) -> None:
    sim = stack.telegram
    room_id, user, chat, _ = await _open(stack, staff, sim, "Restart")
    stack.bridge.kill()
    for i in range(5):
        sim.push_update(tg.message_update(tg.text_message(chat, user, f"while down {i}")))
    await stack.bridge.astart()
    await _ev(staff, room_id, body_is("while down 4"), timeout=60)
    await asyncio.sleep(1)
    bodies = [
        e["content"]["body"] for e in await staff.room_messages(room_id)
        if e["type"] == "m.room.message" and e["content"]["body"].startswith("while down")
    ]  # fmt: skip
    assert bodies == [f"while down {i}" for i in range(5)]
