"""The appservice listener on a real TCP port with a real database: authentication, durable
transactions, limits, ephemeral events and connector routes."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bridge.config import ListenerConfig, ListenerLimits
from bridge.core.appservice import AppServiceListener
from bridge.core.crypto.marks import DEVICE_LISTS, TO_DEVICE
from bridge.db import ASTransaction, QueueItem
from tests.db.support import Databases
from tests.infra.ports import LOOPBACK, free_port

HS_TOKEN = "hs-token-Zm9vYmFyYmF6cXV4"
MIB = 1024 * 1024
TXN_PATH = "/_matrix/app/v1/transactions/{}"


class Listener:
    """An ``AppServiceListener`` on a free loopback port and a client session to call it."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        max_body_size: int = 16 * MIB,
        *,
        limits: ListenerLimits | None = None,
        webhooks: ListenerLimits | None = None,
    ) -> None:
        self.session = session
        self.max_body_size = max_body_size
        self.port = free_port()
        self.limits = limits
        self.webhooks = (
            None if webhooks is None else ListenerConfig(LOOPBACK, free_port(), webhooks)
        )
        self.recorded: list[list[QueueItem]] = []
        self.server: AppServiceListener | None = None

    async def start(self) -> AppServiceListener:
        self.server = AppServiceListener(
            HS_TOKEN,
            self.max_body_size,
            self.recorded.append,
            limits=self.limits,
            webhooks=self.webhooks,
        )
        await self.server.start(LOOPBACK, self.port)
        return self.server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    async def request(
        self, method: str, path: str, *, token: str | None = HS_TOKEN, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, self.url(path), headers=headers, **kwargs) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, text

    async def put_txn(
        self, txn_id: str, body: Any = None, *, data: bytes | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            # A file-like body: aiohttp warns about large raw byte strings.
            kwargs["data"] = io.BytesIO(data)
            kwargs.setdefault("headers", {"Content-Type": "application/json"})
        return await self.request("PUT", TXN_PATH.format(txn_id), **kwargs)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def listener(database: object, session: aiohttp.ClientSession) -> AsyncIterator[Listener]:
    instance = Listener(session)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


def message(n: int, room: str = "!room:example.com", body: str = "hi") -> dict[str, Any]:
    return {
        "type": "m.room.message", "room_id": room, "sender": "@staff:example.com",
        "event_id": f"$event{n}", "origin_server_ts": 1000 + n,
        "content": {"msgtype": "m.text", "body": body},
    }  # fmt: skip


async def stored() -> list[tuple[str, str, dict[str, Any]]]:
    return [(i.queue_key, i.kind, i.payload) for i in await QueueItem.pending()]


# ---------------------------------------------------------------------------- authentication


BAD_TOKENS: dict[str, str | None] = {
    "missing": None,
    "empty": "",
    "wrong": "wrong",
    "prefix": HS_TOKEN[:-1],
    "first-char": HS_TOKEN[:1],
    "longer": HS_TOKEN + "x",
    "upper": HS_TOKEN.upper(),
    "space": f" {HS_TOKEN}",
}


@pytest.mark.parametrize("token", list(BAD_TOKENS.values()), ids=list(BAD_TOKENS))
async def test_bad_token_is_refused_and_nothing_stored(
    listener: Listener, token: str | None
) -> None:
    status, body = await listener.put_txn("t1", {"events": [message(1)]}, token=token)
    assert status == 403
    assert body["errcode"] == "M_FORBIDDEN"
    assert await QueueItem.count() == 0
    assert not await ASTransaction.seen("t1")
    assert listener.recorded == []


async def test_other_authorization_schemes_are_refused(listener: Listener) -> None:
    for header in (f"Basic {HS_TOKEN}", HS_TOKEN, f"Token {HS_TOKEN}"):
        status, body = await listener.put_txn(
            "t1", {"events": []}, token=None, headers={"Authorization": header}
        )
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), header


async def test_right_token_as_bearer_is_accepted(listener: Listener) -> None:
    status, body = await listener.put_txn("t1", {"events": [message(1)]})
    assert (status, body) == (200, {})
    assert await stored() == [("mx:!room:example.com", "matrix", message(1))]


async def test_right_token_as_query_parameter_is_accepted(listener: Listener) -> None:
    status, _ = await listener.put_txn(
        "t1", {"events": [message(1)]}, token=None, params={"access_token": HS_TOKEN}
    )
    assert status == 200
    status, _ = await listener.put_txn(
        "t2", {"events": [message(2)]}, token=None, params={"access_token": "nope"}
    )
    assert status == 403
    assert [p["event_id"] for _, _, p in await stored()] == ["$event1"]


async def test_ping_and_queries_need_the_token(listener: Listener) -> None:
    assert (await listener.request("POST", "/_matrix/app/v1/ping", json={}))[0] == 200
    assert (await listener.request("POST", "/_matrix/app/v1/ping", token="x", json={}))[0] == 403
    users = "/_matrix/app/v1/users/@bridge_a_b:example.com"
    assert (await listener.request("GET", users, token=None))[0] == 403
    status, body = await listener.request("GET", users)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    assert (await listener.request("GET", "/_matrix/app/v1/rooms/%23x:example.com"))[0] == 404
    assert (await listener.request("GET", "/_matrix/mau/live", token=None))[0] == 200


# ---------------------------------------------------------------------------- durability


async def test_events_are_committed_before_the_200(
    listener: Listener, databases: Databases
) -> None:
    events = [message(1), message(2, room="!other:example.com"), message(3)]
    status, _ = await listener.put_txn("t1", {"events": events})
    assert status == 200
    # Straight after the answer, and from a fresh connection after closing the database:
    assert [p for _, _, p in await stored()] == events
    await databases.close_all()
    await databases.open()
    assert await stored() == [
        ("mx:!room:example.com", "matrix", events[0]),
        ("mx:!other:example.com", "matrix", events[1]),
        ("mx:!room:example.com", "matrix", events[2]),
    ]
    assert await ASTransaction.seen("t1")


async def test_on_recorded_gets_the_new_items(listener: Listener) -> None:
    await listener.put_txn("t1", {"events": [message(1), message(2)]})
    await listener.put_txn("t2", {"events": [message(3)]})
    assert len(listener.recorded) == 2
    first, second = listener.recorded
    assert [i.payload for i in first] == [message(1), message(2)]
    assert [i.payload for i in second] == [message(3)]
    in_db = await QueueItem.pending()
    assert [(i.id, i.queue_key, i.kind) for i in first + second] == [
        (i.id, i.queue_key, i.kind) for i in in_db
    ]


async def test_repeated_transaction_is_a_no_op(listener: Listener) -> None:
    body = {"events": [message(1), message(2)]}
    assert (await listener.put_txn("t1", body))[0] == 200
    before = await QueueItem.pending()
    status, answer = await listener.put_txn("t1", body)
    assert (status, answer) == (200, {})
    assert await QueueItem.pending() == before
    assert len(listener.recorded) == 1


async def test_repeated_transaction_after_a_restart_is_a_no_op(
    listener: Listener, databases: Databases
) -> None:
    body = {"events": [message(1)], "ephemeral": [{"type": "m.typing", "room_id": "!r:x"}]}
    assert (await listener.put_txn("t1", body))[0] == 200
    before = await QueueItem.pending()
    assert len(before) == 2

    await listener.stop()
    await databases.close_all()
    await databases.open()
    await listener.start()

    assert (await listener.put_txn("t1", body))[0] == 200
    assert await QueueItem.pending() == before
    assert len(listener.recorded) == 1
    assert (await listener.put_txn("t2", {"events": [message(2)]}))[0] == 200
    assert await QueueItem.count() == 3


async def test_database_failure_is_500_and_the_retry_succeeds(
    listener: Listener, databases: Databases
) -> None:
    await databases.close_all()
    body = {"events": [message(1), message(2)]}
    status, answer = await listener.put_txn("t1", body)
    assert status == 500
    assert answer["errcode"] == "M_UNKNOWN"
    assert listener.recorded == []

    await databases.open()  # the database is back; the homeserver retries
    assert await QueueItem.count() == 0
    status, _ = await listener.put_txn("t1", body)
    assert status == 200
    assert [p for _, _, p in await stored()] == body["events"]
    assert [[i.payload for i in items] for items in listener.recorded] == [body["events"]]


# ---------------------------------------------------------------------------- bodies


async def test_an_8_mib_transaction_is_accepted(listener: Listener) -> None:
    events = [message(n, body=f"{n:03d}" + "x" * (80 * 1024)) for n in range(100)]
    raw = json.dumps({"events": events}).encode()
    assert len(raw) > 7.8 * MIB
    status, _ = await listener.put_txn("big", data=raw)
    assert status == 200
    items = await QueueItem.pending()
    assert len(items) == 100
    assert [i.payload for i in items] == events


async def test_a_body_over_the_limit_is_413_and_stores_nothing(
    database: object, session: aiohttp.ClientSession
) -> None:
    small = Listener(session, max_body_size=8 * MIB)
    await small.start()
    try:
        raw = json.dumps({"events": [message(1, body="x" * (9 * MIB))]}).encode()
        status, body = await small.put_txn("huge", data=raw)
        assert status == 413
        assert body["errcode"] == "M_TOO_LARGE"
        assert await QueueItem.count() == 0
        status, _ = await small.put_txn("ok", {"events": [message(2, body="y" * (7 * MIB))]})
        assert status == 200
    finally:
        await small.stop()


@pytest.mark.parametrize(
    ("data", "errcode"),
    [
        (b"not json", "M_NOT_JSON"),
        (b'{"events": [', "M_NOT_JSON"),
        (b"\xff\xfe{}", "M_NOT_JSON"),
        (b"", "M_NOT_JSON"),
        (b"[]", "M_BAD_JSON"),
        (b'"events"', "M_BAD_JSON"),
        (b'{"events": {"0": {}}}', "M_BAD_JSON"),
        (b'{"events": "x"}', "M_BAD_JSON"),
        (b'{"events": [], "ephemeral": {}}', "M_BAD_JSON"),
        (b'{"events": [], "de.sorunome.msc2409.ephemeral": 1}', "M_BAD_JSON"),
    ],
    ids=[
        "text", "truncated", "not-utf8", "empty", "array", "string", "events-object",
        "events-string", "ephemeral-object", "unstable-ephemeral-number",
    ],
)  # fmt: skip
async def test_malformed_body_is_400(listener: Listener, data: bytes, errcode: str) -> None:
    status, body = await listener.put_txn("t1", data=data)
    assert status == 400
    assert body["errcode"] == errcode
    assert await QueueItem.count() == 0
    assert not await ASTransaction.seen("t1")
    # the id is not used up: the same id with a good body is recorded
    assert (await listener.put_txn("t1", {"events": [message(1)]}))[0] == 200
    assert await QueueItem.count() == 1


async def test_events_that_are_not_objects_are_skipped(listener: Listener) -> None:
    events: list[Any] = [1, "x", None, [message(9)], message(1), {"type": "m.presence"}]
    assert (await listener.put_txn("t1", {"events": events}))[0] == 200
    assert await stored() == [
        ("mx:!room:example.com", "matrix", message(1)),
        ("mx:", "matrix", {"type": "m.presence"}),
    ]


# ---------------------------------------------------------------------------- ephemeral


def typing(room: str) -> dict[str, Any]:
    return {"type": "m.typing", "room_id": room, "content": {"user_ids": ["@staff:example.com"]}}


def receipt(room: str) -> dict[str, Any]:
    return {
        "type": "m.receipt", "room_id": room,
        "content": {"$event1": {"m.read": {"@staff:example.com": {"ts": 1}}}},
    }  # fmt: skip


@pytest.mark.parametrize("key", ["ephemeral", "de.sorunome.msc2409.ephemeral"])
async def test_ephemeral_events_are_queued(listener: Listener, key: str) -> None:
    body = {"events": [message(1)], key: [typing("!a:example.com"), receipt("!b:example.com")]}
    assert (await listener.put_txn("t1", body))[0] == 200
    assert await stored() == [
        ("mx:!room:example.com", "matrix", message(1)),
        ("mx:!a:example.com", "matrix", typing("!a:example.com")),
        ("mx:!b:example.com", "matrix", receipt("!b:example.com")),
    ]
    assert [i.payload for i in listener.recorded[0]] == [e for _, _, e in await stored()]


async def test_ephemeral_events_sent_under_both_keys_are_queued_once(listener: Listener) -> None:
    # The registration -g writes sets both receive_ephemeral and
    # de.sorunome.msc2409.push_ephemeral, so Synapse puts the same list under both keys.
    ephemeral = [typing("!a:example.com"), receipt("!a:example.com")]
    body = {"events": [], "ephemeral": ephemeral, "de.sorunome.msc2409.ephemeral": ephemeral}
    assert (await listener.put_txn("t1", body))[0] == 200
    assert [p for _, _, p in await stored()] == ephemeral


# ------------------------------------------------------------------ crypto (MSC2409, MSC3202)


def to_device(n: int) -> dict[str, Any]:
    return {
        "type": "m.room.encrypted", "sender": "@staff:example.com",
        "to_user_id": "@bot:example.com", "to_device_id": "BOTDEVICE",
        "content": {"algorithm": "m.olm.v1.curve25519-aes-sha2", "ciphertext": {"k": n}},
    }  # fmt: skip


CRYPTO_BODY: dict[str, Any] = {
    "events": [],
    "de.sorunome.msc2409.to_device": [to_device(1), "not an event", to_device(2)],
    "org.matrix.msc3202.device_lists": {"changed": ["@staff:example.com", 7], "left": []},
    "org.matrix.msc3202.device_one_time_keys_count": {
        "@bot:example.com": {"BOTDEVICE": {"signed_curve25519": 3}}
    },
}


async def test_crypto_parts_are_ignored_without_encryption(listener: Listener) -> None:
    assert (await listener.put_txn("t1", CRYPTO_BODY))[0] == 200
    assert await stored() == []


async def test_to_device_and_device_lists_are_queued_under_the_crypto_key(
    listener: Listener,
) -> None:
    counts: list[dict[str, Any]] = []
    assert listener.server is not None
    listener.server.on_otk_counts = counts.append
    assert (await listener.put_txn("t1", CRYPTO_BODY))[0] == 200
    assert await stored() == [
        ("crypto:", "matrix", {**to_device(1), TO_DEVICE: True}),
        ("crypto:", "matrix", {**to_device(2), TO_DEVICE: True}),
        ("crypto:", "matrix", {"type": DEVICE_LISTS, "changed": ["@staff:example.com"],
                               "left": []}),
    ]  # fmt: skip
    assert counts == [CRYPTO_BODY["org.matrix.msc3202.device_one_time_keys_count"]]
    # The same transaction again (the homeserver retrying): nothing twice.
    assert (await listener.put_txn("t1", CRYPTO_BODY))[0] == 200
    assert len(await stored()) == 3


@pytest.mark.parametrize(
    "body",
    [
        {"de.sorunome.msc2409.to_device": {"not": "a list"}},
        {"de.sorunome.msc2409.to_device": [{"no": "type"}]},
        {"org.matrix.msc3202.device_lists": ["not", "a", "mapping"]},
        {"org.matrix.msc3202.device_lists": {"changed": "@a:b", "left": None}},
        {"org.matrix.msc3202.device_one_time_keys_count": "nonsense"},
    ],
)
async def test_malformed_crypto_parts_store_nothing(listener: Listener, body: Any) -> None:
    counts: list[dict[str, Any]] = []
    assert listener.server is not None
    listener.server.on_otk_counts = counts.append
    assert (await listener.put_txn("t1", {"events": [], **body}))[0] == 200
    assert await stored() == []
    assert counts == []


# ---------------------------------------------------------------------------- connector routes


async def test_connector_routes_are_dispatched(listener: Listener) -> None:
    server = listener.server
    assert server is not None
    calls: list[tuple[str, str, bytes]] = []

    def handler(name: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            calls.append((name, request.method, await request.read()))
            return web.json_response({"handled_by": name}, status=202)

        return handle

    assert server.add_route("acc", "post", "inbound", handler("inbound")) == (
        "/connectors/acc/inbound"
    )
    assert server.add_route("acc", "GET", "/files/a/b", handler("file")) == (
        "/connectors/acc/files/a/b"
    )
    server.add_route("other", "POST", "inbound", handler("other"))

    status, body = await listener.request("POST", "/connectors/acc/inbound", token=None, data=b"x")
    assert (status, body) == (202, {"handled_by": "inbound"})
    status, body = await listener.request("GET", "/connectors/acc/files/a/b", token=None)
    assert (status, body) == (202, {"handled_by": "file"})
    status, body = await listener.request("POST", "/connectors/other/inbound", token=None)
    assert (status, body) == (202, {"handled_by": "other"})
    assert calls == [("inbound", "POST", b"x"), ("file", "GET", b""), ("other", "POST", b"")]

    for method, path in [
        ("POST", "/connectors/acc/unknown"),
        ("POST", "/connectors/nobody/inbound"),
        ("POST", "/connectors/acc/inbound/extra"),
        ("GET", "/connectors/acc/files/a"),
        ("POST", "/connectors/acc"),
    ]:
        assert (await listener.request(method, path, token=None))[0] == 404, path
    assert (await listener.request("GET", "/connectors/acc/inbound", token=None))[0] == 405
    assert len(calls) == 3


# ---------------------------------------------------------------------------- slow clients

WAIT = 20.0
"""Upper bound for waiting on the server in these tests, only so a failure cannot hang."""
QUICK = ListenerLimits(header_timeout=0.3, body_timeout=0.3, max_connections=50)


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(LOOPBACK, port)


async def until(condition: Any) -> None:
    async def poll() -> None:
        # The server's connection table has no event to wait on; poll it.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), WAIT)


async def drip(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Send ``data`` a byte at a time, as a slow client does, until the server hangs up."""
    for byte in data:
        writer.write(bytes([byte]))
        try:
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(0.05)


async def idle_keepalive(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that made one quick request and stays open (keep-alive)."""
    reader, writer = await connect(port)
    writer.write(b"GET /_matrix/mau/live HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    assert head.startswith(b"HTTP/1.1 200"), head
    await asyncio.wait_for(reader.readexactly(2), WAIT)  # the body: {}
    return reader, writer


@pytest.fixture
async def quick(database: object, session: aiohttp.ClientSession) -> AsyncIterator[Listener]:
    instance = Listener(session, limits=QUICK)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


async def test_headers_sent_a_byte_at_a_time_are_cut_off(quick: Listener) -> None:
    assert quick.server is not None
    reader, writer = await connect(quick.port)
    head = f"PUT {TXN_PATH.format('slow')} HTTP/1.1\r\nHost: x\r\n" + "X-Pad: a\r\n" * 200
    dripping = asyncio.create_task(drip(writer, head.encode()))
    try:
        assert await asyncio.wait_for(reader.read(), WAIT) == b"", "closed without an answer"
    finally:
        dripping.cancel()
        writer.close()
    assert quick.server.guard.timed_out == 1
    assert await stored() == []


async def test_a_body_sent_too_slowly_is_cut_off(quick: Listener) -> None:
    assert quick.server is not None
    reader, writer = await connect(quick.port)
    body = json.dumps({"events": [message(1)]}).encode()
    writer.write(
        f"PUT {TXN_PATH.format('slow-body')} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {HS_TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body[:10]
    )
    dripping = asyncio.create_task(drip(writer, body[10:]))
    try:
        await asyncio.wait_for(reader.read(), WAIT)
    finally:
        dripping.cancel()
        writer.close()
    assert quick.server.guard.timed_out == 1
    assert await stored() == []


async def test_a_quick_request_on_a_slow_listener_config_is_served(quick: Listener) -> None:
    """The timers do not touch well-behaved clients, also on a reused keep-alive connection."""
    for n in range(3):
        assert (await quick.put_txn(f"t{n}", {"events": [message(n)]}))[0] == 200
    assert len(await stored()) == 3
    assert quick.server is not None and quick.server.guard.timed_out == 0


async def test_the_connection_cap_holds(database: object, session: aiohttp.ClientSession) -> None:
    listener = Listener(session, limits=ListenerLimits(header_timeout=30, max_connections=3))
    server = await listener.start()
    writers = []
    try:
        for _ in range(3):
            writers.append((await idle_keepalive(listener.port))[1])
        reader, writer = await connect(listener.port)
        writers.append(writer)
        answer = await asyncio.wait_for(reader.read(), WAIT)
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"Retry-After: 5" in answer
        assert server.guard.refused == 1 and len(server.guard.connections) == 3

        writers.pop(0).close()  # one leaves: there is room again
        await until(lambda: len(server.guard.connections) == 2)
        writers.append((await idle_keepalive(listener.port))[1])
    finally:
        for w in writers:
            w.close()
        await listener.stop()


async def test_transactions_get_through_while_slow_clients_hog_the_webhook_listener(
    database: object, session: aiohttp.ClientSession
) -> None:
    hooks = ListenerLimits(header_timeout=30, body_timeout=30, max_connections=5)
    listener = Listener(session, webhooks=hooks)
    server = await listener.start()
    assert listener.webhooks is not None
    hook_port = listener.webhooks.port

    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"body": (await request.read()).decode()})

    server.add_route("acc", "POST", "events", handle)
    writers: list[asyncio.StreamWriter] = []
    drips: list[asyncio.Task[None]] = []
    try:
        # Five clients trickle headers into the webhook listener and fill it up.
        for _ in range(5):
            _, writer = await connect(hook_port)
            writers.append(writer)
            head = b"POST /connectors/acc/events HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: a\r\n" * 500
            drips.append(asyncio.create_task(drip(writer, head)))
        await until(
            lambda: server.webhook_guard is not None and len(server.webhook_guard.connections) == 5
        )
        reader, writer = await connect(hook_port)
        writers.append(writer)
        assert (await asyncio.wait_for(reader.read(), WAIT)).startswith(b"HTTP/1.1 503")

        # The homeserver's listener is untouched by them.
        status, _ = await listener.put_txn("while-hogged", {"events": [message(1)]})
        assert status == 200
        assert [payload["event_id"] for _, _, payload in await stored()] == ["$event1"]
        assert len(server.guard.connections) <= 1

        # Connector routes are served on their own listener only.
        status, _ = await listener.request("POST", "/connectors/acc/events", token=None, data=b"x")
        assert status == 404
        for task in drips:
            task.cancel()
        for w in writers:
            w.close()
        await until(
            lambda: server.webhook_guard is not None and not server.webhook_guard.connections
        )
        url = f"http://{LOOPBACK}:{hook_port}/connectors/acc/events"
        async with session.post(url, data=b"hello") as resp:
            assert (resp.status, await resp.json()) == (200, {"body": "hello"})
    finally:
        for task in drips:
            task.cancel()
        for w in writers:
            w.close()
        await listener.stop()
