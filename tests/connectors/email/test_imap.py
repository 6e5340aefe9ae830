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
from .harness import MAIL_USER, EmailHarness, build_mail, mail_tasks_left


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
    left = mail_tasks_left(before)
    assert not left, left


async def test_new_mail_announced_between_commands_ends_the_wait(
    harness: EmailHarness, host: FakeHost
) -> None:
    """A mail announced (``* 2 EXISTS``) outside IDLE, in another command's response or
    between commands, ends the wait at once instead of after the IDLE timeout."""
    config = server(harness, host)
    first = build_mail("a@customer.test", "One", "1", message_id="one@customer.test")
    await harness.dovecot.adeliver(MAIL_USER, first)
    async with open_mailbox(config, "INBOX") as box:
        assert await box.uids_after(0) == [1]
        second = build_mail("a@customer.test", "Two", "2", message_id="two@customer.test")
        await harness.dovecot.adeliver(MAIL_USER, second)
        # A command whose response carries the announcement (Dovecot: NOOP; other servers
        # also FETCH), or an unsolicited one between commands: aioimaplib keeps it from us.
        assert b"2 EXISTS" in (await box.client.noop()).lines
        idles: list[float] = []
        idle_start = box.client.idle_start

        async def counted(**kw: float) -> asyncio.Future[object]:
            idles.append(kw["timeout"])
            return await idle_start(**kw)

        box.client.idle_start = counted  # type: ignore[method-assign]
        async with asyncio.timeout(60):  # a hang guard: the IDLE timeout is 25 minutes
            await box.wait(idle_timeout=1500, poll_interval=1500)
        assert idles == []  # the news was known: no IDLE to wait in
        assert await box.uids_after(1) == [2]
