"""Steps shared by the end-to-end tests."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import Stack
from tests.infra.staff import StaffClient


def customer_msg(chat: str, text: str, mid: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": mid or uuid.uuid4().hex,
        "chat": {"id": chat, "name": f"Customer {chat}"},
        "sender": {"id": f"user-{chat}", "name": "Jane Customer"},
        "text": text,
        **extra,
    }


def body_is(text: str, room_id: str | None = None) -> Any:
    def pred(e: dict[str, Any]) -> bool:
        return (
            e.get("type") == "m.room.message"
            and e.get("content", {}).get("body") == text
            and (room_id is None or e.get("room_id") == room_id)
        )

    return pred


async def join_invite_named(staff: StaffClient, name: str) -> str:
    """Join the pending invite to the room called ``name``; returns its id."""
    for _ in range(120):
        for room_id, state in list(staff.pending_invites.items()):
            for ev in state:
                if ev.get("type") == "m.room.name" and ev.get("content", {}).get("name") == name:
                    await staff.join(room_id)
                    return room_id
        await staff.sync_once(0.5)
    raise AssertionError(f"no invite for {name}")


async def open_portal(
    stack: Stack, staff: StaffClient, chat: str, text: str = "hello"
) -> tuple[str, dict[str, Any]]:
    """The customer writes first; returns the portal room (joined by staff) and the event."""
    status, body = await stack.peer.send(stack.account, customer_msg(chat, text, f"{chat}-first"))
    assert status == 200, body
    room_id = await join_invite_named(staff, f"Customer {chat}")
    event = await staff.wait_for_event(body_is(text), room_id=room_id)
    return room_id, event
