"""Bots answering first, end to end through a real Synapse: a Matrix bot user owns a new
conversation (pending, nobody assigned), its reply reaches the customer and its `handover`
gives the conversation to a member; a webhook bot (a local HTTP server checking the
signature) replies, then hands over to its team, whose member is assigned and invited.

One stack on SQLite (the unit tests in tests/features/inbox/test_bot.py run on both backends);
the tests of this module run in order on it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from aiohttp import web

from bridge.connectors.webhook.protocol import SIGNATURE_HEADER, verify
from tests.conftest import SERVER_NAME, Stack, build_stack
from tests.e2e.helpers import customer_msg, join_invite_named
from tests.e2e.test_commands import _ask
from tests.e2e.test_inbox import _notice
from tests.infra.staff import StaffClient

ANN, CAT, HELPBOT = (f"@{name}:{SERVER_NAME}" for name in ("ann", "cat", "helpbot"))
SECRET = "faq-bot-secret"


class FaqBot:
    """The webhook bot: answers each message, hands over when asked for a human."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.signed: list[bool] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/faq", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/faq"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.signed.append(verify(SECRET, body, request.headers.get(SIGNATURE_HEADER)))
        payload = json.loads(body)
        self.payloads.append(payload)
        if "human" in payload["text"]:
            return web.json_response({"handover": {"note": "asks for a human"}})
        return web.json_response({"reply": f"FAQ: see our invoice page ({payload['text']})"})


@dataclass
class Desk:
    stack: Stack
    faq: FaqBot
    staff: StaffClient
    """The account's staff (an admin): in every portal room, as the account says."""
    ann: StaffClient
    cat: StaffClient
    helpbot: StaffClient


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def desk(tmp_path_factory: Any) -> AsyncIterator[Desk]:
    faq = FaqBot()
    await faq.start()
    features = {
        "inbox": {
            "teams": {
                "support": {"members": [ANN], "assignment": "round_robin", "bot": "helpbot"},
                "billing": {"members": [CAT], "assignment": "round_robin", "bot": "faq"},
            },
            "accounts": {"hooks": "support"},
            "routing": [{"team": "billing", "keywords": ["invoice"]}],
            "bots": {
                "helpbot": {"matrix_user": HELPBOT},
                "faq": {"url": faq.url, "secret": SECRET, "timeout": "10s"},
            },
            "tick": "1s",
        }
    }
    try:
        async with build_stack(tmp_path_factory.mktemp("inbox-bot"), features=features) as stack:
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
        await faq.stop()


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
    await _write(desk, "bot-2", "where is my invoice?", "bot-2-1")
    answer = "FAQ: see our invoice page (where is my invoice?)"
    out = await desk.stack.peer.wait_for(
        lambda p: p.get("chat_id") == "bot-2" and p.get("text") == answer
    )
    assert out["type"] == "message"
    await _write(desk, "bot-2", "I want a human", "bot-2-2")
    room = await join_invite_named(desk.cat, "🟢 Customer bot-2")
    await _notice(
        desk.cat, room,
        "🤖 faq handed over\n📥 New conversation for team billing; assigned to cat\n"
        "📝 asks for a human",
    )  # fmt: skip
    assert [p["text"] for p in desk.faq.payloads] == ["where is my invoice?", "I want a human"]
    assert desk.faq.signed == [True, True]
    # The room shows what the customer got from the bot.
    shown = f"🤖 Automatic message (bot faq):\n{answer}"
    await desk.cat.wait_for_event(
        lambda e: e.get("content", {}).get("body") == shown, room_id=room
    )
