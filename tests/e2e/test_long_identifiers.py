"""Remote identifiers and names over the homeserver's limits (escaping triples them) are
shortened deterministically, through a real Synapse: the conversation is bridged."""

from __future__ import annotations

from tests.conftest import SERVER_NAME, Stack
from tests.e2e.helpers import body_is, join_invite_named
from tests.infra.staff import StaffClient


async def test_long_sender_id_chat_id_and_names_are_bridged(
    stack: Stack, staff: StaffClient
) -> None:
    sender_id = "Sender-" + "ÄBC" * 26  # 85 characters, each escaped to =xx or =xx=xx
    chat_id = "<" + "Outlook.Message.ID.With.A.Long.Address" * 5 + "@EXAMPLE.COM>"
    name = "Ö" * 255  # the webhook's longest name; the ghost's adds " (Webhook)"
    message = {
        "id": "long-ids-1",
        "chat": {"id": chat_id, "name": "Room " + "R" * 250, "topic": "T" * 4096},
        "sender": {"id": sender_id, "name": name},
        "text": "hello from far away",
    }
    assert (await stack.peer.send(stack.account, message))[0] == 200
    room_name = "Room " + "R" * 250
    room_id = await join_invite_named(staff, room_name)
    event = await staff.wait_for_event(body_is("hello from far away"), room_id=room_id)
    ghost = event["sender"]
    assert len(ghost.encode()) <= 255 and ghost.endswith(f":{SERVER_NAME}")
    state = await staff.get_state(room_id)
    member = next(e for e in state if e["type"] == "m.room.member" and e["state_key"] == ghost)
    displayname = member["content"]["displayname"]
    assert len(displayname) <= 256 and displayname.endswith("… (Webhook)")
    aliases = [e for e in state if e["type"] == "m.room.canonical_alias"]
    assert aliases and len(aliases[0]["content"]["alias"].encode()) <= 255
    topic = next(e for e in state if e["type"] == "m.room.topic")["content"]["topic"]
    assert len(topic) <= 1000

    # The same ids again: the same ghost and room (the shortening is deterministic).
    again = {**message, "id": "long-ids-2", "text": "second"}
    assert (await stack.peer.send(stack.account, again))[0] == 200
    second = await staff.wait_for_event(body_is("second"), room_id=room_id)
    assert second["sender"] == ghost
