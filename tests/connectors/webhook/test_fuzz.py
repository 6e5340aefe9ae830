"""Property tests: whatever arrives at ``POST /events``, the answer is 200 or a 4xx with a JSON
error, never a 5xx or an exception, and nothing is recorded unless the answer was 200."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bridge.connectors.webhook import WebhookConnector
from tests.contract.harness import FakeHost
from tests.fault.fuzz_support import nested

from .harness import WebhookHarness

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text with the characters that break naive code: NUL, lone surrogates, astral planes.
awkward_text = st.text(
    st.one_of(
        st.characters(codec=None),
        st.sampled_from(["\x00", "\ud800", "\udfff", "😀", "\u202e"]),
    ),
    max_size=30,
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    awkward_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(awkward_text, children, max_size=4)
    ),
    max_leaves=20,
)


deep_values = st.builds(nested, st.integers(min_value=20, max_value=600), json_scalars)
"""Deep enough to reach every recursive code path, shallow enough for the test to encode."""
non_ascii = st.characters(min_codepoint=0x80, exclude_categories=("Cs",))
ids = st.one_of(
    st.text(min_size=1, max_size=12),
    st.text(non_ascii, min_size=1, max_size=80),
    st.text(min_size=240, max_size=300),
    st.builds(
        lambda c, n: c * n,
        st.sampled_from(["x", "é", "😀", "\u202e"]),
        st.integers(1, 400),
    ),
).filter(lambda s: "\x00" not in s)
"""Short, non-ASCII, and around or far over the 255-byte limit."""
valid_attachment = st.fixed_dictionaries(
    {"url": st.sampled_from(["https://files.example/a.png", "http://x.example/b"])},
    optional={
        "filename": st.text(max_size=10),
        "mimetype": st.just("image/png"),
        "size": st.integers(min_value=0, max_value=10**9),
    },
)
valid_payloads = st.fixed_dictionaries(
    {
        "id": ids,
        "chat": st.fixed_dictionaries(
            {"id": ids}, optional={"name": st.text(max_size=20), "is_group": st.booleans()}
        ),
        "sender": st.fixed_dictionaries(
            {"id": ids},
            optional={"name": st.text(max_size=20), "avatar_url": st.just("https://a.example/")},
        ),
        "text": st.text(min_size=1),
        "emoji": st.sampled_from(["👍", "❤️", "x"]),
    },
    optional={
        "type": st.sampled_from(["message", "edit", "delete", "reaction", "reaction_remove"]),
        "html": st.text(),
        "attachments": st.lists(valid_attachment, max_size=3),
        "reply_to": ids,
        "timestamp": st.floats(min_value=0, max_value=4e9),
        "edit_id": ids,
        "notice": st.booleans(),
        "unknown": st.one_of(json_values, deep_values),
    },
)
FIELDS = [
    ("id",), ("type",), ("text",), ("html",), ("emoji",), ("reply_to",), ("timestamp",),
    ("notice",), ("edit_id",), ("attachment",), ("attachments",), ("chat",), ("chat", "id"),
    ("chat", "name"), ("chat", "is_group"), ("chat", "topic"), ("sender",), ("sender", "id"),
    ("sender", "name"), ("sender", "avatar_url"),
]  # fmt: skip


@st.composite
def near_valid_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """A valid payload with a few fields replaced by arbitrary values (or removed), so the
    schema validator is exercised on every field, not just the first one it checks."""
    payload = draw(valid_payloads)
    for path in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        parent: Any = payload
        for key in path[:-1]:
            parent = parent[key] if isinstance(parent.get(key), dict) else {}
        if draw(st.booleans()):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = draw(st.one_of(json_values, awkward_text, deep_values, ids))
    return payload


async def check(harness: WebhookHarness, host: FakeHost, body: bytes, *, sign: bool = True) -> int:
    before = len(host.events)
    status, answer = await harness.post(body=body, sign=sign)
    after = len(host.events)
    event(f"status {status}")
    assert status == 200 or 400 <= status < 500, (status, answer)
    assert isinstance(answer, dict), answer
    if status == 200:
        assert answer["status"] in ("accepted", "duplicate")
        assert after == before + (answer["status"] == "accepted")
    else:
        assert isinstance(answer.get("error"), str) and answer["error"]
        assert after == before, "a refused request reached the host"
    return status


@SETTINGS
@given(body=st.binary(max_size=2048))
async def test_arbitrary_bytes(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost, body: bytes
) -> None:
    await check(harness, host, body)


@SETTINGS
@given(body=st.binary(max_size=512))
async def test_arbitrary_unsigned_bytes(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost, body: bytes
) -> None:
    assert await check(harness, host, body, sign=False) == 401


@SETTINGS
@given(value=json_values)
async def test_arbitrary_json(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost, value: Any
) -> None:
    await check(harness, host, json.dumps(value).encode())


@settings(SETTINGS, max_examples=400)
@given(payload=near_valid_payloads(), ensure_ascii=st.booleans())
async def test_near_valid_payloads(
    harness: WebhookHarness,
    connector: WebhookConnector,
    host: FakeHost,
    payload: dict[str, Any],
    ensure_ascii: bool,
) -> None:
    try:
        body = json.dumps(payload, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
    except UnicodeEncodeError:
        body = json.dumps(payload).encode()
    await check(harness, host, body)


def _valid_id(value: str) -> bool:
    try:
        return 0 < len(value.encode()) <= 255
    except UnicodeEncodeError:
        return False


@SETTINGS
@given(message_id=ids, chat_id=ids, sender_id=ids)
async def test_ids_are_accepted_exactly_up_to_255_bytes(
    harness: WebhookHarness,
    connector: WebhookConnector,
    host: FakeHost,
    message_id: str,
    chat_id: str,
    sender_id: str,
) -> None:
    payload = {"id": message_id, "chat": {"id": chat_id}, "sender": {"id": sender_id}}
    body = json.dumps({**payload, "text": "hi"}).encode()
    status = await check(harness, host, body)
    assert (status == 200) == all(map(_valid_id, (message_id, chat_id, sender_id)))


@SETTINGS
@given(depth=st.integers(min_value=1, max_value=100_000), where=st.sampled_from(FIELDS))
async def test_deep_nesting_anywhere_is_a_clear_400_or_accepted(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost, depth: int, where: Any
) -> None:
    """Nesting sent as raw text, deeper than any recursive parser can follow."""
    deep = "[" * depth + "1" + "]" * depth
    head = '{"id":"m","chat":{"id":"c"},"sender":{"id":"s"},"text":"t","x":'
    body = (head + deep + "}").encode()
    status = await check(harness, host, body)
    if status != 200:
        assert depth > 100
    payload: dict[str, Any] = {"id": "m", "chat": {"id": "c"}, "sender": {"id": "s"}, "text": "t"}
    parent: Any = payload
    for key in where[:-1]:
        parent = parent.setdefault(key, {})
    parent[where[-1]] = nested(min(depth, 600), 1)
    await check(harness, host, json.dumps(payload).encode())
