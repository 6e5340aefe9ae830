"""Property tests of VK's inbound side: the event parser (the same for Callback API and Long
Poll) with hostile values in any field of every event type it carries, and the callback
endpoint with arbitrary bytes, arbitrary JSON and mutated events - answered 200, 400, 403 or
413, never a 5xx or a logged exception, and nothing recorded unless answered 200."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.connectors.vk import VKConnector
from bridge.connectors.vk.connector import CALLBACK_PATH
from bridge.connectors.vk.handle_remote import PayloadError, parse_event
from bridge.events import RemoteEvent
from tests.contract.harness import FakeHost
from tests.fault.fuzz_support import ExceptionLog, fuzz_settings, json_values, mutate

from ..conftest import running
from .harness import GROUP_ID, SECRET, VKHarness
from .simulator import VKSimulator

ALLOWED = {200, 400, 403, 413}
CUSTOMER = 700_000_301
SIM = VKSimulator("token", GROUP_ID)
SIM.port = 1
"""Builds events only (never started): the payloads are the simulator's own."""


def valid_events() -> list[dict[str, Any]]:
    photo = SIM.photo(b"x")
    doc = SIM.doc(b"x", "a.pdf", "application/pdf")
    voice = {
        "type": "audio_message",
        "audio_message": {"id": 3, "owner_id": 1, "link_ogg": "https://x/v.ogg"},
    }
    sticker = {
        "type": "sticker",
        "sticker": {
            "sticker_id": 9,
            "images": [{"url": "https://x/s.png", "width": 128, "height": 128}],
        },
    }
    video = {"type": "video", "video": {"id": 4, "owner_id": 1}}
    return [
        SIM.message(CUSTOMER, "hi [id1|Ann]", attachments=[photo, doc], reply_to=1, ref="r"),
        SIM.message(CUSTOMER, "", peer_id=2_000_000_001, attachments=[voice, sticker, video]),
        SIM.edit(CUSTOMER, 1, "edited"),
        SIM.typing(CUSTOMER),
        SIM.envelope(
            "message_event",
            {
                "user_id": CUSTOMER,
                "peer_id": CUSTOMER,
                "event_id": "3a1b",
                "payload": {"b": "consent:yes", "t": "Да"},
                "conversation_message_id": 2,
            },
        ),  # fmt: skip
        SIM.permission(CUSTOMER, True),
        SIM.permission(CUSTOMER, False),
    ]


EVENTS = valid_events()


@st.composite
def hostile_events(draw: st.DrawFn) -> dict[str, Any]:
    return mutate(draw, draw(st.sampled_from(EVENTS)), max_changes=4)


def check_parsed(raw: Any) -> list[RemoteEvent]:
    try:
        events = parse_event(raw, GROUP_ID)
    except PayloadError:
        return []
    for event in events:
        encoded = json.dumps(event.to_json())  # what the core stores: strict JSON, no NaN
        assert RemoteEvent.from_json(json.loads(encoded)) == event
        assert "\x00" not in encoded
    return events


@fuzz_settings(300)
@given(hostile_events())
def test_parser_takes_any_event(raw: dict[str, Any]) -> None:
    check_parsed(raw)


@fuzz_settings(100)
@given(json_values)
def test_parser_takes_any_json(raw: Any) -> None:
    check_parsed(raw)


def test_valid_events_parse() -> None:
    assert all(check_parsed(raw) for raw in EVENTS)


@pytest.fixture
async def harness() -> AsyncIterator[VKHarness]:
    async for instance in running(VKHarness()):
        yield instance


async def post(host: FakeHost, body: bytes) -> int:
    async with aiohttp.ClientSession() as session:
        url = host.route_url(CALLBACK_PATH)
        headers = {"Content-Type": "application/json"}
        # Large bodies as a stream: aiohttp warns about big raw bytes (a ResourceWarning).
        data = io.BytesIO(body) if len(body) > 512 * 1024 else body
        async with session.post(url, data=data, headers=headers) as resp:
            return resp.status


@fuzz_settings(60)
@given(
    body=st.one_of(
        st.binary(max_size=200), hostile_events().map(lambda e: {**e, "secret": SECRET})
    )
)
async def test_callback_endpoint(
    harness: VKHarness, connector: VKConnector, host: FakeHost, body: Any
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8", "surrogatepass")
    before = len(host.events)
    with ExceptionLog() as log:
        status = await post(host, raw)
    assert status in ALLOWED
    assert log.take() == []
    if status != 200:
        assert len(host.events) == before
