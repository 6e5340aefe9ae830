"""Poison events: an item that fails every time, in each direction, is given up after the
configured attempts, kept as a dead letter and announced in the room; later items of the same
conversation get through, and an admin's retry queues the dead letter again."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import Stack, build_stack
from tests.e2e.helpers import body_is, customer_msg, open_portal
from tests.infra.ports import free_port
from tests.infra.staff import StaffClient

LOOPBACK = "127.0.0.1"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cf00000301010018dd8db40000000049454e44ae426082"
)


class FlakyFiles:
    """Serves one file, answering 503 while ``broken``."""

    def __init__(self) -> None:
        self.broken = True
        self.requests = 0
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/dot.png"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/dot.png", self._file)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _file(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.broken:
            return web.Response(status=503, text="down for maintenance")
        return web.Response(body=PNG, content_type="image/png")


@pytest.fixture
async def poison_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Stack, StaffClient]]:
    # The bridge process takes its queue limits from the environment: give up after 3
    # failures, at any age; a staff message gives up after its 3 s delivery deadline.
    monkeypatch.setenv("BRIDGE_QUEUE__MAX_ATTEMPTS", "3")
    monkeypatch.setenv("BRIDGE_QUEUE__MAX_AGE", "0")
    async with build_stack(tmp_path, channel_options={"hooks": {"delivery_deadline": 3}}) as st:
        staff = await StaffClient.login(st.synapse.base_url, st.staff_id, st.staff_password)
        try:
            yield st, staff
        finally:
            await staff.close()


@pytest.fixture
async def files() -> AsyncIterator[FlakyFiles]:
    server = FlakyFiles()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _replies_to(event_id: str) -> Any:
    def pred(e: dict[str, Any]) -> bool:
        relates = e.get("content", {}).get("m.relates_to", {})
        return relates.get("m.in_reply_to", {}).get("event_id") == event_id

    return pred


async def _ask(staff: StaffClient, room_id: str, text: str) -> str:
    event_id = await staff.send_text(room_id, text)
    answer = await staff.wait_for_event(_replies_to(event_id), room_id=room_id)
    return str(answer["content"]["body"])


def _dead_letter_id(notice: dict[str, Any]) -> str:
    found = re.search(r"dead letter (\d+)", notice["content"]["body"])
    assert found, notice["content"]["body"]
    return found.group(1)


async def test_poison_remote_event(
    poison_stack: tuple[Stack, StaffClient], files: FlakyFiles
) -> None:
    st, staff = poison_stack
    room_id, _ = await open_portal(st, staff, "poison-in", "hello")
    poison = customer_msg("poison-in", "", "poison-in-2")
    poison["attachments"] = [{"url": files.url, "filename": "dot.png"}]
    assert (await st.peer.send(st.account, poison))[0] == 200
    assert (await st.peer.send(st.account, customer_msg("poison-in", "still here")))[0] == 200

    await staff.wait_for_event(body_is("still here"), room_id=room_id, timeout=60)
    notice = await staff.wait_for_event(
        lambda e: "Not bridged" in e.get("content", {}).get("body", ""), room_id=room_id
    )
    assert notice["sender"] == st.bot_id
    assert "HTTP 503" in notice["content"]["body"] and "1 attachment" in notice["content"]["body"]
    assert files.requests == 3
    dead_id = _dead_letter_id(notice)
    listing = await _ask(staff, room_id, "!bridge deadletters")
    assert f"• {dead_id} — remote" in listing and "HTTP 503" in listing

    files.broken = False
    assert "Queued again" in await _ask(staff, room_id, f"!bridge deadletters retry {dead_id}")
    image = await staff.wait_for_event(
        lambda e: e.get("content", {}).get("msgtype") == "m.image", room_id=room_id
    )
    assert image["content"]["body"] == "dot.png"
    assert await _ask(staff, room_id, "!bridge deadletters") == "No dead letters."


async def test_poison_matrix_event(poison_stack: tuple[Stack, StaffClient]) -> None:
    st, staff = poison_stack
    room_id, _ = await open_portal(st, staff, "poison-out", "hello")
    st.peer.fail_next = [500] * 1000  # the customer's system fails every delivery
    poison = await staff.send_text(room_id, "this one fails")
    notice = await staff.wait_for_event(_replies_to(poison), room_id=room_id, timeout=60)
    assert "Not delivered" in notice["content"]["body"]
    assert "gave up after" in notice["content"]["body"]
    st.peer.fail_next.clear()
    after = await staff.send_text(room_id, "this one gets through")
    await st.peer.wait_for(lambda p: p.get("id") == after)
    dead_id = _dead_letter_id(notice)
    listing = await _ask(staff, room_id, "!bridge deadletters")
    assert f"• {dead_id} — matrix in {room_id}" in listing

    assert "Queued again" in await _ask(staff, room_id, "!bridge deadletters retry all")
    out = await st.peer.wait_for(lambda p: p.get("id") == poison)
    assert out["text"] == "staff: this one fails"
    assert not [p for p in st.peer.received if p.get("id") == poison][1:]  # once
