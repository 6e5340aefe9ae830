"""WhatsApp end to end: the Cloud API simulator <-> the bridge <-> a staff client on Synapse."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any
from urllib.parse import quote

from tests.conftest import WA_VERIFY_TOKEN, Stack
from tests.connectors.whatsapp import payloads as wa
from tests.e2e.helpers import body_is, join_invite_named
from tests.infra.staff import StaffClient

_numbers = itertools.count(4915110000001)


def _replying_to(event_id: str) -> Any:
    return lambda e: (
        e.get("content", {}).get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
        == event_id
    )


def _msgtype(kind: str) -> Any:
    return lambda e: e.get("type") == "m.room.message" and e["content"].get("msgtype") == kind


async def _open(
    stack: Stack, staff: StaffClient, name: str, text: str = "Hallo", **kw: Any
) -> tuple[str, str, dict[str, Any]]:
    """A customer writes to the business number; returns the portal room, wa_id and event."""
    number = str(next(_numbers))
    msg = wa.text_message(number, text, **kw)
    delivery = await stack.whatsapp.receive(msg, names={number: name})
    assert delivery.ok, delivery
    room_id = await join_invite_named(staff, name)
    event = await staff.wait_for_event(body_is(text), room_id=room_id)
    return room_id, number, event


async def test_text_markup_and_profile_name_both_ways(stack: Stack, staff: StaffClient) -> None:
    room_id, number, event = await _open(stack, staff, "Jana Kunde", "Bitte *dringend* _heute_")
    assert event["content"]["formatted_body"] == "Bitte <strong>dringend</strong> <em>heute</em>"
    profile = await staff.api("GET", f"/_matrix/client/v3/profile/{event['sender']}")
    assert profile["displayname"] == "Jana Kunde (WhatsApp)"

    await staff.send_text(
        room_id,
        "Gerne",
        html="<strong>Gerne</strong>, bis <em>morgen</em>",
        reply_to=event["event_id"],
    )
    sent = await stack.whatsapp.wait_for_sent(lambda s: s.to == number, timeout=30)
    assert sent.type == "text"
    assert sent.content["body"] == "staff: *Gerne*, bis _morgen_"
    assert sent.context_id is not None


async def test_every_inbound_kind(stack: Stack, staff: StaffClient) -> None:
    sim = stack.whatsapp
    room_id, number, first = await _open(stack, staff, "Kinds Kunde")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    await sim.receive(sim.media_message("image", number, png, "image/png", caption="Foto"))
    image = await staff.wait_for_event(_msgtype("m.image"), room_id=room_id)
    server, media_id = image["content"]["url"][len("mxc://") :].split("/", 1)
    assert (await staff.nio.download(server_name=server, media_id=media_id)).body == png
    await staff.wait_for_event(body_is("Foto"), room_id=room_id)
    await sim.receive(
        sim.media_message("audio", number, b"OggS...", "audio/ogg; codecs=opus", voice=True)
    )
    audio = await staff.wait_for_event(_msgtype("m.audio"), room_id=room_id)
    assert audio["content"]["info"]["mimetype"] == "audio/ogg"
    await sim.receive(sim.media_message("video", number, b"\x00\x00\x00\x18ftypmp42", "video/mp4"))
    await staff.wait_for_event(_msgtype("m.video"), room_id=room_id)
    await sim.receive(
        sim.media_message("document", number, b"%PDF", "application/pdf", filename="Rechnung.pdf")
    )
    doc = await staff.wait_for_event(_msgtype("m.file"), room_id=room_id)
    assert doc["content"]["body"] == "Rechnung.pdf"
    await sim.receive(
        sim.media_message("sticker", number, b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp")
    )
    await staff.wait_for_event(
        lambda e: _msgtype("m.image")(e) and e["content"]["body"].endswith(".webp"),
        room_id=room_id,
    )

    await sim.receive(wa.location_message(number, 52.52, 13.405, name="Büro"))
    await staff.wait_for_event(
        lambda e: "📍 Location: 52.52, 13.405 (Büro" in e.get("content", {}).get("body", ""),
        room_id=room_id,
    )
    await sim.receive(
        wa.contacts_message(number, [wa.contact_card("Max Muster", phones=["+49301234"])])
    )
    await staff.wait_for_event(
        lambda e: "👤 Contact: Max Muster, +49301234" in e.get("content", {}).get("body", ""),
        room_id=room_id,
    )
    await sim.receive(wa.button_reply_message(number, "yes", "Ja, bitte"))
    await staff.wait_for_event(body_is("🔘 Ja, bitte"), room_id=room_id)
    await sim.receive(wa.list_reply_message(number, "r1", "Dienstag", "10-12 Uhr"))
    await staff.wait_for_event(body_is("🔘 Dienstag — 10-12 Uhr"), room_id=room_id)
    await sim.receive(wa.template_button_message(number, "STOP", "Abmelden"))
    await staff.wait_for_event(body_is("🔘 Abmelden"), room_id=room_id)
    await sim.receive(wa.unsupported_message(number))
    notice = await staff.wait_for_event(
        lambda e: "cannot pass on" in e.get("content", {}).get("body", ""), room_id=room_id
    )
    assert notice["content"]["msgtype"] == "m.notice"
    assert "Message type unknown" in notice["content"]["body"]

    first_wamid = _first_wamid(stack, number)
    await sim.receive(wa.reaction_message(number, first_wamid, "👍"))
    reaction = await staff.wait_for_event(lambda e: e.get("type") == "m.reaction", room_id=room_id)
    assert reaction["content"]["m.relates_to"]["event_id"] == first["event_id"]
    await sim.receive(wa.reaction_message(number, first_wamid, ""))
    await staff.wait_for_event(
        lambda e: (
            e.get("type") == "m.room.redaction"
            and reaction["event_id"] in (e.get("redacts"), e["content"].get("redacts"))
        ),
        room_id=room_id,
    )
    await sim.receive(
        wa.text_message(number, "als Antwort", context=wa.reply_context(number, first_wamid))
    )
    reply = await staff.wait_for_event(body_is("als Antwort"), room_id=room_id)
    assert reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == first["event_id"]


async def test_outbound_media_reaction_and_read_receipt(stack: Stack, staff: StaffClient) -> None:
    sim = stack.whatsapp
    room_id, number, first = await _open(stack, staff, "Media Kunde")
    png = b"\x89PNG\r\n\x1a\n" + b"\x01" * 100
    upload, _ = await staff.nio.upload(
        lambda *_: png, content_type="image/png", filename="plan.png", filesize=len(png)
    )
    await staff.send_event(room_id, "m.room.message", {
        "msgtype": "m.image", "body": "plan.png", "url": upload.content_uri,
        "info": {"mimetype": "image/png", "size": len(png)},
    })  # fmt: skip
    sent = await sim.wait_for_sent(lambda s: s.to == number and s.type == "image", timeout=30)
    assert sent.media_bytes == png
    too_big = await staff.send_event(room_id, "m.room.message", {
        "msgtype": "m.image", "body": "huge.png", "url": upload.content_uri,
        "info": {"mimetype": "image/png", "size": 6 * 1024 * 1024},
    })  # fmt: skip
    notice = await staff.wait_for_event(_replying_to(too_big), room_id=room_id)
    assert "at most 5.0 MB" in notice["content"]["body"]

    first_wamid = _first_wamid(stack, number)
    await staff.react(room_id, first["event_id"], "🙏")
    reaction = await sim.wait_for_sent(
        lambda s: s.to == number and s.type == "reaction", timeout=30
    )
    assert reaction.content == {"message_id": first_wamid, "emoji": "🙏"}

    await staff.api(
        "POST", f"/_matrix/client/v3/rooms/{room_id}/receipt/m.read/{first['event_id']}", {}
    )
    receipt = await sim.wait_for_read_receipt(lambda r: r.message_id == first_wamid, timeout=30)
    assert receipt.message_id == first_wamid


async def test_statuses_become_receipts_and_failures_notices(
    stack: Stack, staff: StaffClient
) -> None:
    sim = stack.whatsapp
    room_id, number, _ = await _open(stack, staff, "Status Kunde")
    event_id = await staff.send_text(room_id, "Ihre Bestellung ist unterwegs")
    sent = await sim.wait_for_sent(lambda s: s.to == number, timeout=30)
    ghost = next(e["sender"] for e in staff.find_events(body_is("Hallo"), room_id=room_id))
    await sim.emit_statuses(sent.wamid, ("sent", "delivered"))
    await _wait_readers(staff, room_id, event_id, {stack.bot_id})  # delivered: the bot's receipt
    assert ghost not in await _readers(staff, room_id, event_id)
    await sim.emit_statuses(sent.wamid, ("read",))
    await _wait_readers(staff, room_id, event_id, {ghost})  # read: the customer's ghost

    failing = await staff.send_text(room_id, "this will bounce")
    sent = await sim.wait_for_sent(
        lambda s: s.body.get("text", {}).get("body", "").endswith("bounce"), timeout=30
    )
    await sim.emit_statuses(sent.wamid, ("failed",))
    notice = await staff.wait_for_event(_replying_to(failing), room_id=room_id)
    assert "131026" in notice["content"]["body"]


def _first_wamid(stack: Stack, number: str) -> str:
    return next(w for w, m in stack.whatsapp.inbound.items() if m.wa_id == number)


async def _readers(staff: StaffClient, room_id: str, event_id: str) -> set[str]:
    """Who has a read receipt on ``event_id``, from a fresh sync of the room. The filter is new
    each time: Synapse answers a repeated identical initial sync from its response cache."""
    room_filter = json.dumps({
        "room": {"rooms": [room_id], "timeline": {"limit": 50}},
        "account_data": {"types": [f"nonce.{time.monotonic_ns()}"]},
    })  # fmt: skip
    data = await staff.api("GET", f"/_matrix/client/v3/sync?filter={quote(room_filter)}")
    readers: set[str] = set()
    joined = data.get("rooms", {}).get("join", {}).get(room_id, {})
    for ev in joined.get("ephemeral", {}).get("events", []):
        if ev.get("type") == "m.receipt":
            readers.update(ev["content"].get(event_id, {}).get("m.read", {}))
    return readers


async def _wait_readers(staff: StaffClient, room_id: str, event_id: str, want: set[str]) -> None:
    for _ in range(100):
        if want <= await _readers(staff, room_id, event_id):
            return
        await asyncio.sleep(0.3)
    raise AssertionError(
        f"no receipt by {want} on {event_id}: {await _readers(staff, room_id, event_id)}"
    )


async def test_window_and_templates(stack: Stack, staff: StaffClient) -> None:
    sim = stack.whatsapp
    sim.add_template("order_update", "de", "Hallo {{1}}, Ihre Bestellung {{2}} ist da.")
    sim.add_template("hello_world", "en_US", "Hello from ACME!")
    old = time.time() - 25 * 3600
    room_id, number, _ = await _open(stack, staff, "Window Kunde", "alt", timestamp=old)
    sim.close_window(number)
    refused = await staff.send_text(room_id, "free text after 25 hours")
    notice = await staff.wait_for_event(_replying_to(refused), room_id=room_id)
    assert "24 hours" in notice["content"]["body"] and "template" in notice["content"]["body"]
    assert not [s for s in sim.sent if s.to == number]

    listing = await staff.send_text(room_id, "!bridge template")
    answer = await staff.wait_for_event(_replying_to(listing), room_id=room_id)
    assert "order_update (de, 2 parameter(s))" in answer["content"]["body"]
    limited = len([r for r in sim.rejected if r.code == 130429])
    sim.storm(2, 130429)  # rate limited twice: the command retries, then it goes out
    cmd = await staff.send_text(room_id, '!bridge template order_update de "Frau Kunde" A-17')
    assert (await staff.wait_for_event(_replying_to(cmd), room_id=room_id, timeout=60))["content"][
        "body"
    ] == "Sent."
    assert len([r for r in sim.rejected if r.code == 130429]) == limited + 2
    sent = await sim.wait_for_sent(lambda s: s.to == number and s.type == "template", timeout=30)
    assert sent.rendered == "Hallo Frau Kunde, Ihre Bestellung A-17 ist da."
    await staff.wait_for_event(
        lambda e: "📨 Template order_update sent by staff" in e.get("content", {}).get("body", ""),
        room_id=room_id,
    )
    wrong = await staff.send_text(room_id, "!bridge template order_update de only-one")
    assert (
        "takes 2 parameter(s)"
        in (await staff.wait_for_event(_replying_to(wrong), room_id=room_id))["content"]["body"]
    )

    # A new conversation, started from a direct chat with the bot.
    dm = await staff.create_room(invite=[stack.bot_id], is_direct=True)
    for _ in range(100):
        if stack.bot_id in await staff.joined_members(dm):
            break
        await staff.sync_once(0.2)
    new_number = str(next(_numbers))
    start = await staff.send_text(dm, f"template wa +{new_number} hello_world en_US")
    answer = await staff.wait_for_event(_replying_to(start), room_id=dm, timeout=60)
    assert "Sent; the conversation is in" in answer["content"]["body"]
    sent = await sim.wait_for_sent(
        lambda s: s.to == new_number and s.type == "template", timeout=30
    )
    room = await join_invite_named(staff, f"+{new_number}")
    await staff.wait_for_event(
        lambda e: "Hello from ACME!" in e.get("content", {}).get("body", ""), room_id=room
    )


async def test_signatures_verification_duplicates_and_order(
    stack: Stack, staff: StaffClient
) -> None:
    sim = stack.whatsapp
    assert await sim.verify_webhook(token=WA_VERIFY_TOKEN, challenge="c-123") == (200, "c-123")
    status, _ = await sim.verify_webhook(token="wrong", challenge="c-123")
    assert status == 403
    room_id, number, _ = await _open(stack, staff, "Order Kunde")
    forged = await sim.send_webhook(
        sim.messages_payload(wa.text_message(number, "forged")), bad_signature=True, max_attempts=1
    )
    assert forged.statuses == [401]
    unsigned = await sim.send_webhook(
        sim.messages_payload(wa.text_message(number, "unsigned")),
        no_signature=True,
        max_attempts=1,
    )
    assert unsigned.statuses == [401]

    now = time.time()
    msgs = [wa.text_message(number, f"o{i}", timestamp=now + i) for i in range(6)]
    payloads = [sim.messages_payload(m) for m in msgs]
    await asyncio.gather(
        sim.deliver_shuffled(payloads, seed=7, concurrent=True),
        sim.send_webhook(payloads[2], duplicate=True),
    )
    await staff.wait_for_event(body_is("o5"), room_id=room_id)
    await asyncio.sleep(1)
    bodies = [
        e["content"]["body"] for e in await staff.room_messages(room_id)
        if e["type"] == "m.room.message" and e["content"]["body"] in {f"o{i}" for i in range(6)}
    ]  # fmt: skip
    assert bodies == [f"o{i}" for i in range(6)]
    assert not staff.find_events(body_is("forged")) and not staff.find_events(body_is("unsigned"))


async def test_rate_limits_retry_in_order_and_permanent_errors_are_reported(
    stack: Stack, staff: StaffClient
) -> None:
    sim = stack.whatsapp
    room_id, number, _ = await _open(stack, staff, "Limit Kunde")
    sim.storm(2, 130429)
    sim.storm(1, 131056)
    ids = [await staff.send_text(room_id, f"l{i}") for i in range(4)]
    await sim.wait_for(lambda: len([s for s in sim.sent if s.to == number]) >= 4, timeout=90)
    assert [s.content["body"] for s in sim.sent if s.to == number] == [
        f"staff: l{i}" for i in range(4)
    ]
    assert ids

    sim.set_undeliverable(number, "sync")
    before = len(sim.rejected)
    bad = await staff.send_text(room_id, "cannot arrive")
    notice = await staff.wait_for_event(_replying_to(bad), room_id=room_id)
    assert "131026" in notice["content"]["body"]
    await asyncio.sleep(2)
    assert len([r for r in sim.rejected[before:] if r.code == 131026]) == 1  # not retried
