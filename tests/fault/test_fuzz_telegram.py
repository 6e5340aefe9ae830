"""Property tests of the Telegram connector's inputs: its webhook endpoint (account in webhook
mode, secret header ``X-Telegram-Bot-Api-Secret-Token``) and updates fetched by long polling.

Whatever arrives - arbitrary bytes, arbitrary JSON, updates of every kind with hostile values
in any field (wrong types, huge ids, unknown update kinds, entities beyond the text, deep
reply chains) - the webhook answers 200, 400, 401 or 413 within a timeout, never a 5xx; nothing
is recorded unless the answer was 200; no exception is logged; and a plain message sent next is
still bridged. Polling gets the same updates from the Bot API simulator and must keep going."""

from __future__ import annotations

import copy
import io
import itertools
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from bridge.connector import ConfigError
from bridge.connectors.telegram import TelegramConnector
from bridge.connectors.telegram.connector import SECRET_HEADER
from bridge.events import RemoteMessage
from tests.connectors.telegram import updates as tg
from tests.connectors.telegram.harness import WEBHOOK_SECRET, TelegramHarness
from tests.connectors.telegram.simulator import _Pending
from tests.contract import fixtures
from tests.contract.fake_host import FakeHost

from .fuzz_support import (
    REQUEST_TIMEOUT,
    ExceptionLog,
    awkward_text,
    fuzz_settings,
    hostile_values,
    json_values,
    mutate,
    odd_integer_ids,
    odd_string_ids,
    paths,
)

ALICE = 5_200_001
ALLOWED = {200, 400, 401, 413}
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""What no database text column takes (the core keys rows by the remote ids)."""
_ids = itertools.count(1_000)


host = fixtures.host  # the shared one, on this harness


@pytest.fixture
async def harness() -> AsyncIterator[TelegramHarness]:
    async for instance in fixtures.running(TelegramHarness()):
        instance.sim.add_user(ALICE, "Alice")
        yield instance


@pytest.fixture
def errors() -> Iterator[ExceptionLog]:
    with ExceptionLog() as log:
        yield log


@pytest.fixture
async def hook(
    harness: TelegramHarness, host: FakeHost, errors: ExceptionLog
) -> AsyncIterator[TelegramConnector]:
    """A connector in webhook mode, with Business chats on (so every update kind is read)."""
    instance = harness.make_connector(
        host,
        mode="webhook",
        webhook_url=host.base_url,
        webhook_secret=WEBHOOK_SECRET,
        business=True,
    )
    await instance.start()
    try:
        await harness.sim.wait_for(lambda: harness.sim.webhook_url)
        yield instance
    finally:
        await instance.stop()


@pytest.fixture
async def poller(
    harness: TelegramHarness, host: FakeHost, errors: ExceptionLog
) -> AsyncIterator[TelegramConnector]:
    instance = harness.make_connector(host, business=True)
    await instance.start()
    try:
        await harness.sim.wait_for_consumer()
        yield instance
    finally:
        await instance.stop()


# --------------------------------------------------------------------------- updates

ALICE_USER = tg.user(ALICE, "Alice")
CHAT = tg.private_chat(ALICE_USER)
GROUP = tg.group_chat(-1001234567890, "Group")


def reply_chain(depth: int) -> dict[str, Any]:
    """A message replying to a message replying to ... ``depth`` levels down."""
    msg: dict[str, Any] = tg.text_message(CHAT, ALICE_USER, "bottom", message_id=1)
    for level in range(depth):
        msg = {**tg.text_message(CHAT, ALICE_USER, f"level {level}"), "reply_to_message": msg}
    return msg


def pressed(message: dict[str, Any]) -> dict[str, Any]:
    """A ``callback_query``: Alice pressed the button ``yes`` under ``message``."""
    keyboard = [[{"text": "Confirm ✅", "callback_data": "yes"}]]
    message = {**message, "reply_markup": {"inline_keyboard": keyboard}}
    return {
        "id": "4242", "from": ALICE_USER, "chat_instance": "x", "data": "yes",
        "message": message,
    }  # fmt: skip


def templates() -> list[dict[str, Any]]:
    """One valid update of every kind the connector reads, and some it does not."""
    file = tg.file_ref()
    text = "Hi *there* 😀 https://example.com"
    entities = [tg.entity("bold", 3, 7), tg.entity("url", 14, 19), tg.entity("italic", 0, 2)]
    message = tg.text_message(CHAT, ALICE_USER, text, entities=entities)
    conn = "BCONN1"
    return [
        tg.message_update(message),
        tg.message_update(tg.text_message(GROUP, ALICE_USER, "in a group")),
        tg.message_update(tg.photo_message(CHAT, ALICE_USER, file, caption="a photo")),
        tg.message_update(tg.document_message(CHAT, ALICE_USER, file, file_name="a.pdf")),
        tg.message_update(tg.sticker_message(CHAT, ALICE_USER, file)),
        tg.message_update(tg.voice_message(CHAT, ALICE_USER, file)),
        tg.message_update(tg.location_message(CHAT, ALICE_USER, 52.5, 13.4)),
        tg.message_update(tg.contact_message(CHAT, ALICE_USER, "+49 170 1", "Bob")),
        tg.message_update(tg.poll_message(CHAT, ALICE_USER, "Which?", ["a", "b"])),
        tg.message_update(tg.start_message(CHAT, ALICE_USER, "payload_1")),
        tg.message_update(reply_chain(3)),
        tg.edited_message_update(tg.edited(message, text="edited")),
        {"message_reaction": tg.message_reaction(CHAT, 1, ALICE_USER, old=["👍"], new=["❤"])},
        tg.business_message_update(
            tg.text_message(CHAT, ALICE_USER, "biz", business_connection_id=conn)
        ),
        tg.edited_business_message_update(
            tg.text_message(CHAT, ALICE_USER, "biz edit", business_connection_id=conn)
        ),
        {"deleted_business_messages": tg.deleted_business_messages(conn, CHAT, [1, 2])},
        {"business_connection": tg.business_connection(conn, ALICE_USER)},
        {"channel_post": tg.text_message(GROUP, None, "post")},
        {"callback_query": {"id": "1", "from": ALICE_USER, "chat_instance": "x"}},
        {"callback_query": pressed(tg.text_message(CHAT, tg.user(42, "Bot"), "Subscribe?"))},
        {"some_future_update_kind": {"field": 1}},
    ]


TEMPLATES = templates()


@st.composite
def hostile_updates(draw: st.DrawFn) -> dict[str, Any]:
    # Fresh message ids: with the template's own, every example after the first would be
    # dropped as a duplicate before its ids and names are checked.
    return mutate(draw, fresh(draw(st.sampled_from(TEMPLATES))))


STRING_IDS = frozenset(
    "business_connection_id file_id file_unique_id media_group_id username chat_instance "
    "inline_message_id custom_emoji_id title first_name last_name data".split()
)
INTEGER_IDS = frozenset("update_id message_id id user_chat_id message_ids".split())


def id_places(update: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The places of ``update`` that hold an id, a username or a chat title (string or
    integer), list items of ``message_ids`` included."""
    places = []
    for path in paths(update):
        key = path[-1]
        if isinstance(key, int):
            key = path[-2]
        if (key in STRING_IDS or key in INTEGER_IDS) and not isinstance(
            _value_at(update, path), dict | list
        ):
            places.append(path)
    return places


def _value_at(update: dict[str, Any], path: tuple[Any, ...]) -> Any:
    value: Any = update
    for key in path:
        value = value[key]
    return value


def _container(update: dict[str, Any], path: tuple[Any, ...]) -> Any:
    return _value_at(update, path[:-1])


def fresh(template: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``template`` with new update, message and edit ids, so that what it carries
    is recorded anew, not dropped as a duplicate of an earlier example."""
    update = {**copy.deepcopy(template), "update_id": next(_ids)}
    for path in paths(update):
        key = path[-2] if isinstance(path[-1], int) else path[-1]
        if key in ("message_id", "message_ids", "edit_date"):
            value = _value_at(update, path)
            if isinstance(value, int):
                _container(update, path)[path[-1]] = next(_ids)
    return update


@st.composite
def odd_ids(draw: st.DrawFn) -> dict[str, Any]:
    """An update of any kind whose ids (one to four of them) are long, non-ASCII, huge or
    negative, of the right JSON type (a string id stays a string, a number a number)."""
    update = fresh(draw(st.sampled_from(TEMPLATES)))
    places = id_places(update)
    chosen = draw(st.lists(st.sampled_from(places), min_size=1, max_size=4, unique=True))
    for path in chosen:
        parent: Any = update
        for key in path[:-1]:
            parent = parent[key]
        old = parent[path[-1]]
        if isinstance(old, str):
            parent[path[-1]] = draw(odd_string_ids(old))
        elif isinstance(old, int) and not isinstance(old, bool):
            parent[path[-1]] = draw(odd_integer_ids)
        event(f"odd {'.'.join(str(k) for k in path if not isinstance(k, int))}")
    return update


ENTITY_TYPES = (
    "bold italic code pre text_link url mention spoiler blockquote custom_emoji text_mention "
    "underline strikethrough"
).split()


@st.composite
def odd_entities(draw: st.DrawFn) -> dict[str, Any]:
    """A text message whose entities point anywhere: past the end, negative, overlapping,
    into the middle of a surrogate pair, with odd extra fields."""
    text = draw(awkward_text.filter(lambda t: "\x00" not in t))
    count = draw(st.integers(min_value=0, max_value=8))
    entities = []
    for _ in range(count):
        entity: dict[str, Any] = {
            "type": draw(st.sampled_from(ENTITY_TYPES)),
            "offset": draw(st.integers(min_value=-5, max_value=80) | st.just(2**40)),
            "length": draw(st.integers(min_value=-5, max_value=80) | st.just(2**40)),
        }
        if entity["type"] == "text_link":
            entity["url"] = draw(st.sampled_from(["https://a.example", "javascript:x", ""]))
        if entity["type"] == "pre":
            entity["language"] = draw(awkward_text)
        if entity["type"] == "custom_emoji":
            entity["custom_emoji_id"] = draw(awkward_text)
        if entity["type"] == "text_mention":
            entity["user"] = ALICE_USER
        entities.append(entity)
    caption = draw(st.booleans())
    if caption:
        msg = tg.photo_message(CHAT, ALICE_USER, tg.file_ref(), caption=text or None)
        msg["caption_entities"] = entities
    else:
        msg = tg.message(CHAT, ALICE_USER, text=text, entities=entities)
    return {"update_id": next(_ids), **tg.message_update(msg)}


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


# --------------------------------------------------------------------------- webhook


async def post(
    host: FakeHost, body: bytes, *, secret: str | None = WEBHOOK_SECRET
) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with host.http.post(
        host.route_url("/webhook"), data=io.BytesIO(body), headers=headers, timeout=timeout
    ) as resp:
        return resp.status, await resp.text()


async def check(
    host: FakeHost, errors: ExceptionLog, body: bytes, *, secret: str | None = WEBHOOK_SECRET
) -> int:
    before = len(host.events)
    status, answer = await post(host, body, secret=secret)
    if currently_in_test_context():
        event(f"status {status}")
    assert status in ALLOWED, (status, answer[:300])
    if status != 200:
        assert len(host.events) == before, f"refused with {status}, but recorded: {answer[:200]}"
    for recorded in host.events[before:]:
        ids = [recorded.chat.id, recorded.sender.id, getattr(recorded, "message_id", "")]
        ids += [recorded.chat.name or "", recorded.sender.displayname or ""]
        shown = [i[:80] for i in ids]
        assert not any(UNSTORABLE.search(i) for i in ids), f"a database cannot hold {shown!r}"
    logged = errors.take()
    assert not logged, "exceptions were logged:\n" + "\n".join(logged)
    return status


async def still_bridged(host: FakeHost, errors: ExceptionLog) -> None:
    """A plain message after the hostile input is recorded as usual."""
    text = f"still here {next(_ids)}"
    update = {
        "update_id": next(_ids),
        **tg.message_update(tg.text_message(CHAT, ALICE_USER, text)),
    }
    assert await check(host, errors, encode(update)) == 200
    assert isinstance(host.events[-1], RemoteMessage) and host.events[-1].text == text


@fuzz_settings(80)
@given(body=st.binary(max_size=2048))
async def test_webhook_arbitrary_bytes(
    host: FakeHost, hook: TelegramConnector, errors: ExceptionLog, body: bytes
) -> None:
    await check(host, errors, body)


@fuzz_settings(40)
@given(
    body=st.binary(max_size=512) | hostile_updates().map(encode),
    secret=st.none() | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80),
)
async def test_webhook_without_the_secret(
    host: FakeHost, hook: TelegramConnector, errors: ExceptionLog, body: bytes, secret: str | None
) -> None:
    if secret == WEBHOOK_SECRET:
        secret = None
    assert await check(host, errors, body, secret=secret) == 401


@fuzz_settings(60)
@given(value=json_values)
async def test_webhook_arbitrary_json(
    host: FakeHost, hook: TelegramConnector, errors: ExceptionLog, value: Any
) -> None:
    await check(host, errors, encode(value))


@fuzz_settings(200)
@given(update=hostile_updates())
async def test_webhook_hostile_updates(
    host: FakeHost, hook: TelegramConnector, errors: ExceptionLog, update: dict[str, Any]
) -> None:
    await check(host, errors, encode(update))
    await still_bridged(host, errors)


@fuzz_settings(150)
@given(update=odd_ids())
async def test_webhook_long_and_non_ascii_ids(
    host: FakeHost, hook: TelegramConnector, errors: ExceptionLog, update: dict[str, Any]
) -> None:
    """Ids, usernames and titles Telegram would never send (70,000 characters, other scripts,
    bidi overrides, lone surrogates, integers beyond 64 bits): the update is still a valid
    one, so it is bridged (200) with bounded work, and the next message too. Only a Business
    connection id that no database can hold (NUL, a lone surrogate) is refused (400)."""
    status = await check(host, errors, encode(update))
    unstorable = any(
        UNSTORABLE.search(value)
        for path in id_places(update)
        if path[-1] == "business_connection_id"
        and isinstance(value := _value_at(update, path), str)
    )
    assert status == 200 or (status == 400 and unstorable)
    await still_bridged(host, errors)


ODD_STRING_IDS = {
    "long": "AZaz09_-" * 8_750,
    "CJK": "例え.テスト",
    "emoji": "😀👍🏽" * 1_000,
    "bidi": "\u202eevil\u202c",
    "colon": "a:b:-1",
    "NUL": "a\x00b",
    "surrogate": "id\ud800",
}
ODD_INTEGER_IDS = {"2^64": 2**64, "-2^63-1": -(2**63) - 1, "10^400": 10**400, "0": 0, "-1": -1}


@pytest.mark.parametrize("index", range(len(TEMPLATES)))
async def test_every_id_meets_every_odd_value(
    host: FakeHost, hook: TelegramConnector, errors: ExceptionLog, index: int
) -> None:
    """Not left to chance: each id of each update kind, in turn, replaced by each long,
    non-ASCII, huge or negative value of its type. Every wrong answer is listed."""
    base = {"update_id": 1, **TEMPLATES[index]}
    wrong = []
    for path in id_places(base):
        old = _value_at(base, path)
        odd = ODD_STRING_IDS if isinstance(old, str) else ODD_INTEGER_IDS
        for name, value in odd.items():
            update = fresh(base)
            _container(update, path)[path[-1]] = value
            before = len(host.events)
            status, answer = await post(host, encode(update))
            recorded = host.events[before:]
            refused = status == 400 and path[-1] == "business_connection_id"
            if not (status == 200 or (refused and name in ("NUL", "surrogate"))) or any(
                UNSTORABLE.search(text)
                for e in recorded
                for text in (e.chat.id, e.chat.name or "", e.sender.displayname or "")
            ):
                wrong.append(f"{'.'.join(map(str, path))} {name}: {status} {answer[:80]!r}")
    assert not wrong, f"{len(wrong)} wrong answers:\n" + "\n".join(wrong)
    assert not errors.take()
    await still_bridged(host, errors)


@fuzz_settings(100)
@given(update=odd_entities())
async def test_webhook_entities_anywhere(
    host: FakeHost, hook: TelegramConnector, errors: ExceptionLog, update: dict[str, Any]
) -> None:
    """Entities are Telegram's own data, but the connector must not trust their offsets: a
    valid update with odd entities is bridged (text intact), never refused or crashed on."""
    before = len(host.events)
    assert await check(host, errors, encode(update)) == 200
    (recorded,) = host.events[before:]
    assert isinstance(recorded, RemoteMessage)
    message = update["message"]
    assert recorded.text == message.get("text", message.get("caption") or "")


@pytest.mark.parametrize("depth", [1, 10, 100, 300])
async def test_webhook_deep_reply_chains(
    host: FakeHost, hook: TelegramConnector, errors: ExceptionLog, depth: int
) -> None:
    """Telegram nests one level of reply; a longer chain (under the 1 MiB limit) is still one
    message replying to the next one down."""
    update = {"update_id": next(_ids), **tg.message_update(reply_chain(depth))}
    status = await check(host, errors, encode(update))
    assert status in (200, 400)
    if status == 200:
        assert isinstance(host.events[-1], RemoteMessage)
    await still_bridged(host, errors)


@pytest.mark.parametrize(
    "field",
    ["update_id", "message.message_id", "message.chat.id", "message.from.id", "message.date"],
)
@pytest.mark.parametrize("value", [2**63, 10**30, -(2**63) - 1, 0, -1, 1.5, "12", 10**400])
async def test_webhook_odd_numbers(
    host: FakeHost, hook: TelegramConnector, errors: ExceptionLog, field: str, value: Any
) -> None:
    update: dict[str, Any] = {
        "update_id": next(_ids),
        **tg.message_update(tg.text_message(CHAT, ALICE_USER, "n")),
    }
    parent = update
    *parents, last = field.split(".")
    for key in parents:
        parent = parent[key]
    parent[last] = value
    await check(host, errors, encode(update))
    await still_bridged(host, errors)


# --------------------------------------------------------------------------- polling


def queue_raw(harness: TelegramHarness, update: dict[str, Any]) -> int:
    """Put ``update`` as it is into the simulator's getUpdates queue (``push_update`` would
    first read it as a well-formed update, which a hostile one is not)."""
    sim = harness.sim
    sim._next_update_id += 1
    # The simulator writes UTF-8, as Telegram does: lone surrogates cannot pass (they become
    # "?"); the webhook tests send them.
    update = json.loads(json.dumps(update, ensure_ascii=False).encode("utf-8", "replace"))
    full = {**update, "update_id": sim._next_update_id}
    sim._queue.append(_Pending(full, 0))
    sim._notify()
    return sim._next_update_id


@fuzz_settings(40)
@given(update=hostile_updates() | odd_entities() | odd_ids())
async def test_polling_survives_hostile_updates(
    harness: TelegramHarness,
    host: FakeHost,
    poller: TelegramConnector,
    errors: ExceptionLog,
    update: dict[str, Any],
) -> None:
    """A hostile update in a getUpdates batch is skipped or bridged, and the plain message
    after it is bridged: polling does not stop at (or loop on) the bad update."""
    queue_raw(harness, update)
    text = f"after {next(_ids)}"
    good = queue_raw(harness, tg.message_update(tg.text_message(CHAT, ALICE_USER, text)))
    await harness.sim.wait_for_confirmed(good, timeout=REQUEST_TIMEOUT)
    assert any(isinstance(e, RemoteMessage) and e.text == text for e in host.events)
    logged = errors.take()
    assert not logged, "exceptions were logged:\n" + "\n".join(logged)


@fuzz_settings(20)
@given(value=hostile_values)
async def test_polling_survives_an_update_that_is_no_update(
    harness: TelegramHarness,
    host: FakeHost,
    poller: TelegramConnector,
    errors: ExceptionLog,
    value: Any,
) -> None:
    """The Bot API answers a batch with something that is not an update in it: the updates
    around it still arrive."""
    queue_raw(harness, {"message": value})
    text = f"after junk {next(_ids)}"
    good = queue_raw(harness, tg.message_update(tg.text_message(CHAT, ALICE_USER, text)))
    await harness.sim.wait_for_confirmed(good, timeout=REQUEST_TIMEOUT)
    assert any(isinstance(e, RemoteMessage) and e.text == text for e in host.events)
    errors.take()  # a batch that cannot be read is logged as a warning at most


@fuzz_settings(15)
@given(
    depth=st.integers(min_value=500, max_value=100_000),
    where=st.sampled_from(["body", "message", "reply"]),
)
async def test_webhook_deeply_nested_json(
    host: FakeHost, hook: TelegramConnector, errors: ExceptionLog, depth: int, where: str
) -> None:
    """Nesting beyond Python's recursion limit, as the body, as the message and as a reply
    chain, is refused with a 400 (or a 413 when it is also too large), not a 500."""
    deep = "[" * depth + "]" * depth
    if where == "reply":
        deep = '{"reply_to_message": ' * depth + "{}" + "}" * depth
    body = {
        "body": deep,
        "message": f'{{"update_id": 1, "message": {deep}}}',
        "reply": f'{{"update_id": 1, "message": {deep}}}',
    }[where]
    assert await check(host, errors, body.encode()) in (400, 413)  # 413: over 1 MiB
    await still_bridged(host, errors)


SECRET_CHARACTERS = "ABCXYZabcxyz0189_-"
_TELEGRAM = TelegramHarness()  # never started: only its config is used


@fuzz_settings(150)
@given(
    secret=st.text(SECRET_CHARACTERS, max_size=300)
    | st.text(SECRET_CHARACTERS, min_size=28, max_size=36)
    | awkward_text
)
def test_configured_webhook_secret(secret: str) -> None:
    """Telegram takes 1-256 characters of [A-Za-z0-9_-]; the bridge wants at least 32 of them:
    anything else is a config error naming the key, never a guessable secret in use."""
    raw = {**_TELEGRAM.webhook_config("https://bridge.example.com"), "webhook_secret": secret}
    alphabet = all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in secret)
    valid = alphabet and 32 <= len(secret) <= 256
    key = _TELEGRAM.config_key
    try:
        config = TelegramConnector.parse_config(raw, key)
    except ConfigError as e:
        assert not valid, secret
        assert e.key == f"{key}.webhook_secret"
    else:
        assert valid and config.webhook_secret == secret
