"""A bot answering first, on both database backends: a webhook bot (a real local HTTP server
that checks the signature) replying and handing over, failing, asked again for a retried hook;
a Matrix bot user invited, its own messages not handing over, a staff message and the
``handover`` command doing it; and the ``bots`` config, every bad value's key named."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from mautrix.util.async_db import Database

from bridge.connector import ConfigError
from bridge.connectors.webhook.protocol import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify
from bridge.features.inbox.bot_client import (
    MAX_ANSWER,
    BotAnswer,
    BotFailed,
    ask_bot,
    parse_answer,
)
from bridge.features.inbox.config import BotConfig
from bridge.features.inbox.rooms import room_name
from bridge.seams import ConversationRef, Origin, Outgoing
from tests.db.support import database, databases
from tests.features.inbox.test_config import SECTION as _SECTION
from tests.features.inbox.test_config import _grant, _set, inbox
from tests.features.inbox.test_module import (
    ACC,
    ADMIN,
    ANN,
    BOB,
    LEA,
    SAM,
    FakeServices,
    Wired,
    ref,
    row,
    wire,
)
from tests.test_config import example

__all__ = ["database", "databases"]

HELPBOT = "@helpbot:example.com"
SECRET = "bot-secret"
NOTICE = "A colleague takes over now."


@dataclass
class Services(FakeServices):
    sent: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    """Dedup key -> (chat, text, reason) of what the bridge sent the customers."""

    async def send_text(
        self,
        conversation: ConversationRef,
        text: str,
        *,
        reason: str,
        dedup: str | None = None,
        html: str | None = None,
    ) -> bool:
        key = dedup or str(len(self.sent))
        if key in self.sent:
            return False
        self.sent[key] = (conversation.chat, text, reason)
        return True

    def to(self, chat: str) -> list[tuple[str, str]]:
        return [(text, reason) for c, text, reason in self.sent.values() if c == chat]


class BotServer:
    """A webhook bot: answers by the customer's text, and records every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        """(Idempotency-Key, payload) of each request."""
        self.signed: list[bool] = []
        self.release = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot", self.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/bot"

    async def close(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.signed.append(verify(SECRET, body, request.headers.get(SIGNATURE_HEADER)))
        payload = json.loads(body)
        self.requests.append((request.headers[IDEMPOTENCY_HEADER], payload))
        text = payload["text"]
        if text == "boom":
            return web.Response(status=500, text="bot broke")
        if text == "garbage":
            return web.Response(text="<html>not json</html>")
        if text == "huge":
            return web.json_response({"reply": "x" * (MAX_ANSWER + 1)})
        if text == "slow":
            await self.release.wait()
        if text == "refund":
            handover = {"team": "sales", "note": "wants a refund"}
            return web.json_response({"reply": "A colleague will help.", "handover": handover})
        if text == "human please":
            return web.json_response({"handover": True})
        return web.json_response({"reply": f"Bot: {text}"})


@pytest.fixture
async def bot_server() -> AsyncIterator[BotServer]:
    server = BotServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def section(url: str | None) -> dict[str, Any]:
    """Team support answered first by the Matrix bot helpbot; with ``url``, the webhook
    account's conversations by the webhook bot faq instead (the account's bot wins)."""
    bots: dict[str, Any] = {"helpbot": {"matrix_user": HELPBOT}}
    data: dict[str, Any] = {
        "teams": {
            "support": {
                "members": [ANN, BOB], "leads": [LEA], "assignment": "round_robin",
                "bot": "helpbot", "replies": {"welcome": "Welcome!"},
            },
            "sales": {"members": [SAM], "invite": "team"},
        },
        "accounts": {ACC: "support"},
        "bots": bots,
    }  # fmt: skip
    if url:
        bots["faq"] = {"url": url, "secret": SECRET, "timeout": "5s", "handover_notice": NOTICE}
        data["account_bots"] = {ACC: "faq"}
    return data


async def staff(wired: Wired, chat: str, sender: str, text: str) -> None:
    """A staff message of ``sender`` delivered to the customer of ``chat``."""
    await wired.seams.delivered(Outgoing(ref(chat), Origin.STAFF, sender, text))


def sent(wired: Wired) -> Services:
    assert isinstance(wired.services, Services)
    return wired.services


@pytest.fixture
async def webhook(database: Database, bot_server: BotServer) -> Wired:
    return await wire(section(bot_server.url), Services())


@pytest.fixture
async def matrix(database: Database) -> Wired:
    return await wire(section(None), Services())


FIRST = (
    "🤖 {bot} answers first; a staff message or `handover` gives this conversation to team {team}"
)


async def test_webhook_bot_replies_then_hands_over_to_its_team(
    webhook: Wired, bot_server: BotServer
) -> None:
    await webhook.customer("c1", "hi", "m1", first=True)
    c1 = await row("c1")
    assert (c1.status, c1.bot, c1.assignee, c1.waiting_since) == ("pending", "faq", None, None)
    assert room_name(c1, "Customer c1") == "🤖 Customer c1"
    # Only the bot answers: no welcome, nobody invited, no team room announcement.
    assert sent(webhook).to("c1") == [("Bot: hi", "bot faq")]
    assert webhook.services.invites == []
    assert webhook.services.texts("!c1:x") == [FIRST.format(bot="faq", team="support")]
    assert webhook.services.texts("!team-support:x") == []
    [(key, payload)] = bot_server.requests
    assert bot_server.signed == [True]
    assert payload == {
        "account": ACC, "chat": "c1", "message_id": "m1", "sender": "user-c1", "text": "hi",
    }  # fmt: skip
    # Never assigned while the bot has it, nor shown as waiting.
    await webhook.seams.jobs[0].run()
    assert (await row("c1")).assignee is None
    assert await webhook.ask(ANN, "queue support") == "Nobody waits in the queue of team support."

    # The hook retried: the bot is asked again with the same key; nothing is sent twice.
    before = (dict(sent(webhook).sent), dict(webhook.services.notices))
    await webhook.customer("c1", "hi", "m1", first=True)
    assert [k for k, _ in bot_server.requests] == [key, key]
    assert (sent(webhook).sent, webhook.services.notices) == before

    await webhook.customer("c1", "refund", "m2")
    c1 = await row("c1")
    assert (c1.status, c1.bot, c1.team, c1.assignee) == ("open", None, "sales", None)
    assert c1.waiting_since is not None
    assert sent(webhook).to("c1")[1:] == [
        ("A colleague will help.", "bot faq"), (NOTICE, "bot faq"),
    ]  # fmt: skip
    assert webhook.services.texts("!c1:x")[1:] == [
        "🤖 faq handed over\n📥 New conversation for team sales; waiting in the queue\n"
        "📝 wants a refund"
    ]
    assert ("!c1:x", SAM) in webhook.services.invites  # sales invites the whole team
    [announcement] = [t for t in webhook.services.texts("!team-sales:x") if t.startswith("📥")]
    assert announcement.startswith(
        "📥 New conversation from Customer c1 (support-webhook): “wants"
    )
    assert await webhook.ask(SAM, "queue sales") != "Nobody waits in the queue of team sales."
    # The humans have it: the bot is not asked any more.
    await webhook.customer("c1", "thanks", "m3")
    await webhook.customer("c1", "refund", "m2")  # that hook retried: nothing new
    assert len(bot_server.requests) == 3
    assert len(webhook.services.texts("!c1:x")) == 2


async def test_a_failing_bot_hands_over(webhook: Wired, bot_server: BotServer) -> None:
    for chat, text in (("c1", "boom"), ("c2", "garbage"), ("c3", "huge")):
        await webhook.customer(chat, text, f"{chat}-1", first=True)
    assert [(r.status, r.bot) for r in [await row(c) for c in ("c1", "c2", "c3")]] == [
        ("open", None)
    ] * 3
    reasons = ("it answered HTTP 500", "its answer is not JSON",
               f"its answer is longer than {MAX_ANSWER} bytes")  # fmt: skip
    for chat, reason, assignee in zip(
        ("c1", "c2", "c3"), reasons, ("ann", "bob", "ann"), strict=True
    ):
        assert webhook.services.texts(f"!{chat}:x") == [
            FIRST.format(bot="faq", team="support"),
            f"🤖 faq failed ({reason})\n📥 New conversation for team support; "
            f"assigned to {assignee}",
        ]
        assert sent(webhook).to(chat) == [(NOTICE, "bot faq")]
    assert ("!c1:x", ANN) in webhook.services.invites and (
        "!c1:x",
        LEA,
    ) in webhook.services.invites
    # A hand-over without a team keeps the conversation's.
    await webhook.customer("c4", "hello", "c4-1", first=True)
    await webhook.customer("c4", "human please", "c4-2")
    assert ((await row("c4")).team, (await row("c4")).assignee) == ("support", BOB)


async def test_the_webhook_client(bot_server: BotServer) -> None:
    bot = BotConfig("faq", url=bot_server.url, secret=SECRET, timeout=0.2)
    payload = {"account": ACC, "chat": "c", "message_id": "m", "sender": "u", "text": "hi"}
    assert await ask_bot(bot, payload, "k") == BotAnswer(reply="Bot: hi")
    with pytest.raises(BotFailed, match=r"no answer within 0.2s"):
        await ask_bot(bot, {**payload, "text": "slow"}, "k")
    gone = BotConfig("faq", url="http://127.0.0.1:9/bot", secret=SECRET)
    with pytest.raises(BotFailed, match="unreachable"):
        await ask_bot(gone, payload, "k")
    wrong = BotConfig("faq", url=bot_server.url, secret="not-the-secret")
    await ask_bot(wrong, payload, "k")
    assert bot_server.signed == [True, True, False]


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        (b"", BotAnswer()),
        (b'{"reply": " hello "}', BotAnswer(reply="hello")),
        (b'{"handover": true}', BotAnswer(handover=True)),
        (b'{"reply": "", "handover": false}', BotAnswer()),
        (b'{"handover": {"note": "n"}}', BotAnswer(handover=True, note="n")),
        (b'{"handover": {"team": "sales"}}', BotAnswer(handover=True, team="sales")),
    ],
)
def test_answers(body: bytes, answer: BotAnswer) -> None:
    assert parse_answer(body) == answer


@pytest.mark.parametrize(
    "body",
    [b"[]", b'{"reply": 5}', b'{"handover": "yes"}', b'{"handover": {"team": 1}}',
     b'{"reply": NaN}', b"{", b'{"reply": "' + b"x" * 4001 + b'"}', b"[" * 100_000],
)  # fmt: skip
def test_bad_answers(body: bytes) -> None:
    with pytest.raises(BotFailed):
        parse_answer(body)


async def test_matrix_bot_user_answers_until_staff_write(matrix: Wired) -> None:
    await matrix.customer("c1", "hello", "m1", first=True)
    c1 = await row("c1")
    assert (c1.status, c1.bot, c1.assignee) == ("pending", "helpbot", None)
    assert matrix.services.invites == [("!c1:x", HELPBOT)]
    assert matrix.services.texts("!c1:x") == [FIRST.format(bot="helpbot", team="support")]
    assert sent(matrix).to("c1") == []  # no welcome: the bot greets
    # The bot's own message is no hand-over and no response of the staff.
    await staff(matrix, "c1", HELPBOT, "Hi, I am the help bot")
    c1 = await row("c1")
    assert (c1.status, c1.bot, c1.first_response_at) == ("pending", "helpbot", None)
    # The customer answering the bot does not open it either.
    await matrix.customer("c1", "my printer is broken", "m2")
    assert ((await row("c1")).status, len(matrix.services.texts("!c1:x"))) == ("pending", 1)
    # A staff member's message hands it over (once, should the hook be retried).
    await staff(matrix, "c1", BOB, "Let me help")
    await staff(matrix, "c1", BOB, "Let me help")
    c1 = await row("c1")
    assert (c1.status, c1.bot, c1.assignee) == ("open", None, ANN)
    assert matrix.services.texts("!c1:x")[1:] == [
        "🤖 bob answered instead of helpbot\n📥 New conversation for team support; assigned to ann"
    ]
    assert len(matrix.services.texts("!team-support:x")) == 1
    assert c1.waiting_since is None  # bob's message answered the customer


async def test_the_handover_command(matrix: Wired) -> None:
    usage = "Usage: handover [team] [note...] (in the room of a conversation a bot answers)"
    assert await matrix.ask(HELPBOT, "handover") == usage
    await matrix.customer("c1", "hello", "m1", first=True)
    await matrix.customer("c2", "hello", "m2", first=True)
    assert await matrix.ask(SAM, "handover", "c1") == (
        "Only helpbot or the members of team support may do this."
    )
    assert await matrix.ask(HELPBOT, "handover sales customer wants a quote", "c1") == (
        "🤖 helpbot handed over\n📥 New conversation for team sales; waiting in the queue\n"
        "📝 customer wants a quote"
    )
    assert ((await row("c1")).team, (await row("c1")).status) == ("sales", "open")
    assert (
        await matrix.ask(HELPBOT, "handover", "c1") == f"No bot answers this conversation. {usage}"
    )
    answer = await matrix.ask(LEA, "handover billing is wrong", "c2")
    assert answer == (
        "🤖 lea took this conversation over from helpbot\n📥 New conversation for team support;"
        " assigned to ann\n📝 billing is wrong"
    )
    assert (
        await matrix.ask(ADMIN, "handover", "c3") == f"No bot answers this conversation. {usage}"
    )
    # A status change by the staff ends the bot's turn as well.
    await matrix.customer("c3", "hello", "m3", first=True)
    assert await matrix.ask(BOB, "resolve", "c3") == "✅ bob resolved this conversation."
    assert (await row("c3")).bot is None


async def test_assign_takes_a_conversation_from_its_bot(matrix: Wired) -> None:
    """Round robin would give the next conversation to ann; ``assign`` names who takes it."""
    await matrix.customer("c1", "hello", "m1", first=True)
    assert await matrix.ask(BOB, "assign me", "c1") == (
        "🤖 bob took this conversation over from helpbot\n"
        "📥 New conversation for team support; assigned to bob"
    )
    c1 = await row("c1")
    assert (c1.status, c1.bot, c1.assignee) == ("open", None, BOB)
    assert ("!c1:x", BOB) in matrix.services.invites
    await matrix.customer("c2", "hello", "m2", first=True)
    assert await matrix.ask(LEA, f"assign {SAM}", "c2") == (
        f"{SAM} is not a member of team support. Usage: assign @user | me"
    )
    assert (await row("c2")).bot == "helpbot"
    assert (await matrix.ask(LEA, f"assign {ANN}", "c2")).endswith("assigned to ann")
    assert (await row("c2")).assignee == ANN


async def test_commands_for_the_humans_wait_for_the_hand_over(matrix: Wired) -> None:
    await matrix.customer("c1", "hello", "m1", first=True)
    waits = (
        "🤖 helpbot answers this conversation; `handover` or `assign` gives it to team "
        "support first."
    )
    for command in ("reopen", "pending", "snooze 1h", "unassign", "transfer sales"):
        assert await matrix.ask(BOB, command, "c1") == waits, command
    assert (await row("c1")).bot == "helpbot"


# ----------------------------------------------------------------------------- the config

BOTS = "features.inbox.bots"


def _bots(data: dict[str, Any]) -> None:
    data["bots"] = {
        "helpbot": {"matrix_user": HELPBOT},
        "faq": {"url": "https://faq.example.com/bridge", "secret": "s", "timeout": "20s"},
    }
    data["teams"]["sales"]["bot"] = "helpbot"
    data["account_bots"] = {"support-webhook": "faq"}


def test_bots_config() -> None:
    data = copy.deepcopy(_SECTION)
    _bots(data)
    parsed = inbox(data)
    assert parsed is not None
    assert parsed.bots == {
        "helpbot": BotConfig("helpbot", matrix_user=HELPBOT),
        "faq": BotConfig("faq", url="https://faq.example.com/bridge", secret="s", timeout=20),
    }
    assert parsed.bot_for("support-webhook", "sales") == parsed.bots["faq"]
    assert parsed.bot_for("support-email", "sales") == parsed.bots["helpbot"]
    assert parsed.bot_for("support-email", "support") is None


def _and(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        _bots(data)
        for one in changes:
            one(data)

    return change


BAD = [
    (_and(_set("bots", ["helpbot"])), None, BOTS),
    (_and(_set("bots.help bot", {"matrix_user": HELPBOT})), None, f"{BOTS}.help bot"),
    (_and(_set("bots.helpbot.url", "https://x.example.com")), None, f"{BOTS}.helpbot"),
    (_and(_set("bots.helpbot", {})), None, f"{BOTS}.helpbot"),
    (_and(_set("bots.helpbot.matrix_user", "helpbot")), None, f"{BOTS}.helpbot.matrix_user"),
    (_and(_set("bots.helpbot.secret", "s")), None, f"{BOTS}.helpbot.secret"),
    (_and(_set("bots.helpbot.color", "red")), None, f"{BOTS}.helpbot.color"),
    (_and(_set("bots.helpbot.handover_notice", " ")), None, f"{BOTS}.helpbot.handover_notice"),
    (_and(_set("bots.faq.url", "faq.example.com")), None, f"{BOTS}.faq.url"),
    (_and(_set("bots.faq.url", "ftp://faq.example.com")), None, f"{BOTS}.faq.url"),
    (_and(_set("bots.faq.secret", "")), None, f"{BOTS}.faq.secret"),
    (_and(_set("bots.faq", {"url": "https://faq.example.com"})), None, f"{BOTS}.faq.secret"),
    (_and(_set("bots.faq.timeout", "2m")), None, f"{BOTS}.faq.timeout"),
    (_and(_set("bots.faq.timeout", 5)), None, f"{BOTS}.faq.timeout"),
    (_and(_set("teams.sales.bot", "robot")), None, "features.inbox.teams.sales.bot"),
    (_and(_set("teams.sales.bot", ["helpbot"])), None, "features.inbox.teams.sales.bot"),
    (_and(_set("account_bots.support-webhook", "robot")), None,
     "features.inbox.account_bots.support-webhook"),
    (_and(_set("account_bots.no-such", "faq")), None, "features.inbox.account_bots.no-such"),
    (_and(_set("account_bots", ["faq"])), None, "features.inbox.account_bots"),
    # A Matrix bot user needs a permission on the accounts it answers first.
    (_and(_set("bots.helpbot.matrix_user", "@bot:partner.test")), None,
     f"{BOTS}.helpbot.matrix_user"),
    (_and(_set("bots.helpbot.matrix_user", "@bot:partner.test"),
          _set("account_bots.support-telegram", "helpbot")),
     _grant("partner.test", {"support-email": "staff", "support-whatsapp": "staff"}),
     f"{BOTS}.helpbot.matrix_user"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "mutate", "key"), BAD)
def test_bad_bots_name_the_key(change: Any, mutate: Any, key: str) -> None:
    data = copy.deepcopy(_SECTION)
    change(data)
    with pytest.raises(ConfigError) as caught:
        inbox(data, mutate)
    assert caught.value.key == key


def test_a_matrix_bot_needs_only_the_accounts_it_serves() -> None:
    data = copy.deepcopy(_SECTION)
    _bots(data)
    data["bots"]["helpbot"]["matrix_user"] = "@bot:partner.test"
    # Sales is reached by its rules on every account; the webhook account has its own bot.
    accounts = {a: "staff" for a in example()["channels"] if a != "support-webhook"}
    parsed = inbox(data, _grant("partner.test", accounts))
    assert parsed is not None and parsed.bots["helpbot"].matrix_user == "@bot:partner.test"
