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
import json
from typing import Any
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from bridge.db import QueueItem
from tests.db.support import Databases, databases  # noqa: F401 - the fixture, on both backends
from tests.infra.ports import LOOPBACK

from . import appservice_fuzz_support as support
from .appservice_fuzz_support import (
    HS_TOKEN,
    Running,
    encode,
    message,
    no_errors,
    transactions,
)
from .fuzz_support import (
    REQUEST_TIMEOUT,
    ExceptionLog,
    fuzz_settings,
    hostile_values,
    json_values,
    nested,
)

fast_retries = support.fast_retries
running = support.running
errors = support.errors


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
