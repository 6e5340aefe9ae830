"""The catch-up's read of a room against a real Synapse (``MatrixSender.timeline``): the
room's events newest first in pages, as the bot; a room the bot is not in is a final answer
(nothing to catch up there), not a failure to retry."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest
import pytest_asyncio
from mautrix.appservice import AppServiceAPI
from mautrix.types import UserID

from bridge.config import load
from bridge.core.bridge import StateStore
from bridge.core.sender import MatrixSender, Refused
from tests.conftest import Stack
from tests.e2e.test_commands import _room_with_bot
from tests.infra.staff import StaffClient


@pytest_asyncio.fixture(loop_scope="session")
async def sender(stack: Stack) -> AsyncIterator[MatrixSender]:
    """The core's Matrix sender in this process, acting as the bridge bot."""
    config = load(str(stack.config_path))
    async with aiohttp.ClientSession() as session:
        api = AppServiceAPI(
            base_url=stack.synapse.base_url, bot_mxid=UserID(stack.bot_id),
            token=config.as_token, client_session=session, state_store=StateStore(),
            log=cast(Any, logging.getLogger("test.catch-up")),
        )  # fmt: skip
        yield MatrixSender(api, UserID(stack.bot_id))


async def test_a_room_is_read_back_newest_first_in_pages(
    stack: Stack, staff: StaffClient, sender: MatrixSender
) -> None:
    room = await _room_with_bot(stack, staff)
    sent = [await staff.send_text(room, f"read back {n}") for n in range(5)]
    pages, start = [], None
    while len(pages) < 10:
        page, start = await sender.timeline(room, start, 3)
        pages.append(page)
        if start is None:
            break
    assert start is None and len(pages) > 2  # to the room's beginning, 3 events a page
    assert all(len(page) <= 3 for page in pages)
    events = [e for page in pages for e in page]
    assert [e["event_id"] for e in events if e["sender"] == staff.user_id and
            e["type"] == "m.room.message"] == sent[::-1]  # fmt: skip
    assert events[-1]["type"] == "m.room.create"
    assert all(e["room_id"] == room and "origin_server_ts" in e for e in events)


async def test_a_room_the_bot_is_not_in_is_refused_for_good(
    staff: StaffClient, sender: MatrixSender
) -> None:
    room = await staff.create_room(name="staff only")
    await staff.send_text(room, "not for the bridge")
    with pytest.raises(Refused):
        await sender.timeline(room, None, 10)
