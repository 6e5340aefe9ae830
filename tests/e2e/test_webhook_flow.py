"""End to end through a real Synapse: the webhook peer <-> the bridge <-> a staff client."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import Stack
from tests.infra.staff import StaffClient


def _msg(chat: str, text: str, mid: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": mid or uuid.uuid4().hex,
        "chat": {"id": chat, "name": f"Customer {chat}"},
        "sender": {"id": f"user-{chat}", "name": "Jane Customer"},
        "text": text,
        **extra,
    }


async def open_portal(stack: Stack, staff: StaffClient, chat: str, text: str = "hello") -> tuple[str, dict[str, Any]]:
    """Customer writes first; returns the portal room (joined by staff) and the ghost event."""
    status, body = await stack.peer.send(stack.account, _msg(chat, text, mid=f"{chat}-first"))
    assert status == 200, body
    room_id = await _wait_invite_for(staff, f"Customer {chat}")
    event = await staff.wait_for_event(
        lambda e: e.get("type") == "m.room.message" and e["content"].get("body") == text,
        room_id=room_id,
    )
    return room_id, event


async def _wait_invite_for(staff: StaffClient, name: str) -> str:
    async def find() -> str | None:
        for room_id, state in staff.pending_invites.items():
            for ev in state:
                if ev.get("type") == "m.room.name" and ev.get("content", {}).get("name") == name:
                    return room_id
        return None

    for _ in range(120):
        room_id = await find()
        if room_id:
            await staff.join(room_id)
            return room_id
        await staff.sync_once(0.5)
    raise AssertionError(f"no invite for {name}")


async def test_customer_message_creates_portal_and_staff_reply_goes_out(
    stack: Stack, staff: StaffClient
) -> None:
    room_id, event = await open_portal(stack, staff, "c-basic", "Hello, I need help")
    assert event["sender"].startswith("@bridge_hooks_")
    members = await staff.joined_members(room_id)
    assert event["sender"] in members and stack.bot_id in members
    state = {e["type"]: e for e in await staff.get_state(room_id)}
    assert "Webhook" in state["m.room.topic"]["content"]["topic"]
    assert state["m.room.name"]["content"]["name"] == "Customer c-basic"

    reply_id = await staff.send_text(room_id, "Sure, how can we help?")
    out = await stack.peer.wait_for(lambda p: p.get("id") == reply_id)
    assert out["type"] == "message"
    assert out["chat_id"] == "c-basic"
    assert out["text"] == "staff: Sure, how can we help?"
    assert out["sender"]["mxid"] == stack.staff_id

