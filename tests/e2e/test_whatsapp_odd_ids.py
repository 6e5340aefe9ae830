"""WhatsApp ids no real customer has, through the bridge, a real Synapse and the database: a
wa_id and wamids of thousands of non-ASCII characters, a reply to such a wamid, a media id
that reads like a Graph API path. The messages are bridged, the media that cannot be fetched
leaves a notice (nothing lost), and the staff's answer is tried and its refusal shown."""

from __future__ import annotations

from typing import Any

from tests.conftest import Stack
from tests.connectors.whatsapp import payloads as wa
from tests.e2e.helpers import body_is, join_invite_named
from tests.infra.staff import StaffClient

NUMBER = "४९१७०" + "例え😀\u202e" * 1_000
"""A wa_id of 4,005 characters: Devanagari digits, CJK, emoji, a bidi override."""


def _notice(e: dict[str, Any]) -> bool:
    return e.get("type") == "m.room.message" and e["content"].get("msgtype") == "m.notice"


async def test_long_non_ascii_ids_are_bridged_and_answered(
    stack: Stack, staff: StaffClient
) -> None:
    sim = stack.whatsapp
    first = wa.text_message(NUMBER, "hello from a far number")
    first["id"] = "wamid." + "Ω" * 3_000
    delivery = await sim.receive(first, names={NUMBER: "Far Customer"})
    assert delivery.ok, delivery
    room_id = await join_invite_named(staff, "Far Customer")
    event = await staff.wait_for_event(body_is("hello from a far number"), room_id=room_id)

    reply = wa.text_message(NUMBER, "a reply", context=wa.reply_context(NUMBER, first["id"]))
    reply["id"] = "wamid." + "Ψ" * 3_000
    image = wa.image_message(
        NUMBER,
        "../../me?fields=id#x",
        sha256="47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        caption="a picture",
    )
    assert (await sim.receive(reply, image, names={NUMBER: "Far Customer"})).ok
    answered = await staff.wait_for_event(body_is("a reply"), room_id=room_id)
    relates = answered["content"].get("m.relates_to", {})
    assert relates.get("m.in_reply_to", {}).get("event_id") == event["event_id"]
    await staff.wait_for_event(
        lambda e: _notice(e) and "not a WhatsApp media id" in e["content"]["body"],
        room_id=room_id,
        timeout=30,
    )
    await staff.wait_for_event(body_is("a picture"), room_id=room_id)

    # Meta takes no such number: the answer is tried, and its refusal shown in the room.
    await staff.send_text(room_id, "answer to a far number")
    failed = await staff.wait_for_event(
        lambda e: _notice(e) and "media id" not in e["content"]["body"],
        room_id=room_id,
        timeout=30,
    )
    assert failed["content"]["body"].startswith("⚠️ Not delivered")
