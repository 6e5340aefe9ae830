"""The team inbox end to end through a real Synapse: a customer's first message routed to a
team and assigned (its assignee invited), claims, resolve and reopen, snooze and its end,
the `queue` and `inbox` answers, assignments and a snooze kept across a SIGKILL of the
bridge, and a transfer to another team with its `stats`.

The webhook account invites nobody itself here (``staff: []``): the inbox decides who sees a
conversation. The tests of this module run in order on one stack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from ruamel.yaml import YAML

from tests.conftest import SERVER_NAME, Stack, backend_database, build_stack
from tests.e2e.helpers import customer_msg, join_invite_named
from tests.e2e.test_commands import _ask, _room_with_bot
from tests.infra.staff import StaffClient

ANN, BOB, CAT = (f"@{name}:{SERVER_NAME}" for name in ("ann", "bob", "cat"))
FEATURES = {
    "inbox": {
        "teams": {
            "support": {"members": [ANN, BOB], "assignment": "round_robin"},
            "billing": {"members": [CAT], "invite": "team"},
            # test_inbox_rooms: a wait over the limit announced, a claim from the team room.
            "rush": {"members": [BOB], "waiting_limit": "1s"},
        },
        "accounts": {"hooks": "support"},
        "routing": [
            {"team": "billing", "keywords": ["invoice"]},
            {"team": "rush", "keywords": ["urgent"]},
        ],
        "tick": "1s",
    }
}


@dataclass
class Desk:
    stack: Stack
    ann: StaffClient
    bob: StaffClient
    cat: StaffClient
    rooms: dict[str, str]
    """Chat -> its portal room."""


def _no_account_staff(stack: Stack) -> None:
    """``staff: []`` for the webhook account (``build_stack`` writes that account itself)."""
    yaml = YAML()
    data = yaml.load(stack.config_path.read_text())
    data["channels"]["hooks"]["staff"] = []
    with stack.config_path.open("w") as f:
        yaml.dump(data, f)


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=["sqlite", "postgres"])
async def desk(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Desk]:
    workdir = tmp_path_factory.mktemp("inbox")
    db_url = backend_database(request, "inbox")
    async with build_stack(workdir, features=FEATURES, db_url=db_url) as stack:
        _no_account_staff(stack)
        stack.bridge.stop()
        await stack.bridge.astart()
        clients = []
        for name in ("ann", "bob", "cat"):
            password = f"pw-{name}-secret"
            await stack.synapse.aregister_user(name, password)
            clients.append(
                await StaffClient.login(stack.synapse.base_url, f"@{name}:{SERVER_NAME}", password)
            )
        try:
            yield Desk(stack, clients[0], clients[1], clients[2], rooms={})
        finally:
            for client in clients:
                await client.close()


async def _write(desk: Desk, chat: str, text: str, mid: str) -> None:
    status, body = await desk.stack.peer.send("hooks", customer_msg(chat, text, mid))
    assert status == 200, body


async def _notice(client: StaffClient, room_id: str, text: str) -> None:
    await client.wait_for_event(
        lambda e: (
            e.get("content", {}).get("msgtype") == "m.notice" and e["content"].get("body") == text
        ),
        room_id=room_id,
    )


async def _new(desk: Desk, chat: str, text: str, client: StaffClient, notice: str) -> str:
    """A customer's first message; ``client`` gets the invite to the room named with the
    conversation's status, joins and sees ``notice``."""
    await _write(desk, chat, text, f"{chat}-1")
    status = "🟡" if notice.endswith("waiting in the queue") else "🟢"
    room_id = await join_invite_named(client, f"{status} Customer {chat}")
    await _notice(client, room_id, notice)
    desk.rooms[chat] = room_id
    return room_id


async def test_routing_and_round_robin(desk: Desk) -> None:
    await _new(
        desk, "in-1", "hello", desk.ann, "📥 New conversation for team support; assigned to ann"
    )
    await _new(
        desk, "in-2", "hi", desk.bob, "📥 New conversation for team support; assigned to bob"
    )
    # The keyword rule: team billing, assigned by hand, the whole team invited.
    room = await _new(
        desk, "in-3", "my invoice is wrong", desk.cat,
        "📥 New conversation for team billing; waiting in the queue",
    )  # fmt: skip
    assert await _people(desk, desk.cat, room) == {CAT}
    # Not bob, and not the account's staff either: the inbox chose who sees it.
    assert await _people(desk, desk.ann, desk.rooms["in-1"]) == {ANN}


async def _people(desk: Desk, client: StaffClient, room_id: str) -> set[str]:
    """The Matrix users invited to or joined in a room, besides the bot and the ghosts."""
    return {
        e["state_key"] for e in await client.get_state(room_id)
        if e["type"] == "m.room.member"
        and e["content"].get("membership") in ("invite", "join")
        and e["state_key"] != desk.stack.bot_id
        and not e["state_key"].startswith("@bridge_hooks_")
    }  # fmt: skip


async def test_queue_claim_and_inbox(desk: Desk) -> None:
    dm = await _room_with_bot(desk.stack, desk.cat, is_direct=True)
    queue = await _ask(desk.cat, dm, "queue billing")
    assert queue.startswith("Queue of team billing (1, waiting longest first):\n• Customer in-3")
    assert (
        await _ask(desk.cat, dm, "queue support")
        == "Only the members of team support may see its queue."
    )
    room = desk.rooms["in-3"]
    assert await _ask(desk.cat, room, "!bridge assign me") == "👤 cat took this conversation."
    assert await _ask(desk.cat, dm, "queue") == "Nobody waits in the queue of team billing."
    assert (await _ask(desk.cat, dm, "inbox")).startswith(
        "Your conversations (1):\n• Customer in-3"
    )
    assert await _ask(desk.ann, desk.rooms["in-1"], "!bridge assign me") == (
        "This conversation is yours already."
    )


async def test_resolve_then_the_customer_reopens(desk: Desk) -> None:
    room = desk.rooms["in-1"]
    assert await _ask(desk.ann, room, "!bridge resolve") == "✅ ann resolved this conversation."
    assert (await _ask(desk.ann, room, "!bridge status")).startswith("Team support, resolved,")
    await _write(desk, "in-1", "one more question", "in-1-2")
    await _notice(desk.ann, room, "🔄 Reopened by the customer's message; back to ann")
    assert (await _ask(desk.ann, room, "!bridge status")).startswith(
        "Team support, open, assigned to ann."
    )


async def test_snooze_ends_by_itself(desk: Desk) -> None:
    room = desk.rooms["in-2"]
    answer = await _ask(desk.bob, room, "!bridge snooze 2s")
    assert answer.startswith("💤 bob snoozed this conversation until ")
    await _notice(desk.bob, room, "⏰ Snooze ended; the conversation is open again")
    assert (await _ask(desk.bob, room, "!bridge status")).startswith(
        "Team support, open, assigned to bob."
    )


async def test_assignments_and_snoozes_survive_a_restart(desk: Desk) -> None:
    room = desk.rooms["in-2"]
    assert (await _ask(desk.bob, room, "!bridge snooze 3s")).startswith("💤 bob snoozed")
    desk.stack.bridge.kill()  # SIGKILL while snoozed: the snooze ends after the restart
    await desk.stack.bridge.astart()
    await _notice(desk.bob, room, "⏰ Snooze ended; the conversation is open again")
    for client, chat, name in ((desk.ann, "in-1", "ann"), (desk.bob, "in-2", "bob")):
        status = await _ask(client, desk.rooms[chat], "!bridge status")
        assert status.startswith(f"Team support, open, assigned to {name}.")
    # Round robin goes on where it stopped: after bob comes ann.
    await _new(
        desk,
        "in-4",
        "hello again",
        desk.ann,
        "📥 New conversation for team support; assigned to ann",
    )


async def test_transfer_and_stats(desk: Desk) -> None:
    room = desk.rooms["in-4"]
    assert await _ask(desk.ann, room, "!bridge transfer billing") == (
        "➡️ ann transferred this conversation from team support to team billing; "
        "waiting in the queue."
    )
    assert await join_invite_named(desk.cat, "🟡 Customer in-4") == room  # billing: whole team
    dm = await _room_with_bot(desk.stack, desk.cat, is_direct=True)
    assert (await _ask(desk.cat, dm, "stats billing")).startswith(
        "Team billing: 2 open, 1 unassigned; the longest wait is "
    )
    assert (await _ask(desk.ann, room, "!bridge stats")) == (
        "Only the members of team billing may see its figures."
    )
