"""Permissions per channel account, edits and deletions by their author, and unlink, from real
Matrix clients. The session's bridge is restarted once with a partner user who is staff of the
``hooks`` account only (every other user of the homeserver is staff of every account)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest_asyncio
from ruamel.yaml import YAML

from tests.conftest import SERVER_NAME, Stack
from tests.connectors.telegram import updates as tg
from tests.connectors.whatsapp import payloads as wa
from tests.e2e.helpers import body_is, customer_msg, join_invite_named, open_portal
from tests.infra.staff import StaffClient

PARTNER = f"@partner:{SERVER_NAME}"
COLLEAGUE = f"@colleague:{SERVER_NAME}"
_numbers = itertools.count(4915990000001)
_tg_ids = itertools.count(7_900_001)


@dataclass
class Users:
    partner: StaffClient
    """Staff of ``hooks`` only."""
    colleague: StaffClient
    """Staff (not admin) of every account, through the homeserver's domain; invited to new
    portal rooms of ``hooks``."""


async def _restart_with_permissions(stack: Stack, **grants: Any) -> None:
    """Add ``user -> grant`` to the bridge's permissions and restart it."""
    yaml = YAML()
    data = yaml.load(stack.config_path.read_text())
    if grants.pop("_hooks_staff", None):
        # Invited to new portal rooms of hooks as a moderator, as the staff user is.
        data["channels"]["hooks"]["staff"].append(COLLEAGUE)
    for user, grant in grants.items():
        data["permissions"][f"@{user}:{SERVER_NAME}"] = grant
    with stack.config_path.open("w") as f:
        yaml.dump(data, f)
    stack.bridge.stop()
    await stack.bridge.astart()


async def _login(stack: Stack, name: str) -> StaffClient:
    password = f"pw-{name}-secret"
    await stack.synapse.aregister_user(name, password)
    return await StaffClient.login(stack.synapse.base_url, f"@{name}:{SERVER_NAME}", password)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def users(stack: Stack) -> AsyncIterator[Users]:
    clients = [await _login(stack, "partner"), await _login(stack, "colleague")]
    await _restart_with_permissions(stack, partner={"hooks": "staff"}, _hooks_staff=True)
    try:
        yield Users(*clients)
    finally:
        for client in clients:
            await client.close()


@asynccontextmanager
async def _linked_then_narrowed(
    stack: Stack, staff: StaffClient, name: str, account: str, chat: str
) -> AsyncIterator[tuple[StaffClient, str]]:
    """A room with a user ``name`` (staff of every account) linked to ``account``/``chat``;
    then the user's permissions are narrowed to ``hooks`` and the bridge restarted: a member
    of a portal room who may no longer see its account, as after a change of the config."""
    user = await _login(stack, name)
    try:
        room_id = await staff.create_room(name=f"Perm {name}", invite=[stack.bot_id, user.user_id])
        await _join_room(user, room_id)
        await _wait_for_bot(stack, staff, room_id)
        assert await _ask(staff, room_id, f"!bridge link {account} {chat}") == (
            f"Linked this room to {account} / {chat}."
        )
        await _restart_with_permissions(stack, **{name: {"hooks": "staff"}})
        yield user, room_id
    finally:
        await user.close()


async def _wait_for_bot(stack: Stack, client: StaffClient, room_id: str) -> None:
    for _ in range(100):
        if stack.bot_id in await client.joined_members(room_id):
            return
        await client.sync_once(0.2)
    raise AssertionError("the bot did not join")


def _replying_to(event_id: str) -> Any:
    return lambda e: (
        e.get("content", {}).get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
        == event_id
    )


async def _answer(client: StaffClient, room_id: str, event_id: str) -> str:
    """The bot's notice replying to ``event_id``."""
    notice = await client.wait_for_event(_replying_to(event_id), room_id=room_id)
    return str(notice["content"]["body"])


async def _ask(client: StaffClient, room_id: str, text: str) -> str:
    return await _answer(client, room_id, await client.send_text(room_id, text))


async def _dm(stack: Stack, client: StaffClient) -> str:
    room_id = await client.create_room(invite=[stack.bot_id], is_direct=True)
    for _ in range(100):
        if stack.bot_id in await client.joined_members(room_id):
            return room_id
        await client.sync_once(0.2)
    raise AssertionError("the bot did not join")


async def _join_room(client: StaffClient, room_id: str) -> None:
    for _ in range(100):
        if room_id in client.pending_invites:
            await client.join(room_id)
            return
        await client.sync_once(0.2)
    raise AssertionError(f"{client.user_id} got no invite to {room_id}")


async def test_commands_show_and_act_on_permitted_accounts_only(
    stack: Stack, staff: StaffClient, users: Users
) -> None:
    await open_portal(stack, staff, "perm-hooks")
    status, _ = await stack.peer.send("dead-end", customer_msg("perm-dead", "hi"))
    assert status == 200
    await join_invite_named(staff, "Customer perm-dead")
    partner = users.partner
    dm = await _dm(stack, partner)

    channels = await _ask(partner, dm, "channels")
    assert "hooks — Webhook" in channels
    for hidden in ("dead-end", "tg", "wa", "mail"):
        assert f"• {hidden} " not in channels
    portals = await _ask(partner, dm, "portals")
    assert "perm-hooks" in portals and "perm-dead" not in portals
    assert "perm-dead" in await _ask(staff, await _dm(stack, staff), "portals")
    assert "There is no channel account 'dead-end' you may use" in await _ask(
        partner, dm, "portals dead-end"
    )

    # A WhatsApp conversation exists; a template to that number must neither be sent by the
    # partner nor bring them into the conversation.
    sim = stack.whatsapp
    sim.add_template("perm_hello", "en_US", "Hello from the permissions test!")
    number = str(next(_numbers))
    assert (await sim.receive(wa.text_message(number, "Hallo"), names={number: "Perm Kunde"})).ok
    wa_room = await join_invite_named(staff, "Perm Kunde")
    answer = await _ask(partner, dm, f"template wa +{number} perm_hello en_US")
    assert "There is no channel account 'wa' you may use" in answer
    dm_staff = await _dm(stack, staff)
    staff_answer = await _ask(staff, dm_staff, f"template wa +{number} perm_hello en_US")
    assert f"the conversation is in {wa_room}" in staff_answer
    await sim.wait_for_sent(lambda s: s.to == number and s.type == "template", timeout=30)
    assert len([s for s in sim.sent if s.to == number and s.type == "template"]) == 1
    await partner.sync_once(0)
    assert wa_room not in partner.pending_invites
    assert PARTNER not in await staff.joined_members(wa_room)


async def test_invites_into_conversations_of_unseen_accounts_are_taken_back(
    stack: Stack, staff: StaffClient, users: Users
) -> None:
    status, _ = await stack.peer.send("dead-end", customer_msg("perm-invite", "hi"))
    assert status == 200
    room_id = await join_invite_named(staff, "Customer perm-invite")
    await staff.invite(room_id, PARTNER)
    kick = await staff.wait_for_event(
        lambda e: (
            e.get("type") == "m.room.member"
            and e.get("state_key") == PARTNER
            and e["content"].get("membership") == "leave"
        ),
        room_id=room_id,
    )
    assert kick["sender"] == stack.bot_id
    await staff.wait_for_event(
        lambda e: f"{PARTNER} was removed" in e.get("content", {}).get("body", ""),
        room_id=room_id,
    )

    # In a conversation of the account the partner is staff of, they stay and answer.
    hooks_room, _ = await open_portal(stack, staff, "perm-invite-ok")
    await staff.invite(hooks_room, PARTNER)
    await _join_room(users.partner, hooks_room)
    reply = await users.partner.send_text(hooks_room, "Partner here")
    out = await stack.peer.wait_for(lambda p: p.get("id") == reply)
    assert out["chat_id"] == "perm-invite-ok"


async def test_link_refused_while_members_may_not_see_the_account(
    stack: Stack, staff: StaffClient, users: Users
) -> None:
    room_id = await staff.create_room(name="Perm link refused", invite=[stack.bot_id, PARTNER])
    await _join_room(users.partner, room_id)
    await _wait_for_bot(stack, staff, room_id)
    assert await _ask(staff, room_id, "!bridge link tg 7899999") == (
        f"Not linked: {PARTNER} may not see the conversations of tg; remove them from this"
        " room first."
    )
    assert await _ask(staff, room_id, "!bridge link hooks perm-link-ok") == (
        "Linked this room to hooks / perm-link-ok."
    )


async def test_users_without_permission_are_not_bridged(
    stack: Stack, staff: StaffClient, users: Users
) -> None:
    user = tg.user(next(_tg_ids), "Perm", last_name="Linked")
    chat = tg.private_chat(user)
    chat_id = int(chat["id"])
    async with _linked_then_narrowed(stack, staff, "mover-tg", "tg", str(chat_id)) as linked:
        partner, room_id = linked
        await _customer_then_partner(stack, staff, partner, room_id, user, chat)


async def _customer_then_partner(
    stack: Stack,
    staff: StaffClient,
    partner: StaffClient,
    room_id: str,
    user: dict[str, Any],
    chat: dict[str, Any],
) -> None:
    """The customer writes, then ``partner`` (no permission on tg) talks, reacts and types
    before a staff member does: only the staff member's message and typing reach Telegram."""
    sim, chat_id = stack.telegram, int(chat["id"])
    sim.push_update(tg.message_update(tg.text_message(chat, user, "Hi linked")))
    first = await staff.wait_for_event(body_is("Hi linked"), room_id=room_id)

    said = await partner.send_text(room_id, "partner speaking")
    assert "not allowed to use the bridge for tg" in await _answer(partner, room_id, said)
    reacted = await partner.react(room_id, first["event_id"], "👍")
    assert "not allowed" in await _answer(partner, room_id, reacted)
    typing = f"/_matrix/client/v3/rooms/{quote(room_id)}/typing/"
    mover = quote(partner.user_id)
    await partner.api("PUT", typing + mover, {"typing": True, "timeout": 30000})
    await partner.api("PUT", typing + mover, {"typing": False})
    await staff.api("PUT", typing + quote(stack.staff_id), {"typing": True, "timeout": 30000})
    await sim.wait_for_action(lambda a: a.chat_id == chat_id, timeout=30)
    await staff.send_text(room_id, "staff speaking")
    await sim.wait_for_sent(lambda s: s.chat_id == chat_id, timeout=30)
    # Everything of the partner's came before the staff message in the room's queue.
    assert [s.text for s in sim.sent if s.chat_id == chat_id] == ["staff: staff speaking"]
    assert len([a for a in sim.actions if a.chat_id == chat_id]) == 1
    assert not [r for r in sim.reactions if r.chat_id == chat_id]


async def test_only_authors_edit_and_delete_customers_copies_stay(
    stack: Stack, staff: StaffClient, users: Users
) -> None:
    colleague, peer = users.colleague, stack.peer
    room_id, customer = await open_portal(stack, staff, "perm-edit")
    await _join_room(colleague, room_id)
    staff_msg = await staff.send_text(room_id, "Staff text")
    await peer.wait_for(lambda p: p.get("id") == staff_msg)
    colleague_msg = await colleague.send_text(room_id, "Colleague text")
    await peer.wait_for(lambda p: p.get("id") == colleague_msg)

    # Edits: a colleague's or a customer's message is not changed for the customer.
    foreign = await colleague.edit(room_id, staff_msg, "Changed by a colleague")
    assert "only your own messages can be edited" in await _answer(colleague, room_id, foreign)
    of_customer = await staff.edit(room_id, customer["event_id"], "Changed customer text")
    assert "only your own messages can be edited" in await _answer(staff, room_id, of_customer)
    own = await staff.edit(room_id, staff_msg, "Staff text, corrected")
    assert (await peer.wait_for(lambda p: p.get("id") == own))["type"] == "edit"

    # Deletions: a customer's message only in Matrix; a colleague's only by its author or an
    # admin (the staff user is admin, the colleague is not).
    by_colleague = await colleague.redact(room_id, staff_msg)
    assert f"only {stack.staff_id} or an admin of hooks" in await _answer(
        colleague, room_id, by_colleague
    )
    moderated = await staff.redact(room_id, customer["event_id"])
    assert "the customer still has it" in await _answer(staff, room_id, moderated)
    status, _ = await peer.send(
        stack.account,
        {**customer_msg("perm-edit", "", f"remote-{staff_msg}"), "type": "reaction", "emoji": "❤️"},
    )
    assert status == 200
    reaction = await staff.wait_for_event(
        lambda e: e.get("type") == "m.reaction" and e["sender"] == customer["sender"],
        room_id=room_id,
    )
    unreact = await staff.redact(room_id, reaction["event_id"])
    assert "the customer still sees it" in await _answer(staff, room_id, unreact)
    by_admin = await staff.redact(room_id, colleague_msg)
    assert (await peer.wait_for(lambda p: p.get("id") == by_admin))["type"] == "delete"
    refused = {foreign, of_customer, by_colleague, moderated, unreact}
    assert not [p for p in peer.deliveries if p.get("id") in refused]


async def test_unlink_stops_bridging_and_the_next_message_opens_a_new_room(
    stack: Stack, staff: StaffClient, users: Users
) -> None:
    old_room, customer = await open_portal(stack, staff, "perm-unlink")
    ghost = customer["sender"]
    answer = await _ask(staff, old_room, "!bridge unlink")
    assert answer.startswith("Unlinked this room from hooks / perm-unlink.")
    await staff.wait_for_event(
        lambda e: (
            e.get("type") == "m.room.member"
            and e.get("state_key") == ghost
            and e["content"].get("membership") == "leave"
        ),
        room_id=old_room,
    )
    status, _ = await stack.peer.send(
        stack.account, customer_msg("perm-unlink", "after unlink", "perm-unlink-2")
    )
    assert status == 200
    new_room = await join_invite_named(staff, "Customer perm-unlink")
    assert new_room != old_room
    await staff.wait_for_event(body_is("after unlink"), room_id=new_room)
    assert not staff.find_events(body_is("after unlink"), room_id=old_room)
    # Staff talk in the old room reaches nobody; in the new room it does.
    stale = await staff.send_text(old_room, "into the old room")
    assert (await _ask(staff, old_room, "!bridge ping")).startswith("Pong.")  # handled up to here
    fresh = await staff.send_text(new_room, "into the new room")
    await stack.peer.wait_for(lambda p: p.get("id") == fresh)
    assert stale not in [p.get("id") for p in stack.peer.deliveries]


async def test_read_receipts_of_users_without_permission_are_not_passed_on(
    stack: Stack, staff: StaffClient, users: Users
) -> None:
    sim, number = stack.whatsapp, str(next(_numbers))
    async with _linked_then_narrowed(stack, staff, "mover-wa", "wa", number) as linked:
        partner, room_id = linked
        first, second = wa.text_message(number, "Eins"), wa.text_message(number, "Zwei")
        for msg in (first, second):
            assert (await sim.receive(msg, names={number: "Receipt Kunde"})).ok
        one = await staff.wait_for_event(body_is("Eins"), room_id=room_id)
        two = await staff.wait_for_event(body_is("Zwei"), room_id=room_id)
        receipt = f"/_matrix/client/v3/rooms/{quote(room_id)}/receipt/m.read/"
        await partner.api("POST", receipt + quote(two["event_id"]), {})
        await staff.api("POST", receipt + quote(one["event_id"]), {})
        await sim.wait_for_read_receipt(lambda r: r.message_id == first["id"], timeout=30)
        assert not [r for r in sim.read_receipts if r.message_id == second["id"]]
