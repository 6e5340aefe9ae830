"""Text over the homeserver's event size limit (64 KB) is bridged in several events, not
refused: a pasted log of 108 KB through the webhook arrives whole, through a real Synapse."""

from __future__ import annotations

from typing import Any

from tests.conftest import Stack
from tests.e2e.helpers import body_is, customer_msg, open_portal
from tests.infra.staff import StaffClient


def _log(size: int) -> str:
    lines = []
    n = 0
    while sum(len(line) + 1 for line in lines) < size:
        lines.append(f'2026-12-06 02:{n % 60:02d}:00 ERROR worker-{n}: "upstream" timed out ä')
        n += 1
    return "\n".join(lines)


async def _bodies_after(staff: StaffClient, room_id: str, first: str, last: str) -> list[str]:
    await staff.wait_for_event(body_is(last), room_id=room_id, timeout=60)
    events: list[dict[str, Any]] = [
        e for e in await staff.room_messages(room_id) if e.get("type") == "m.room.message"
    ]
    bodies = [e["content"]["body"] for e in events]
    start = bodies.index(first)
    return bodies[start + 1 : bodies.index(last)]


async def test_a_108_kb_text_arrives_whole_in_several_events(
    stack: Stack, staff: StaffClient
) -> None:
    room_id, _ = await open_portal(stack, staff, "c-long", "before")
    text = _log(108 * 1024)
    status, answer = await stack.peer.send(stack.account, customer_msg("c-long", text))
    assert (status, answer) == (200, {"status": "accepted"})
    assert (await stack.peer.send(stack.account, customer_msg("c-long", "after")))[0] == 200
    parts = await _bodies_after(staff, room_id, "before", "after")
    assert len(parts) > 1
    assert "".join(parts) == text


async def test_text_and_html_over_the_limit_together_arrive_as_text(
    stack: Stack, staff: StaffClient
) -> None:
    room_id, _ = await open_portal(stack, staff, "c-long-html", "before")
    text = _log(30 * 1024)  # each under the limit, together over it
    markup = "<p>" + text.replace("\n", "</p><p>").replace('"', "&quot;") + "</p>"
    message = customer_msg("c-long-html", text, html=markup)
    assert (await stack.peer.send(stack.account, message))[0] == 200
    assert (await stack.peer.send(stack.account, customer_msg("c-long-html", "after")))[0] == 200
    assert await _bodies_after(staff, room_id, "before", "after") == [text]
