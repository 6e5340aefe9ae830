"""The fuzz tests of the appservice listener: a fake homeserver, the bridge running in
this process against it, and hostile events built from templates of every kind the core
looks at."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from ruamel.yaml import YAML

from bridge.config import parse
from bridge.core import dispatcher as dispatcher_module
from bridge.core.bridge import Bridge
from bridge.db import Portal, QueueItem
from tests.db.support import Databases, databases  # noqa: F401 - the fixture, on both backends
from tests.infra.ports import LOOPBACK, free_port

from .fuzz_support import (
    REQUEST_TIMEOUT,
    ExceptionLog,
    awkward_text,
    json_values,
    mutate,
)

REPO = Path(__file__).resolve().parents[2]
DOMAIN = "localhost"
HS_TOKEN = "hs-token-fuzz-0123456789"
AS_TOKEN = "as-token-fuzz-0123456789"
STAFF = f"@staff:{DOMAIN}"
BOT = f"@bridgebot:{DOMAIN}"
ACCOUNT = "hooks"
PORTAL_ROOM = f"!portal:{DOMAIN}"
OTHER_ROOM = f"!elsewhere:{DOMAIN}"
TXN_PATH = "/_matrix/app/v1/transactions/{}"
SENTINEL_TIMEOUT = 10.0
ALLOWED = {200, 400, 403, 404, 405, 413}
FAKE_HS_LOG = "test.fake-homeserver"


# --------------------------------------------------------------------------- fake homeserver


class FakeHomeserver:
    """Answers the client-server API calls the bridge makes (as the bot) with plausible
    success, and is the webhook account's receiver (``POST /inbox``), recording each payload."""

    def __init__(self) -> None:
        self.inbox: list[dict[str, Any]] = []
        self.sent: list[tuple[str, Any]] = []
        self._event_ids = itertools.count(1)
        self._delivered = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Its own logger: what it logs about requests it cannot parse (a room id too long for
        # a URL) is the fake homeserver's business, not the bridge's.
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=1.0, logger=logging.getLogger(FAKE_HS_LOG)
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for_inbox(self, event_id: str) -> dict[str, Any]:
        async with asyncio.timeout(SENTINEL_TIMEOUT):
            while True:
                for payload in self.inbox:
                    if payload.get("id") == event_id:
                        return payload
                self._delivered.clear()
                await self._delivered.wait()

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        body = await request.read()
        if path == "/inbox":
            payload = json.loads(body)
            self.inbox.append(payload)
            self._delivered.set()
            return web.json_response({"id": f"remote-{next(self._event_ids)}"})
        if path.endswith("/versions"):
            return web.json_response({"versions": ["v1.1", "v1.5", "v1.11"]})
        if path.endswith("/register"):
            return web.json_response({"user_id": BOT, "access_token": "x", "device_id": "D"})
        if "/appservice/" in path and path.endswith("/ping"):
            return web.json_response({"duration_ms": 1})
        if "/join" in path:
            return web.json_response({"room_id": PORTAL_ROOM})
        if "/send/" in path or "/redact/" in path:
            self.sent.append((path, json.loads(body) if body else None))
            return web.json_response({"event_id": f"$bot{next(self._event_ids)}"})
        if path.endswith("/joined_members"):
            return web.json_response({"joined": {}})
        if "/state/" in path or "/profile/" in path and request.method == "GET":
            return web.json_response({"errcode": "M_NOT_FOUND", "error": "no"}, status=404)
        return web.json_response({})


# --------------------------------------------------------------------------- the bridge


def bridge_config(hs_url: str, db_url: str, port: int) -> Any:
    data: dict[str, Any] = YAML(typ="safe").load((REPO / "example-config.yaml").read_text())
    data["homeserver"].update(address=hs_url, domain=DOMAIN)
    data["appservice"].update(
        address=f"http://{LOOPBACK}:{port}", port=port, as_token=AS_TOKEN, hs_token=HS_TOKEN
    )
    data["database"] = {"url": db_url}
    # An item that keeps failing is given up (and logged as an error) after a few quick
    # tries, so such a bug fails the example at once instead of holding idle() for 15 minutes.
    data["queue"] = {"max_attempts": 3, "max_age": 0}
    data["permissions"] = {"*": "none", DOMAIN: "staff"}
    data["channels"] = {
        ACCOUNT: {
            "type": "webhook",
            "staff": [STAFF],
            "secret": "fuzz-secret-for-the-webhook",
            "outbound_url": f"{hs_url}/inbox",
            "delivery_deadline": 30,
            "request_timeout": 5,
        }
    }
    return parse(data)


class Running:
    """The bridge in this process, a client for its listener, and the counters the checks
    need."""

    def __init__(
        self,
        bridge: Bridge,
        hs: FakeHomeserver,
        session: aiohttp.ClientSession,
        errors: ExceptionLog,
    ) -> None:
        self.bridge = bridge
        self.errors = errors
        self.hs = hs
        self.session = session
        self.recorded: list[list[QueueItem]] = []
        self.numbers = itertools.count(1)
        self.delivered_events: list[str] = []
        submit = bridge.listener._on_recorded

        def on_recorded(items: list[QueueItem]) -> None:
            self.recorded.append(items)
            submit(items)

        bridge.listener._on_recorded = on_recorded

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.bridge.config.as_port}{path}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = HS_TOKEN,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if data is not None:
            headers.setdefault("Content-Type", "application/json")
        body = io.BytesIO(data) if data is not None else None
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with self.session.request(
            method, self.url(path), data=body, headers=headers, timeout=timeout
        ) as resp:
            return resp.status, await resp.text()

    async def idle(self) -> None:
        """Wait until the dispatcher has nothing left; fail at once when a handler raised
        (it would be retried forever)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SENTINEL_TIMEOUT
        while True:
            no_errors(self.errors)
            try:
                async with asyncio.timeout(0.05):
                    await self.bridge.dispatcher.wait_idle()
                return
            except TimeoutError:
                if loop.time() > deadline:
                    raise AssertionError("the dispatcher did not get idle") from None

    async def txn_count(self) -> int:
        return int(await self.bridge.db.fetchval("SELECT COUNT(*) FROM as_txn") or 0)

    async def put(
        self, body: bytes, *, txn: str | None = None, token: str | None = HS_TOKEN
    ) -> int:
        """PUT a transaction and check the answer and what was stored: 200 or a 4xx, nothing
        stored for a 4xx, the transaction id and one queue item per event object for a 200."""
        await self.idle()
        assert await QueueItem.count() == 0
        txns_before = await self.txn_count()
        recorded_before = len(self.recorded)
        path = TXN_PATH.format(txn if txn is not None else f"fuzz-{next(self.numbers)}")
        status, answer = await self.request("PUT", path, token=token, data=body)
        if currently_in_test_context():
            event(f"status {status}")
        assert status in ALLOWED, (status, answer[:300])
        new_txns = await self.txn_count() - txns_before
        if status != 200:
            assert new_txns == 0, f"answered {status} but recorded the transaction"
            assert len(self.recorded) == recorded_before, "answered 4xx but queued events"
            assert await QueueItem.count() == 0
            return status
        assert json.loads(answer) == {}
        assert new_txns in (0, 1)
        if new_txns:
            (items,) = self.recorded[recorded_before:]
            parsed = json.loads(body)
            assert len(items) <= sum(
                isinstance(e, dict) for key in ("events", "ephemeral") for e in parsed.get(key, [])
            ) + sum(isinstance(e, dict) for e in parsed.get("de.sorunome.msc2409.ephemeral", []))
        return status

    async def sentinel(self) -> None:
        """A staff message in the portal room still goes out, and nothing logged an error."""
        event_id = f"$sentinel{next(self.numbers)}:{DOMAIN}"
        status, answer = await self.request(
            "PUT", TXN_PATH.format(f"sentinel-{event_id}"),
            data=json.dumps({"events": [message(event_id, "still alive")]}).encode(),
        )  # fmt: skip
        assert status == 200, answer
        await self.idle()
        try:
            payload = await self.hs.wait_for_inbox(event_id)
        except TimeoutError:
            raise AssertionError(
                "the portal room's worker did not get to a valid message: it is stuck on an "
                "earlier event"
            ) from None
        assert payload["text"].endswith("still alive")
        self.delivered_events.append(event_id)
        await self.idle()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatcher_module, "RETRY_BASE", 0.01)
    monkeypatch.setattr(dispatcher_module, "RETRY_MAX", 0.05)


@pytest.fixture
async def running(databases: Databases, errors: ExceptionLog) -> AsyncIterator[Running]:  # noqa: F811
    hs = FakeHomeserver()
    await hs.start()
    bridge = Bridge(bridge_config(hs.url, databases.url, free_port()))
    session = aiohttp.ClientSession()
    try:
        await asyncio.wait_for(bridge.start(), 30)
        await Portal(ACCOUNT, "chat-1", PORTAL_ROOM, "Customer").insert()
        yield Running(bridge, hs, session, errors)
    finally:
        await session.close()
        await bridge.stop()
        await hs.stop()


@pytest.fixture
def errors() -> Iterator[ExceptionLog]:
    with ExceptionLog(ignore_loggers=(FAKE_HS_LOG,)) as log:
        yield log


def no_errors(log: ExceptionLog) -> None:
    logged = log.take()
    assert not logged, "exceptions were logged:\n" + "\n".join(logged)


# --------------------------------------------------------------------------- events


def message(event_id: str, body: str, *, sender: str = STAFF, room: str = PORTAL_ROOM) -> Any:
    return {
        "type": "m.room.message", "room_id": room, "sender": sender, "event_id": event_id,
        "origin_server_ts": 1_700_000_000_000, "content": {"msgtype": "m.text", "body": body},
    }  # fmt: skip


def templates(target: str) -> list[dict[str, Any]]:
    """One event of every kind the core looks at, valid, aimed at ``target`` (an event the
    bridge delivered before) where it refers to one."""
    ts = 1_700_000_000_000
    base = {"room_id": PORTAL_ROOM, "sender": STAFF, "event_id": "$e:x", "origin_server_ts": ts}
    text = {"msgtype": "m.text", "body": "hello"}
    return [
        {**base, "type": "m.room.message", "content": text},
        {**base, "type": "m.room.message", "content": {
            "msgtype": "m.text", "body": "> <@a:b> quoted\n\nreply", "format":
            "org.matrix.custom.html", "formatted_body": "<mx-reply>q</mx-reply><b>reply</b>",
            "m.relates_to": {"m.in_reply_to": {"event_id": target}},
        }},
        {**base, "type": "m.room.message", "content": {"msgtype": "m.emote", "body": "waves"}},
        {**base, "type": "m.room.message", "content": {
            "msgtype": "m.image", "body": "cat.png", "url": "mxc://localhost/abc",
            "info": {"mimetype": "image/png", "size": 1234, "w": 1, "h": 1},
        }},
        {**base, "type": "m.room.message", "content": {"msgtype": "m.file", "body": "x.pdf",
                                                       "file": {"url": "mxc://a/b"}}},
        {**base, "type": "m.room.message", "content": {
            "msgtype": "m.text", "body": "* edited", "m.new_content": text,
            "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        }},
        {**base, "type": "m.room.message", "content": {"msgtype": "m.location", "body": "x"}},
        {**base, "type": "m.room.message", "content": {"msgtype": "m.text", "body": "!bridge"}},
        {**base, "type": "m.reaction", "content": {
            "m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": "👍"},
        }},
        {**base, "type": "m.room.redaction", "redacts": target, "content": {"redacts": target}},
        {**base, "type": "m.room.member", "state_key": BOT,
         "content": {"membership": "invite", "is_direct": True}},
        {**base, "type": "m.room.name", "state_key": "", "content": {"name": "A room"}},
        {**base, "type": "m.room.power_levels", "state_key": "", "content": {"users": {}}},
        {**base, "type": "org.example.unknown", "content": {"a": 1}},
        {"type": "m.typing", "room_id": PORTAL_ROOM, "content": {"user_ids": [STAFF]}},
        {"type": "m.receipt", "room_id": PORTAL_ROOM,
         "content": {target: {"m.read": {STAFF: {"ts": ts}}}}},
        {"type": "m.presence", "sender": STAFF, "content": {"presence": "online"}},
    ]  # fmt: skip


ROOMS = [PORTAL_ROOM, PORTAL_ROOM, OTHER_ROOM, "", "!", "!no-colon", "!a:b:c:d", "#alias:x"]
SENDERS = [STAFF, STAFF, BOT, f"@bridge_{ACCOUNT}_someone:{DOMAIN}", "@eve:evil.example", "", "@"]


@st.composite
def hostile_events(draw: st.DrawFn, target: str) -> Any:
    """A valid event of any kind, with a drawn room, sender and id, then up to three places
    replaced by hostile values or removed."""
    evt = dict(draw(st.sampled_from(templates(target))))
    if "room_id" in evt:
        evt["room_id"] = draw(st.sampled_from(ROOMS) | awkward_text)
    if "sender" in evt:
        evt["sender"] = draw(st.sampled_from(SENDERS) | awkward_text)
    if "event_id" in evt:
        evt["event_id"] = draw(st.sampled_from([f"${n}:x" for n in range(5)]) | awkward_text)
    return mutate(draw, evt)


@st.composite
def transactions(draw: st.DrawFn, target: str) -> dict[str, Any]:
    """A transaction: timeline events, ephemeral events under one or both keys, to-device
    events, some events that are not objects at all."""
    junk = st.one_of(json_values, st.just([]), st.just("event"), st.just(None))
    events = draw(st.lists(hostile_events(target) | junk, max_size=4))
    body: dict[str, Any] = {"events": events}
    ephemeral = draw(st.lists(hostile_events(target), max_size=2))
    for key in draw(
        st.sampled_from([[], ["ephemeral"], ["de.sorunome.msc2409.ephemeral"], ["ephemeral",
                        "de.sorunome.msc2409.ephemeral"]])
    ):  # fmt: skip
        body[key] = ephemeral
    if draw(st.booleans()):
        key = draw(st.sampled_from(["to_device", "de.sorunome.msc2409.to_device"]))
        body[key] = [{"type": "m.room_key", "sender": STAFF, "to_user_id": BOT, "content": {}}]
    if draw(st.booleans()):
        body["device_lists"] = draw(json_values)
    return body


def encode(value: Any, ensure_ascii: bool = True) -> bytes:
    # NaN and Infinity written as Python writes them; lone surrogates as \ud800 escapes, or,
    # without ensure_ascii, as the bytes surrogatepass gives (not UTF-8 at all).
    return json.dumps(value, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")


# --------------------------------------------------------------------------- properties
