"""A remote deletion of a message its sender's ghost may not redact (a staff message deleted
through a Telegram Business chat or a webhook ``delete``) is carried out by the bot, and the
conversation goes on."""

from __future__ import annotations

from tests.conftest import Stack
from tests.e2e.helpers import body_is, customer_msg, open_portal
from tests.infra.staff import StaffClient


async def test_remote_delete_of_a_staff_message_redacts_it_and_moves_on(
    stack: Stack, staff: StaffClient
) -> None:
    room_id, _ = await open_portal(stack, staff, "c-del-staff", "hi")
    staff_msg = await staff.send_text(room_id, "a staff answer the remote side deletes")
    await stack.peer.wait_for(lambda p: p.get("id") == staff_msg)
    delete = {**customer_msg("c-del-staff", "", f"remote-{staff_msg}"), "type": "delete"}
    assert (await stack.peer.send(stack.account, delete))[0] == 200
    assert (await stack.peer.send(stack.account, customer_msg("c-del-staff", "after")))[0] == 200
    await staff.wait_for_event(body_is("after"), room_id=room_id)
    redaction = await staff.wait_for_event(
        lambda e: (
            e.get("type") == "m.room.redaction"
            and staff_msg in (e.get("redacts"), e.get("content", {}).get("redacts"))
        ),
        room_id=room_id,
    )
    assert redaction["sender"] == stack.bot_id
