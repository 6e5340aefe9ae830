"""Telegram ids no real chat has, through the bridge, a real Synapse and the database: a
Business connection id of thousands of non-ASCII characters (with the ``:`` the chat id uses
as its separator), a customer and chat id beyond 64 bits and a message id beyond 63. The
conversation is bridged, the staff's answer goes back through the same connection to the same
chat, and a deletion finds the message."""

from __future__ import annotations

from tests.conftest import Stack
from tests.connectors.telegram import updates as tg
from tests.e2e.helpers import body_is, join_invite_named
from tests.infra.staff import StaffClient

CONNECTION = "店:😀\u202e" * 1_500
CUSTOMER = 2**64 + 11


async def test_long_non_ascii_connection_and_huge_ids_are_bridged_both_ways(
    stack: Stack, staff: StaffClient
) -> None:
    sim = stack.telegram
    owner = tg.user(CUSTOMER + 1, "Shop", last_name="Owner")
    sim.add_business_connection(CONNECTION, owner)
    sim.push_update(tg.business_connection_update(tg.business_connection(CONNECTION, owner)))
    user = tg.user(CUSTOMER, "Zoë", last_name="Ωmega")
    chat = tg.private_chat(user)
    msg = tg.text_message(
        chat, user, "hello from far ids", business_connection_id=CONNECTION, message_id=2**63 + 5
    )
    sim.push_update(tg.business_message_update(msg))
    room_id = await join_invite_named(staff, "Zoë Ωmega")
    await staff.wait_for_event(body_is("hello from far ids"), room_id=room_id, timeout=30)

    await staff.send_text(room_id, "answer to far ids")
    sent = await sim.wait_for_sent(lambda s: s.business_connection_id == CONNECTION, timeout=30)
    assert sent.chat_id == CUSTOMER and sent.rendered == "staff: answer to far ids"

    sim.push_update(
        tg.deleted_business_messages_update(
            tg.deleted_business_messages(CONNECTION, chat, [msg["message_id"]])
        )
    )
    await staff.wait_for_event(
        lambda e: e.get("type") == "m.room.redaction", room_id=room_id, timeout=30
    )


async def test_names_and_usernames_with_nul_are_bridged(stack: Stack, staff: StaffClient) -> None:
    sim = stack.telegram
    user = tg.user(CUSTOMER + 2, "Nu\x00ll", last_name="Name\x00", username="us\x00er")
    group = tg.group_chat(-(2**64) - 3, "Gro\x00up")
    sim.push_update(tg.message_update(tg.text_message(group, user, "hello from nul names")))
    room_id = await join_invite_named(staff, "Gro\ufffdup")
    await staff.wait_for_event(body_is("hello from nul names"), room_id=room_id, timeout=30)
