"""Bots answering first, end to end through a real Synapse: a Matrix bot user owns a new
conversation (pending, nobody assigned), its reply reaches the customer and its `handover`
gives the conversation to a member; a webhook bot (the unit tests' local HTTP server, which
checks the signature) replies, then hands over to its team, whose member is assigned.

One stack on SQLite, one on PostgreSQL; the tests of this module run in order on each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import SERVER_NAME, Stack, backend_database, build_stack
from tests.e2e.helpers import customer_msg, join_invite_named
from tests.e2e.test_commands import _ask
from tests.e2e.test_inbox import _notice
from tests.features.inbox.test_bot import SECRET, BotServer
from tests.infra.staff import StaffClient

ANN, CAT, HELPBOT = (f"@{name}:{SERVER_NAME}" for name in ("ann", "cat", "helpbot"))


@dataclass
class Desk:
    stack: Stack
    faq: BotServer
    staff: StaffClient
    """The account's staff (an admin): in every portal room, as the account says."""
    ann: StaffClient
    cat: StaffClient
    helpbot: StaffClient


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=["sqlite", "postgres"])
async def desk(request: pytest.FixtureRequest, tmp_path_factory: Any) -> AsyncIterator[Desk]:
    db_url = backend_database(request, "inbox_bot")
    faq = BotServer()
    await faq.start()
    features = {
        "inbox": {
            "teams": {
                "support": {"members": [ANN], "assignment": "round_robin", "bot": "helpbot"},
                "sales": {"members": [CAT], "assignment": "round_robin", "bot": "faq"},
            },
            "accounts": {"hooks": "support"},
            "routing": [{"team": "sales", "keywords": ["quote"]}],
            "bots": {
                "helpbot": {"matrix_user": HELPBOT},
                "faq": {"url": faq.url, "secret": SECRET, "timeout": "10s"},
            },
            "tick": "1s",
        }
    }
    try:
        workdir = tmp_path_factory.mktemp("inbox-bot")
        async with build_stack(workdir, features=features, db_url=db_url) as stack:
            clients = [
                await StaffClient.login(
                    stack.synapse.base_url, stack.staff_id, stack.staff_password
                )
            ]
            for name in ("ann", "cat", "helpbot"):
                password = f"pw-{name}-secret"
                await stack.synapse.aregister_user(name, password)
                user = f"@{name}:{SERVER_NAME}"
                clients.append(await StaffClient.login(stack.synapse.base_url, user, password))
            try:
                yield Desk(stack, faq, *clients)
            finally:
                for client in clients:
                    await client.close()
    finally:
        await faq.close()


async def _write(desk: Desk, chat: str, text: str, mid: str) -> None:
    status, body = await desk.stack.peer.send("hooks", customer_msg(chat, text, mid))
    assert status == 200, body


async def test_a_matrix_bot_user_answers_first(desk: Desk) -> None:
    await _write(desk, "bot-1", "hello, my printer is broken", "bot-1-1")
    room = await join_invite_named(desk.helpbot, "🤖 Customer bot-1")
    await _notice(
        desk.helpbot, room,
        "🤖 helpbot answers first; a staff message or `handover` gives this conversation to "
        "team support",
    )  # fmt: skip
    await desk.staff.join(room)  # invited as the account's staff
    assert (await _ask(desk.staff, room, "!bridge status")).startswith(
        "Team support, pending, assigned to nobody."
    )
    reply = await desk.helpbot.send_text(room, "Have you tried turning it off and on?")
    out = await desk.stack.peer.wait_for(lambda p: p.get("id") == reply)
    assert out["text"].endswith("Have you tried turning it off and on?")
    assert out["chat_id"] == "bot-1"
    # Its own message handed nothing over.
    assert (await _ask(desk.staff, room, "!bridge status")).startswith("Team support, pending,")
    assert await _ask(desk.helpbot, room, "!bridge handover printer still broken") == (
        "🤖 helpbot handed over\n📥 New conversation for team support; assigned to ann\n"
        "📝 printer still broken"
    )
    assert await join_invite_named(desk.ann, "🟢 Customer bot-1") == room
    assert (await _ask(desk.ann, room, "!bridge status")).startswith(
        "Team support, open, assigned to ann."
    )


async def test_a_webhook_bot_replies_then_hands_over(desk: Desk) -> None:
    await _write(desk, "bot-2", "a quote please", "bot-2-1")
    out = await desk.stack.peer.wait_for(
        lambda p: p.get("chat_id") == "bot-2" and p.get("text") == "Bot: a quote please"
    )
    assert out["type"] == "message"
    await _write(desk, "bot-2", "refund", "bot-2-2")
    room = await join_invite_named(desk.cat, "🟢 Customer bot-2")
    await _notice(
        desk.cat, room,
        "🤖 faq handed over\n📥 New conversation for team sales; assigned to cat\n"
        "📝 wants a refund",
    )  # fmt: skip
    assert [p["text"] for _, p in desk.faq.requests] == ["a quote please", "refund"]
    assert desk.faq.signed == [True, True]
    # The room shows what the customer got from the bot.
    shown = "🤖 Automatic message (bot faq):\nA colleague will help."
    await desk.cat.wait_for_event(
        lambda e: e.get("content", {}).get("body") == shown, room_id=room
    )
    await desk.stack.peer.wait_for(
        lambda p: p.get("chat_id") == "bot-2" and p.get("text") == "A colleague will help."
    )
