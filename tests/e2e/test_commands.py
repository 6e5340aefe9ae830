"""The bridge bot's management commands, from a real Matrix client."""

from __future__ import annotations

from typing import Any

from tests.conftest import SERVER_NAME, Stack
from tests.e2e.helpers import body_is, customer_msg
from tests.infra.staff import StaffClient


async def _ask(staff: StaffClient, room_id: str, text: str) -> str:
    """Send a command and return the bot's answer (a notice replying to it)."""
    event_id = await staff.send_text(room_id, text)
    answer = await staff.wait_for_event(
        lambda e: (
            e.get("content", {}).get("msgtype") == "m.notice"
            and e["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
            == event_id
        ),
        room_id=room_id,
    )
    return str(answer["content"]["body"])


async def _room_with_bot(stack: Stack, staff: StaffClient, **kwargs: Any) -> str:
    room_id = await staff.create_room(invite=[stack.bot_id], **kwargs)
    for _ in range(100):
        if stack.bot_id in await staff.joined_members(room_id):
            return room_id
        await staff.sync_once(0.2)
    raise AssertionError("the bot did not join")


async def test_direct_chat_commands(stack: Stack, staff: StaffClient) -> None:
    room_id = await _room_with_bot(stack, staff, is_direct=True)
    await staff.wait_for_event(
        lambda e: "Send `help`" in e.get("content", {}).get("body", ""), room_id=room_id
    )
    help_text = await _ask(staff, room_id, "help")
    for name in ("help", "ping", "channels", "portals", "link", "unlink"):
        assert f"• {name}" in help_text
    channels = await _ask(staff, room_id, "channels")
    assert "hooks — Webhook, connected" in channels
    assert "dead-end — Dead end, connected" in channels
    assert (await _ask(staff, room_id, "ping")).startswith("Pong.")
    assert "Unknown command 'frobnicate'" in await _ask(staff, room_id, "frobnicate")
    # The prefix works in a direct chat too.
    assert (await _ask(staff, room_id, "!bridge ping")).startswith("Pong.")


async def test_link_and_unlink_an_existing_room(stack: Stack, staff: StaffClient) -> None:
    room_id = await _room_with_bot(stack, staff, name="Partner ACME")
    answer = await _ask(staff, room_id, "!bridge link hooks partner-acme")
    assert answer == "Linked this room to hooks / partner-acme."
    assert "partner-acme" in await _ask(staff, room_id, "!bridge portals hooks")

    status, _ = await stack.peer.send(stack.account, customer_msg("partner-acme", "Hi from ACME"))
    assert status == 200
    event = await staff.wait_for_event(body_is("Hi from ACME"), room_id=room_id)
    assert event["sender"].startswith("@bridge_hooks_")
    reply = await staff.send_text(room_id, "Hello ACME")
    out = await stack.peer.wait_for(lambda p: p.get("id") == reply)
    assert out["chat_id"] == "partner-acme"

    assert "already linked" in await _ask(staff, room_id, "!bridge link hooks other")
    assert (await _ask(staff, room_id, "!bridge unlink")).startswith(
        "Unlinked this room from hooks / partner-acme."
    )
    after = await staff.send_text(room_id, "not bridged any more")
    marker_room = await _room_with_bot(stack, staff, is_direct=True)
    await _ask(staff, marker_room, "ping")  # the bridge has handled events up to here
    assert after not in [p.get("id") for p in stack.peer.deliveries]
    assert "There is no channel account 'nope'" in await _ask(
        staff, room_id, "!bridge link nope x"
    )


async def test_staff_without_admin_cannot_link(stack: Stack) -> None:
    password = "pw-staff2-secret"
    await stack.synapse.aregister_user("staff2", password)
    client = await StaffClient.login(stack.synapse.base_url, f"@staff2:{SERVER_NAME}", password)
    try:
        room_id = await _room_with_bot(stack, client, is_direct=True)
        assert "You need the admin permission for link" in await _ask(
            client, room_id, "link hooks x"
        )
        help_text = await _ask(client, room_id, "help")
        assert "• ping" in help_text and "• link" not in help_text
    finally:
        await client.close()
