"""Property tests of the webhook endpoint, through the FakeHost's real HTTP server: whatever
arrives at ``POST /connectors/<account>/webhook`` - arbitrary bytes, arbitrary JSON, and Cloud
API payloads of every kind with hostile values in any field (wrong types, huge numbers and
strings, deep nesting, broken Unicode) - the answer is 200, 400, 401 or 413, never a 5xx, an
exception or a hang, and nothing is recorded unless the answer was 200."""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from bridge.connectors.whatsapp import WhatsAppConnector
from bridge.events import RemoteMessage
from tests.contract.harness import FakeHost
from tests.fault.fuzz_support import (
    ExceptionLog,
    awkward_text_of,
    huge_strings_of,
    json_scalars_of,
    json_values_of,
    odd_string_ids,
)

from ..conftest import running
from . import payloads as wa
from .harness import WhatsAppHarness

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
ALLOWED = {200, 400, 401, 413}
REQUEST_TIMEOUT = 10.0
"""Seconds one answer may take: far more than the reorder window, so a hang fails the test."""
CUSTOMER = "491701234567"
NOW = time.time()


class FuzzHarness(WhatsAppHarness):
    """A short reorder window, so that each of the many examples is bridged quickly."""

    def valid_config(self) -> dict[str, Any]:
        return {**super().valid_config(), "reorder_window": 0.01}


@pytest.fixture
async def harness() -> AsyncIterator[WhatsAppHarness]:
    async for instance in running(FuzzHarness(earlier_conversations=False)):
        yield instance


async def check(
    harness: WhatsAppHarness, host: FakeHost, body: bytes, *, signature: str | None = "valid"
) -> int:
    before = len(host.events)
    status, answer = await harness.post_raw(body, signature=signature, timeout=REQUEST_TIMEOUT)
    if currently_in_test_context():
        event(f"status {status}")
    assert status in ALLOWED, (status, answer[:500])
    if status != 200:
        assert len(host.events) == before, f"refused with {status}, but recorded: {answer[:200]}"
    return status


# --------------------------------------------------------------------------- values

# Text with the characters that break naive code, WhatsApp's markup among them.
awkward_text = awkward_text_of(
    ["\x00", "\ud800", "\udfff", "😀", "\u202e", "*", "_", "~", "`", "\n"]
)
json_scalars = json_scalars_of(awkward_text)
json_values = json_values_of(awkward_text)
huge_strings = huge_strings_of(
    ["x", "é", "😀", "\ud800", "*bold* _it_ ~s~ `c` ", "> quote\n", "a" * 7 + " "],
    [5_000, 60_000, 400_000],
)
huge_numbers = st.sampled_from(
    [10**400, -(10**400), 2**63, -(2**63) - 1, 10**20, 1e308, -1e308, 5e-324, 0, -1]
)
number_strings = st.sampled_from(
    ["NaN", "nan", "inf", "-Infinity", "1e999", "-1e999", "", " ", "0", "-1", "1e10", "0x10"]
)


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


deep_values = st.builds(nested, st.integers(min_value=20, max_value=900), json_scalars)
hostile_values = st.one_of(
    json_values,
    huge_strings,
    huge_numbers,
    number_strings,
    deep_values,
    st.lists(json_values, min_size=0, max_size=3),
)


# --------------------------------------------------------------------------- payloads


KINDS = (
    "text image audio video document sticker location contacts button_reply list_reply button "
    "reaction unreaction unsupported"
).split()
SHA = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def build_message(
    kind: str, sender: str, text: str, timestamp: float, context: bool
) -> dict[str, Any]:
    """One inbound message of ``kind`` as the Cloud API delivers it."""
    kw: dict[str, Any] = {"timestamp": timestamp}
    if context:
        kw["context"] = wa.reply_context("15550001234", wa.new_wamid(sender))
    media_id = wa.new_media_id()
    if kind == "text":
        return wa.text_message(sender, text, **kw)
    if kind == "image":
        return wa.image_message(sender, media_id, sha256=SHA, caption=text, **kw)
    if kind == "audio":
        return wa.audio_message(sender, media_id, sha256=SHA, voice=True, **kw)
    if kind == "video":
        return wa.video_message(sender, media_id, sha256=SHA, caption=text, **kw)
    if kind == "document":
        return wa.document_message(sender, media_id, sha256=SHA, filename=text or "a.pdf", **kw)
    if kind == "sticker":
        return wa.sticker_message(sender, media_id, sha256=SHA, **kw)
    if kind == "location":
        return wa.location_message(
            sender, 52.5, 13.4, name=text, address=text, url="https://example.com", **kw
        )
    if kind == "contacts":
        card = wa.contact_card(text or "?", phones=["+49 170 1"], emails=["a@example.com"])
        return wa.contacts_message(sender, [card], **kw)
    if kind == "button_reply":
        return wa.button_reply_message(sender, "b1", text, **kw)
    if kind == "list_reply":
        return wa.list_reply_message(sender, "r1", text, text, **kw)
    if kind == "button":
        return wa.template_button_message(sender, "P", text, **kw)
    if kind in ("reaction", "unreaction"):
        emoji = "👍" if kind == "reaction" else ""
        return wa.reaction_message(sender, wa.new_wamid(sender), emoji, **kw)
    assert kind == "unsupported", kind
    return wa.unsupported_message(sender, "poll", **kw)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """One inbound message of any kind, with generated content."""
    return build_message(
        draw(st.sampled_from(KINDS)),
        draw(st.sampled_from([CUSTOMER, "491709876543", "15550001111"])),
        draw(awkward_text),
        draw(st.floats(min_value=1.6e9, max_value=NOW)),
        draw(st.booleans()),
    )


def build_status(state: str, note: str | None = None) -> dict[str, Any]:
    failed = state == "failed"
    return wa.status_update(
        wa.new_wamid(CUSTOMER),
        state,
        CUSTOMER,
        timestamp=NOW - 10,
        errors=[wa.webhook_error(131026)] if failed else None,
        conversation=None if failed else wa.conversation(expiration_timestamp=NOW + 3600),
        pricing=None if failed else wa.pricing(),
        biz_opaque_callback_data=note,
    )


@st.composite
def statuses(draw: st.DrawFn) -> dict[str, Any]:
    return build_status(draw(st.sampled_from(wa.STATUSES)), draw(st.none() | awkward_text))


@st.composite
def valid_payloads(draw: st.DrawFn) -> dict[str, Any]:
    inbound = draw(st.lists(messages(), max_size=3))
    updates = draw(st.lists(statuses(), max_size=2))
    contacts = [wa.contact_profile(m["from"], draw(awkward_text)) for m in inbound]
    return wa.envelope(
        waba_id="104455667788990",
        phone_number_id=draw(st.sampled_from(["109876543210987", "100000000000001"])),
        display_phone_number="15550001234",
        messages=inbound,
        contacts=contacts,
        statuses=updates,
    )


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in ``value`` a value can be put (dict keys and list indexes)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from paths(item, (*prefix, index))


@st.composite
def hostile_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """A valid payload with one to three places replaced by a hostile value or removed, so
    every field of every message kind meets every wrong type."""
    payload = copy.deepcopy(draw(valid_payloads()))
    places = list(paths(payload))
    for path in draw(st.lists(st.sampled_from(places), min_size=1, max_size=3)):
        parent: Any = payload
        try:
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]]  # noqa: B018 - still there (an earlier change may have moved it)
        except (KeyError, IndexError, TypeError):
            continue
        if not isinstance(parent, dict | list):
            continue  # an earlier change put a string where a container was
        if isinstance(parent, dict) and draw(st.booleans()):
            event("field removed")
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(hostile_values)
    return payload


def encode(payload: Any) -> bytes:
    # As Meta does: ASCII with escapes (lone surrogates survive as \ud800), NaN as written.
    return json.dumps(payload, ensure_ascii=True).encode()


# --------------------------------------------------------------------------- properties


@SETTINGS
@given(body=st.binary(max_size=4096))
async def test_arbitrary_bytes(
    harness: WhatsAppHarness, connector: WhatsAppConnector, host: FakeHost, body: bytes
) -> None:
    await check(harness, host, body)


@settings(SETTINGS, max_examples=60)
@given(
    body=st.binary(max_size=1024),
    signature=st.none()
    | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80),
)
async def test_unsigned_or_wrongly_signed_bytes(
    harness: WhatsAppHarness,
    connector: WhatsAppConnector,
    host: FakeHost,
    body: bytes,
    signature: str | None,
) -> None:
    assert await check(harness, host, body, signature=signature) == 401


@SETTINGS
@given(value=json_values)
async def test_arbitrary_json(
    harness: WhatsAppHarness, connector: WhatsAppConnector, host: FakeHost, value: Any
) -> None:
    await check(harness, host, encode(value))


@SETTINGS
@given(value=json_values, where=st.sampled_from(["entry", "changes", "value", "messages"]))
async def test_arbitrary_json_inside_the_envelope(
    harness: WhatsAppHarness,
    connector: WhatsAppConnector,
    host: FakeHost,
    value: Any,
    where: str,
) -> None:
    payload = wa.envelope(
        waba_id="104455667788990",
        phone_number_id=harness.sim.phone_number_id,
        display_phone_number="15550001234",
        messages=[wa.text_message(CUSTOMER, "hi")],
    )
    change = payload["entry"][0]["changes"][0]
    if where == "entry":
        payload["entry"] = value
    elif where == "changes":
        payload["entry"][0]["changes"] = value
    elif where == "value":
        change["value"] = value
    else:
        change["value"]["messages"] = value
    await check(harness, host, encode(payload))


@SETTINGS
@given(payload=valid_payloads())
async def test_valid_payloads_are_accepted(
    harness: WhatsAppHarness, connector: WhatsAppConnector, host: FakeHost, payload: Any
) -> None:
    assert await check(harness, host, encode(payload)) == 200


@SETTINGS
@given(payload=hostile_payloads())
async def test_hostile_payloads(
    harness: WhatsAppHarness, connector: WhatsAppConnector, host: FakeHost, payload: Any
) -> None:
    await check(harness, host, encode(payload))


# --------------------------------------------------------------------------- every field

MESSAGE = ("entry", 0, "changes", 0, "value", "messages", 0)
STATUS = ("entry", 0, "changes", 0, "value", "statuses", 0)


def sample(kind: str) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """A valid payload for ``kind`` and the part of it whose every field is attacked: one
    message, one status, or (``envelope``) everything around a text message."""
    envelope: dict[str, Any] = {
        "waba_id": "104455667788990",
        "phone_number_id": "109876543210987",
        "display_phone_number": "15550001234",
    }
    if kind.startswith("status-"):
        return wa.envelope(**envelope, statuses=[build_status(kind[7:], "note")]), STATUS
    message = build_message(
        "text" if kind == "envelope" else kind, CUSTOMER, "Hi *there*", NOW - 10, True
    )
    contacts = [wa.contact_profile(CUSTOMER, "Carla")]
    payload = wa.envelope(**envelope, messages=[message], contacts=contacts)
    return payload, (() if kind == "envelope" else MESSAGE)


def wrong_type(value: Any) -> Any:
    if isinstance(value, str):
        return 12345
    if isinstance(value, dict):
        return "an object was expected"
    if isinstance(value, list):
        return {"0": value[0] if value else None}
    return "a string instead"


HOSTILE = {
    "removed": None,
    "null": lambda v: None,
    "wrong type": wrong_type,
    "huge int": lambda v: 10**400,
    "NaN text": lambda v: "NaN",
    "huge string": lambda v: "*x_ " * 20_000,
    "deep nesting": lambda v: nested(700, v if not isinstance(v, dict | list) else "leaf"),
}


@pytest.mark.parametrize("kind", [*KINDS, *(f"status-{s}" for s in wa.STATUSES), "envelope"])
async def test_every_field_meets_every_hostile_value(
    harness: WhatsAppHarness, connector: WhatsAppConnector, host: FakeHost, kind: str
) -> None:
    """Not left to chance: each field of each message kind, status and the envelope, in turn,
    removed or replaced by each hostile value. Every answer is listed when one is wrong."""
    base, root = sample(kind)
    places = [
        path
        for path in paths(base)
        if path[: len(root)] == root and len(path) > len(root)
        and (kind != "envelope" or path[: len(MESSAGE)] != MESSAGE)
    ]  # fmt: skip
    assert places
    wrong = []
    for path in places:
        for name, make in HOSTILE.items():
            payload = copy.deepcopy(base)
            parent: Any = payload
            for key in path[:-1]:
                parent = parent[key]
            if make is None:
                if not isinstance(parent, dict):
                    continue
                del parent[path[-1]]
            else:
                parent[path[-1]] = make(parent[path[-1]])
            before = len(host.events)
            status, answer = await harness.post_raw(encode(payload), timeout=REQUEST_TIMEOUT)
            recorded = len(host.events) - before
            if status not in ALLOWED or (status != 200 and recorded):
                wrong.append(f"{'.'.join(map(str, path))} {name}: {status} {answer[:80]!r}")
    assert not wrong, f"{len(wrong)} wrong answers:\n" + "\n".join(wrong)


# --------------------------------------------------------------------------- ids

ID_KEYS = frozenset(
    "id from wa_id recipient_id message_id phone_number_id display_phone_number".split()
)
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""What no database text column takes (the core keys rows by the remote ids)."""
ODD_IDS = {
    "long": "wamid.HBgLNDkxNzA" * 4_400,
    "long digits": "4917012345678" * 5_400,
    "CJK": "例え.テスト",
    "emoji": "😀👍🏽" * 1_000,
    "bidi": "\u202e4917012345678",
    "path": "../../me?fields=id#x",
    "plus and spaces": "+49 170 1234567",
    "NUL": "4917\x00012",
    "surrogate": "wamid.\ud800",
}


def id_places(payload: Any) -> list[tuple[Any, ...]]:
    """The places of ``payload`` that hold an id or a phone number (wamids, wa_ids, media,
    business account and phone number ids)."""
    places = []
    for path in paths(payload):
        value: Any = payload
        for key in path:
            value = value[key]
        if path[-1] in ID_KEYS and isinstance(value, str):
            places.append(path)
    return places


@pytest.fixture
def errors() -> Iterator[ExceptionLog]:
    with ExceptionLog() as log:
        yield log


async def still_bridged(harness: WhatsAppHarness, host: FakeHost) -> None:
    """A plain message after the odd one is recorded as usual."""
    text = f"still here {wa.new_media_id()}"
    payload = wa.envelope(
        waba_id="104455667788990",
        phone_number_id=harness.sim.phone_number_id,
        display_phone_number="15550001234",
        messages=[wa.text_message(CUSTOMER, text, timestamp=NOW - 5)],
    )
    assert await check(harness, host, encode(payload)) == 200
    assert any(isinstance(e, RemoteMessage) and e.text == text for e in host.events)


@pytest.mark.parametrize("kind", [*KINDS, *(f"status-{s}" for s in wa.STATUSES)])
async def test_every_id_meets_long_and_non_ascii_values(
    harness: WhatsAppHarness,
    connector: WhatsAppConnector,
    host: FakeHost,
    errors: ExceptionLog,
    kind: str,
) -> None:
    """Each id of each message kind and status (wamid, the customer's wa_id, media id, the
    business account and phone number ids, the quoted message), in turn, very long,
    non-ASCII, path-like or with NUL or a lone surrogate. A payload whose ids a database can
    hold is taken (200); one with NUL or a lone surrogate in an id is refused as a whole (400)
    and nothing of it recorded. No exception is logged; the next message is bridged."""
    wrong = []
    for path in id_places(sample(kind)[0]):
        for name, value in ODD_IDS.items():
            payload = sample(kind)[0]  # fresh wamids and media ids: nothing is a duplicate
            parent: Any = payload
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = value
            before = len(host.events)
            status, answer = await harness.post_raw(encode(payload), timeout=REQUEST_TIMEOUT)
            recorded = host.events[before:]
            keys = [
                (e.chat.id, e.sender.id, getattr(e, "message_id", ""), getattr(e, "reply_to", ""))
                for e in recorded
            ]
            refused = status == 400 and not recorded and UNSTORABLE.search(value)
            if status != 200 and not refused:
                wrong.append(f"{'.'.join(map(str, path))} {name}: {status} {answer[:80]!r}")
            elif any(UNSTORABLE.search(i) for ids in keys for i in ids if i):
                wrong.append(f"{'.'.join(map(str, path))} {name}: recorded as a key")
    assert not wrong, f"{len(wrong)} wrong answers:\n" + "\n".join(wrong)
    logged = errors.take()
    assert not logged, "exceptions were logged:\n" + "\n".join(logged)
    await still_bridged(harness, host)


@st.composite
def odd_id_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """A valid payload with one to four of its ids long or non-ASCII (also with NUL or lone
    surrogates, also both long and non-ASCII), each still a string."""
    payload = draw(valid_payloads())
    places = id_places(payload)
    if not places:
        return payload
    for path in draw(st.lists(st.sampled_from(places), min_size=1, max_size=4, unique=True)):
        parent: Any = payload
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = draw(odd_string_ids(parent[path[-1]]))
        event(f"odd {path[-1]}")
    return payload


@settings(SETTINGS, max_examples=100)
@given(payload=odd_id_payloads())
async def test_odd_ids_anywhere(
    harness: WhatsAppHarness,
    connector: WhatsAppConnector,
    host: FakeHost,
    errors: ExceptionLog,
    payload: Any,
) -> None:
    before = len(host.events)
    status = await check(harness, host, encode(payload))
    unstorable = any(UNSTORABLE.search(_at(payload, path)) for path in id_places(payload))
    assert status == 200 or (status == 400 and unstorable)
    for e in host.events[before:]:
        ids = (e.chat.id, e.sender.id, getattr(e, "message_id", ""), getattr(e, "reply_to", ""))
        ids += (e.chat.name, e.sender.displayname)
        assert not any(UNSTORABLE.search(i) for i in ids if i), [i[:80] for i in ids if i]
    logged = errors.take()
    assert not logged, "exceptions were logged:\n" + "\n".join(logged)


def _at(payload: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        payload = payload[key]
    return payload
