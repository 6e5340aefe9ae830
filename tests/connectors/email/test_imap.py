"""The IMAP session against a real Dovecot: no task left behind, whatever state it is stopped
in, and no new-mail notice lost between two commands."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bridge.connectors.email.config import ServerConfig
from bridge.connectors.email.imap import open_mailbox
from bridge.tasks import cancel_and_wait
from tests.contract.fake_host import FakeHost

from ..conftest import running
from .harness import MAIL_USER, EmailHarness, build_mail


@pytest.fixture
async def harness() -> AsyncIterator[EmailHarness]:
    async for instance in running(EmailHarness()):
        yield instance


def server(harness: EmailHarness, host: FakeHost) -> ServerConfig:
    config = harness.make_connector(host).config.imap
    assert config is not None
    return config


async def test_stopped_before_idle_is_acknowledged_leaves_no_task(
    harness: EmailHarness, host: FakeHost
) -> None:
    """Stopped while IDLE is sent but not yet acknowledged by the server (aioimaplib's
    ``idle_start`` then holds two tasks of its own), nothing is left pending."""
    config = server(harness, host)
    sent = asyncio.Event()

    async def read() -> None:
        async with open_mailbox(config, "INBOX") as box:
            never = asyncio.Event()

            async def no_ack() -> None:
                sent.set()
                await never.wait()

            box.client.protocol.wait_for_idle_response = no_ack  # type: ignore[method-assign]
            await box.wait(600, 600)

    before = set(asyncio.all_tasks())
    task = asyncio.create_task(read())
    await asyncio.wait_for(sent.wait(), 20)
    await cancel_and_wait([task])
    left = [t for t in set(asyncio.all_tasks()) - before if not t.done()]
    assert not left, left
