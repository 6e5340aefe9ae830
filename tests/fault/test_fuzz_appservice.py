"""Property tests of the appservice listener and of what the core does with what it accepted.

The whole bridge runs in this process (``Bridge.start()``) on a SQLite file and on PostgreSQL,
against a small fake homeserver that answers every client-server call the bot makes, with a
webhook account whose receiver is that fake server too. Whatever the homeserver side sends -
arbitrary bytes, JSON of any shape, transactions whose events are valid-looking but hostile in
any field, odd transaction ids, right and wrong tokens - the answer is 200 or a 4xx, never a 5xx
or a hang; nothing is stored for a refused transaction and a recorded one has all its events;
and afterwards a staff message in the same portal room still goes out (the room's worker is not
stuck retrying a poison event), with no exception logged on the way."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from hypothesis import event, given
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
    fuzz_settings,
    hostile_values,
    json_values,
    mutate,
    nested,
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
        submit = bridge.server._on_recorded

        def on_recorded(items: list[QueueItem]) -> None:
            self.recorded.append(items)
            submit(items)

        bridge.server._on_recorded = on_recorded

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


@fuzz_settings(60)
@given(body=st.binary(max_size=2048), right_token=st.booleans())
async def test_arbitrary_bytes(
    running: Running, errors: ExceptionLog, body: bytes, right_token: bool
) -> None:
    status = await running.put(body, token=HS_TOKEN if right_token else "wrong")
    assert status == (200 if right_token else 403) or (right_token and status == 400)
    no_errors(errors)


@fuzz_settings(60)
@given(value=json_values, ensure_ascii=st.booleans())
async def test_arbitrary_json(
    running: Running, errors: ExceptionLog, value: Any, ensure_ascii: bool
) -> None:
    await running.put(encode(value, ensure_ascii))
    no_errors(errors)


@fuzz_settings(25)
@given(depth=st.integers(min_value=500, max_value=200_000), where=st.sampled_from(
    ["body", "events", "event", "content"]
))  # fmt: skip
async def test_deeply_nested_json(
    running: Running, errors: ExceptionLog, depth: int, where: str
) -> None:
    """Nesting far beyond Python's recursion limit, at each level of a transaction."""
    deep = "[" * depth + "]" * depth
    wrapped = {
        "body": deep,
        "events": f'{{"events": {deep}}}',
        "event": f'{{"events": [{deep}]}}',
        "content": json.dumps({"events": [message("$deep:x", "deep")]}).replace(
            '{"msgtype": "m.text", "body": "deep"}', deep
        ),
    }[where]
    await running.put(wrapped.encode())
    no_errors(errors)
    await running.sentinel()


@fuzz_settings(40)
@given(txn=st.text(min_size=1, max_size=40).filter(lambda t: t not in (".", "..")))
async def test_odd_transaction_ids(running: Running, errors: ExceptionLog, txn: str) -> None:
    """Any transaction id the homeserver could put in the path, percent-encoded (lone
    surrogates as the bytes of their UTF-8-style encoding): 200 once, 200 again as a repeat
    without recording twice, or a clean 4xx."""
    quoted = quote(txn.encode("utf-8", "surrogatepass"), safe="")
    body = json.dumps({"events": [message(f"$txn{next(running.numbers)}:x", "t")]}).encode()
    first = await running.put(body, txn=quoted)
    if first == 200:
        before = len(running.recorded)
        assert await running.put(body, txn=quoted) == 200
        assert len(running.recorded) == before, "a repeated transaction was recorded again"
    no_errors(errors)


@fuzz_settings(150)
@given(data=st.data())
async def test_hostile_transactions(
    running: Running, errors: ExceptionLog, data: st.DataObject
) -> None:
    """Valid-looking transactions with hostile events are answered 200 (or a clean 4xx),
    every event is processed or ignored without an exception, and the room still works."""
    target = running.delivered_events[-1] if running.delivered_events else "$none:x"
    body = data.draw(transactions(target))
    await running.put(encode(body, data.draw(st.booleans())))
    await running.idle()
    no_errors(errors)
    await running.sentinel()
    no_errors(errors)


@fuzz_settings(40)
@given(
    key=st.sampled_from(["events", "ephemeral", "de.sorunome.msc2409.ephemeral"]),
    value=hostile_values,
)
async def test_hostile_lists(running: Running, errors: ExceptionLog, key: str, value: Any) -> None:
    await running.put(encode({"events": [], key: value}))
    no_errors(errors)


@fuzz_settings(30)
@given(
    raw=st.sampled_from([
        b'{"events": [], "events": [{"type": "m.room.message"}]}',
        b'{"events": [{"type": "m.room.message", "room_id": "!portal:localhost", '
        b'"room_id": "!other:x", "sender": "@staff:localhost", "event_id": "$dup:x", '
        b'"content": {"msgtype": "m.text", "body": "dup", "body": 5}}]}',
        b'{"events": [{"type": "m.room.message", "room_id": "!portal:localhost", '
        b'"sender": "@staff:localhost", "event_id": "$nan:x", "origin_server_ts": NaN, '
        b'"content": {"msgtype": "m.text", "body": "nan"}}]}',
        b'{"events": [{"type": "m.room.message", "room_id": "!portal:localhost", '
        b'"sender": "@staff:localhost", "event_id": "$inf:x", "origin_server_ts": -Infinity, '
        b'"content": {"msgtype": "m.image", "body": "i", "url": "mxc://a/b", '
        b'"info": {"size": Infinity}}}]}',
        b'{"events": [{"type": "m.room.message", "room_id": "!portal:localhost", '
        b'"sender": "@staff:localhost", "event_id": "$big:x", "origin_server_ts": 1e999, '
        b'"content": {"msgtype": "m.text", "body": "big"}}]}',
        b'{"events": [{"type": "m.room.message", "room_id": "!portal:localhost", '
        b'"sender": "@staff:localhost", "event_id": "$huge:x", '
        b'"origin_server_ts": 99999999999999999999999999999999999, '
        b'"content": {"msgtype": "m.text", "body": "huge ts"}}]}',
        b'{"events": [{"type": "m.room.message", "room_id": "!portal:localhost\\u0000", '
        b'"sender": "@staff:localhost", "event_id": "$nul:x", "content": {}}]}',
        b'{"events": [{"type": "m.typing", "room_id": "\\udc00", "content": '
        b'{"user_ids": ["\\ud800"]}}]}',
        # A command in no room: there is nowhere to answer (it was retried for ever).
        b'{"events": [{"type": "m.room.message", "room_id": "", '
        b'"sender": "@staff:localhost", "event_id": "$noroom:x", '
        b'"content": {"msgtype": "m.text", "body": "!bridge help"}}]}',
        b'\xef\xbb\xbf{"events": []}',
        b'{"events": []}\x00',
        b'{"events": [] } trailing',
    ]),
    txn_suffix=st.sampled_from(["", "%00", "%ED%A0%80", "%FF", "%2F", "%20"]),
)  # fmt: skip
async def test_json_edge_cases(
    running: Running, errors: ExceptionLog, raw: bytes, txn_suffix: str
) -> None:
    """Duplicated keys, NaN and Infinity, numbers out of every range, NUL and lone surrogates
    in ids, a BOM, trailing bytes; transaction ids with NUL, surrogates, bytes that are not
    UTF-8 and slashes."""
    await running.put(raw, txn=f"edge-{next(running.numbers)}{txn_suffix}")
    await running.idle()
    no_errors(errors)
    await running.sentinel()


QUERY_PATHS = [
    "/_matrix/app/v1/users/{}", "/_matrix/app/v1/rooms/{}", "/_matrix/app/v1/ping",
    "/_matrix/app/v1/thirdparty/protocol/{}", "/_matrix/app/v1/thirdparty/user/{}",
    "/transactions/{}", "/users/{}", "/rooms/{}", "/_matrix/app/unstable/{}",
    "/_matrix/mau/live", "/_matrix/app/v1/transactions/{}", "/connectors/{}/events",
    "/connectors/hooks/{}",
]  # fmt: skip


@fuzz_settings(80)
@given(
    template=st.sampled_from(QUERY_PATHS),
    segment=st.text(max_size=30),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    token=st.sampled_from([HS_TOKEN, None, "", "wrong", HS_TOKEN + "x"]),
    body=st.none() | st.binary(max_size=256),
)
async def test_other_endpoints(
    running: Running,
    errors: ExceptionLog,
    template: str,
    segment: str,
    method: str,
    token: str | None,
    body: bytes | None,
) -> None:
    """User and room queries, ping, third-party lookups, legacy paths, connector routes: any
    method, path segment, token and body gets a clean answer, and nothing is queued."""
    path = template.format(quote(segment.encode("utf-8", "surrogatepass"), safe=""))
    status, answer = await running.request(method, path, token=token, data=body)
    assert status < 500, (status, answer[:300])
    if status == 200 and "/transactions/" in path:
        await running.idle()
    elif path.startswith("/_matrix/app/v1/") and token != HS_TOKEN:
        assert status in (403, 404, 405), (status, answer[:300])
    await running.idle()
    assert await QueueItem.count() == 0
    no_errors(errors)


async def test_a_huge_transaction_of_hostile_events_is_handled(
    running: Running, errors: ExceptionLog
) -> None:
    """Many events at once, some with huge strings and deep content, in the portal room."""
    events = [
        {**message(f"$many{n}:x", "x" * (50_000 if n % 7 == 0 else 10)),
         "content": {"msgtype": "m.text", "body": "m" * n, "extra": nested(n % 200, "leaf")}}
        for n in range(300)
    ]  # fmt: skip
    assert await running.put(json.dumps({"events": events}).encode()) == 200
    await running.idle()
    no_errors(errors)
    await running.sentinel()


async def raw_request(port: int, head: bytes, body: bytes = b"") -> int:
    """Send bytes no HTTP client library would send (header values that are not UTF-8) and
    return the status of the answer."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
        writer.write(body)
        async with asyncio.timeout(REQUEST_TIMEOUT):
            status_line = await reader.readline()
            await reader.read()
    finally:
        writer.close()
    return int(status_line.split()[1])


@fuzz_settings(40)
@given(
    # Any byte a header value may carry (control characters are refused by aiohttp's parser).
    token=st.binary(max_size=60).map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F)),
    scheme=st.sampled_from([b"Bearer ", b"bearer ", b"", b"Bearer  "]),
    path=st.sampled_from(
        [b"/_matrix/app/v1/transactions/raw-%d", b"/_matrix/app/v1/ping",
         b"/_matrix/app/v1/users/@a:b", b"/_matrix/app/v1/transactions/raw-%d?access_token=%%ff"]
    ),
)  # fmt: skip
async def test_authorization_header_bytes(
    running: Running, errors: ExceptionLog, token: bytes, scheme: bytes, path: bytes
) -> None:
    """Header values that are not UTF-8 (aiohttp hands them over with surrogate escapes) are
    a wrong token, not a crash."""
    if b"%d" in path:
        path = path.replace(b"%d", str(next(running.numbers)).encode(), 1)
    method = b"PUT" if b"transactions" in path else b"POST" if b"ping" in path else b"GET"
    head = method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + scheme + token
    status = await raw_request(running.bridge.config.as_port, head + b"\r\n", b'{"events": []}')
    assert status == 403 or (token == HS_TOKEN.encode() and status in (200, 404))
    assert await running.txn_count() == 0 or status != 403
    no_errors(errors)


async def test_unstorable_strings_are_replaced_not_refused(running: Running) -> None:
    """Lone surrogates (only JSON escapes can make them) and NUL (PostgreSQL text cannot hold
    it) become U+FFFD, in keys and values at any depth and in the transaction id; the rest of
    the event is kept as it came."""
    evt = message("$odd\\u0000:x", "a\\ud800b\\u0000c")
    evt["content"]["nested"] = [{"k\\udfff": ["\\ud83d"]}]
    raw = json.dumps({"events": [evt]}).replace("\\\\u", "\\u").encode()
    assert await running.put(raw, txn="odd%00id") == 200
    (items,) = running.recorded
    (stored,) = [i.payload for i in items]
    assert stored["event_id"] == "$odd\ufffd:x"
    assert stored["content"]["body"] == "a\ufffdb\ufffdc"
    assert stored["content"]["nested"] == [{"k\ufffd": ["\ufffd"]}]
    assert await running.bridge.db.fetchval("SELECT txn_id FROM as_txn") == "odd\ufffdid"
    await running.sentinel()
