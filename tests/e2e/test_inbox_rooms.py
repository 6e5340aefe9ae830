"""Team rooms, spaces and the status in the room list, end to end through a real Synapse: each
team's room made with its members invited and its space holding it, a new conversation
announced in the team room and put in the space, the queue view edited as the queue changes,
a conversation's room name showing its status, a wait over the team's limit announced in the
team room, and a conversation claimed from there. The stack is ``test_inbox``'s (its own
instance for this module); the tests run in order on it."""

from __future__ import annotations

from typing import Any

from tests.conftest import SERVER_NAME
from tests.e2e.helpers import join_invite_named
from tests.e2e.test_commands import _ask
from tests.e2e.test_inbox import Desk, _write, desk
from tests.infra.staff import StaffClient

__all__ = ["desk"]

Event = dict[str, Any]


async def _join_team_rooms(client: StaffClient, team: str) -> tuple[str, str]:
    """Join the invites to team ``team``'s room and space (both named ``Team <team>``);
    returns their ids."""
    joined: dict[bool, str] = {}
    for _ in range(120):
        for room_id, state in list(client.pending_invites.items()):
            names = [e["content"].get("name") for e in state if e.get("type") == "m.room.name"]
            if names == [f"Team {team}"]:
                await client.join(room_id)
                create = next(
                    e for e in await client.get_state(room_id) if e["type"] == "m.room.create"
                )
                joined[create["content"].get("type") == "m.space"] = room_id
        if len(joined) == 2:
            return joined[False], joined[True]
        await client.sync_once(0.5)
    raise AssertionError(f"no invites to team {team}'s room and space")


def _notice_starting(text: str) -> Any:
    def pred(e: Event) -> bool:
        content = e.get("content", {})
        return content.get("msgtype") == "m.notice" and content.get("body", "").startswith(text)

    return pred


def _edit_of(event_id: str, text: str) -> Any:
    def pred(e: Event) -> bool:
        content = e.get("content", {})
        relates = content.get("m.relates_to", {})
        return (
            relates.get("rel_type") == "m.replace"
            and relates.get("event_id") == event_id
            and content.get("m.new_content", {}).get("body", "").startswith(text)
        )

    return pred


async def _name_becomes(client: StaffClient, room_id: str, name: str) -> None:
    await client.wait_for_event(
        lambda e: e.get("type") == "m.room.name" and e["content"].get("name") == name,
        room_id=room_id,
    )


async def _queue_view(client: StaffClient, room_id: str, team: str) -> str:
    """The queue view notice of ``team``'s room (posted once at start); returns its id."""
    event = await client.wait_for_event(
        _notice_starting(f"📋 Queue of team {team}: nobody waits."), room_id=room_id
    )
    return str(event["event_id"])


async def test_team_room_and_space_with_the_members(desk: Desk) -> None:
    room, space = await _join_team_rooms(desk.ann, "support")
    assert (await _join_team_rooms(desk.bob, "support")) == (room, space)
    members = set(await desk.ann.joined_members(room))
    assert {desk.ann.user_id, desk.bob.user_id, desk.stack.bot_id} <= members
    children = {
        e["state_key"]: e["content"]
        for e in await desk.ann.get_state(space)
        if e["type"] == "m.space.child"
    }
    assert children[room] == {"via": [SERVER_NAME]}
    desk.rooms["team-support"], desk.rooms["space-support"] = room, space


async def test_new_conversation_announced_in_the_team_room(desk: Desk) -> None:
    await _write(desk, "tr-1", "hello,\nwhere is   my parcel?", "tr-1-1")
    portal = await join_invite_named(desk.ann, "🟢 Customer tr-1")
    await desk.ann.wait_for_event(
        _notice_starting(
            "📥 New conversation from Customer tr-1 (hooks): “hello, where is my parcel?” "
            f"https://matrix.to/#/{portal}"
        ),
        room_id=desk.rooms["team-support"],
    )
    children = [
        e["state_key"]
        for e in await desk.ann.get_state(desk.rooms["space-support"])
        if e["type"] == "m.space.child"
    ]
    assert portal in children
    desk.rooms["tr-1"] = portal


async def test_queue_view_and_status_in_the_room_name(desk: Desk) -> None:
    team_room, _ = await _join_team_rooms(desk.cat, "billing")
    view = await _queue_view(desk.cat, team_room, "billing")
    await _write(desk, "tr-2", "my invoice is wrong", "tr-2-1")  # billing: assigned by hand
    portal = await join_invite_named(desk.cat, "🟡 Customer tr-2")
    await desk.cat.wait_for_event(
        _edit_of(view, "📋 Queue of team billing: 1 waiting, longest first\n1. Customer tr-2"),
        room_id=team_room,
    )
    assert await _ask(desk.cat, portal, "!bridge assign me") == "👤 cat took this conversation."
    await _name_becomes(desk.cat, portal, "🟢 Customer tr-2")
    await desk.cat.wait_for_event(
        _edit_of(view, "📋 Queue of team billing: nobody waits."), room_id=team_room
    )
    assert await _ask(desk.cat, portal, "!bridge resolve") == "✅ cat resolved this conversation."
    await _name_becomes(desk.cat, portal, "✅ Customer tr-2")


async def test_waiting_limit_and_claim_from_the_team_room(desk: Desk) -> None:
    """Team rush (a limit of 1 s, assigned by hand, nobody invited before a claim)."""
    team_room, _ = await _join_team_rooms(desk.bob, "rush")
    view = await _queue_view(desk.bob, team_room, "rush")
    await _write(desk, "tr-3", "urgent: the printer is on fire", "tr-3-1")
    announced = await desk.bob.wait_for_event(
        _notice_starting("⌛ Customer tr-3 (hooks) has waited "), room_id=team_room
    )
    body = announced["content"]["body"]
    assert "; assigned to nobody. https://matrix.to/#/!" in body
    portal = body.rsplit("/", 1)[1]
    await desk.bob.wait_for_event(
        _edit_of(view, "📋 Queue of team rush: 1 waiting, longest first\n1. Customer tr-3"),
        room_id=team_room,
    )
    assert await _ask(desk.bob, team_room, "!bridge claim 1") == (
        f"👤 bob took Customer tr-3 (hooks): https://matrix.to/#/{portal}"
    )
    assert await join_invite_named(desk.bob, "🟢 Customer tr-3") == portal
    for text in ("⌛ The customer has waited ", "👤 bob took this conversation."):
        await desk.bob.wait_for_event(_notice_starting(text), room_id=portal)
    assert await _ask(desk.bob, team_room, "!bridge claim") == (
        "Nobody waits in the queue of team rush."
    )
    # Announced once for this wait, however many ticks passed.
    assert len(desk.bob.find_events(_notice_starting("⌛ Customer tr-3"), team_room)) == 1
