"""Property tests of the MAX inbound parsers: updates of every type the bridge carries, with
hostile values in any field (wrong types, huge numbers and strings, deep nesting, broken
Unicode), give either events that the core can store or ``UnreadableUpdate`` (the webhook's
400), never another exception; markup ranges of any kind give well-nested HTML of the text.
A smaller run goes through the webhook endpoint itself: 200, 400 or 413, never a 5xx."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge.connectors.max import MaxConnector
from bridge.connectors.max.format import markup_to_html
from bridge.connectors.max.handle_remote import UnreadableUpdate, update_events
from bridge.events import RemoteEvent
from tests.contract.harness import FakeHost
from tests.fault.fuzz_support import awkward_text_of, fuzz_settings, mutate

from .harness import SECRET, MaxHarness
from .simulator import MaxSimulator
from .support import ALICE, BOB, GROUP

awkward_text = awkward_text_of(["\x00", "\ud800", "😀", "<", "&", "\n", "*", "_"])
SIM = MaxSimulator()
KINDS = [
    "message", "reply", "media", "edit", "delete", "press", "started", "bot_added",
    "bot_removed", "user_added", "user_removed", "title",
]  # fmt: skip
TAG = re.compile(r"<[^>]*>")


def build(kind: str, text: str) -> dict[str, Any]:
    """A valid update of ``kind`` with ``text`` where it has one."""
    sim = SIM
    first = sim.customer_message(ALICE, "Anna", "first")
    mid = first["message"]["body"]["mid"]
    if kind == "message":
        markup = [{"type": "strong", "from": 0, "length": 1}]
        return sim.customer_message(ALICE, text or "?", text, markup=markup)
    if kind == "reply":
        return sim.customer_message(BOB, "Boris", text, chat_id=GROUP, chat_type="chat",
                                    reply_to=mid)  # fmt: skip
    if kind == "media":
        files = [{"type": t, "payload": {"url": "https://files.example/x", "token": "t"},
                  "filename": text, "size": 10} for t in ("image", "file", "sticker")]  # fmt: skip
        files.append({"type": "location", "latitude": 1.5, "longitude": 2.5})
        return sim.customer_message(ALICE, "Anna", text, attachments=files)
    if kind == "edit":
        return sim.customer_edit(mid, text)
    if kind == "delete":
        return sim.customer_delete(mid)
    if kind == "press":
        return sim.press(mid, text, BOB)
    if kind == "started":
        return sim.bot_started(ALICE, "Anna", text)
    if kind == "title":
        return sim.title_change(GROUP, ALICE, "Anna", text)
    return sim.member_change(kind, GROUP, BOB, text or "Boris")


@st.composite
def updates(draw: st.DrawFn) -> dict[str, Any]:
    update = build(draw(st.sampled_from(KINDS)), draw(awkward_text))
    return mutate(draw, update) if draw(st.booleans()) else update


def storable(event: RemoteEvent) -> None:
    """What the core does with an event: JSON (strict, UTF-8) and back."""
    encoded = json.dumps(event.to_json(), allow_nan=False).encode()
    assert RemoteEvent.from_json(json.loads(encoded)) == event


@fuzz_settings(600)
@given(updates())
def test_update_parser(update: Any) -> None:
    try:
        events = update_events(update, bot_id=SIM.bot_id)
    except UnreadableUpdate:
        return
    for event in events:
        storable(event)


@fuzz_settings(300)
@given(st.lists(st.one_of(st.none(), st.dictionaries(
    st.sampled_from(["type", "from", "length", "url"]),
    st.one_of(st.sampled_from(["strong", "emphasized", "link", "monospaced", "underline",
                               "strikethrough", "user_mention", "https://x.y/?a=<b>&c"]),
              st.integers(-3, 40), st.text(max_size=5)),
)), max_size=6), awkward_text)  # fmt: skip
def test_markup_gives_nested_html_of_the_text(markup: list[Any], text: str) -> None:
    html = markup_to_html(text, markup)
    if html is None:
        return
    stack: list[str] = []
    for tag in TAG.findall(html):
        name = tag.strip("</>").split(" ")[0]
        if tag.startswith("</"):
            assert stack and stack.pop() == name, html
        elif name != "br":
            stack.append(name)
    assert not stack, html
    assert unescape(TAG.sub("", html.replace("<br>", "\n"))) == text


@fuzz_settings(60)
@given(updates())
async def test_webhook_answers(
    harness: MaxHarness, connector: MaxConnector, host: FakeHost, update: Any
) -> None:
    before = len(host.events)
    try:
        body = json.dumps(update).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        return
    delivery = await harness.sim.post_update(body, SECRET, attempts=1)
    assert delivery.status in (200, 400, 413), delivery.answer[:300]
    if delivery.status != 200:
        assert len(host.events) == before
