"""The email double opt-in end to end: a real Synapse, Dovecot and SMTP server, the bridge's
own listener. A customer mails a list's keyword: the confirmation goes in their conversation
(staff see it); then they sign up for another list on the form: the confirmation mail arrives,
opening its link changes nothing, pressing Confirm confirms, and the unsubscribe link on the
thank-you page withdraws; STOP above a signature withdraws too. On SQLite and PostgreSQL;
the ledger is read from the bridge's database (SQLite read-only)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
import pytest_asyncio

from bridge.config import load
from tests.conftest import Stack, backend_database, build_stack
from tests.e2e.helpers import join_invite_named
from tests.e2e.test_email import _body_has, _deliver, mail
from tests.e2e.test_inbox_transcript import staff
from tests.infra.staff import StaffClient

__all__ = ["staff"]  # the staff client fixture, on this module's stack

CUSTOMER = "carla@customer.test"
FEATURES = {
    "consent": {
        "lists": {
            "newsletter": {"title": "Newsletter", "version": "2026-01",
                           "text": "Yes, send me the <monthly> newsletter.", "accounts": ["mail"]},
            "order-updates": {"title": "Order updates", "version": "1",
                              "text": "Yes, mail me about my orders.", "accounts": ["mail"],
                              "keywords": ["ORDERS"]},
        }
    }
}  # fmt: skip
LINK = re.compile(r"(http://[^\s\"<>]+/features/consent/(?:confirm|unsubscribe)/[^\s\"<>/]+)")


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=["sqlite", "postgres"])
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    db_url = backend_database(request, "consent_email")
    # Contact threading: the customer's conversation is their address, the chat the bridge
    # mails a confirmation to.
    async with build_stack(
        tmp_path_factory.mktemp("consent-email"), features=FEATURES, db_url=db_url,
        channel_options={"mail": {"threading": "contact"}},
    ) as st:  # fmt: skip
        yield st


async def steps(stack: Stack, list_: str) -> list[str]:
    """The ledger's steps of ``list_`` on the mail account, in order."""
    url = load(str(stack.config_path)).db_url
    query = "SELECT step FROM consent_event WHERE list = $1 AND account = 'mail' ORDER BY id"
    if url.startswith("postgres"):
        db = await asyncpg.connect(url)
        try:
            return [row[0] for row in await db.fetch(query, list_)]
        finally:
            await db.close()
    with sqlite3.connect(f"file:{url.removeprefix('sqlite:')}?mode=ro", uri=True) as lite:
        return [row[0] for row in lite.execute(query.replace("$1", "?"), (list_,))]


async def test_a_keyword_mail_asks_in_the_conversation(stack: Stack, staff: StaffClient) -> None:
    raw, _ = mail(CUSTOMER, "Hello", "ORDERS\n\nCarla", name="Carla Kundin")
    await _deliver(stack, raw)
    room_id = await join_invite_named(staff, "Carla Kundin")
    # The confirmation is a bridge message in the room, and a mail to the customer.
    await staff.wait_for_event(_body_has("Please confirm"), room_id=room_id, timeout=60)
    sent = await stack.smtp.wait_for(lambda m: m.rcpt_tos == [CUSTOMER], timeout=30)
    text = sent.message.get_body(("plain",)).get_content()
    assert "Yes, mail me about my orders." in text
    assert await steps(stack, "order-updates") == ["requested"]
    [link] = LINK.findall(text)
    async with aiohttp.ClientSession() as http:
        async with http.post(link) as resp:
            assert resp.status == 200 and "you are subscribed" in await resp.text()
    assert await steps(stack, "order-updates") == ["requested", "confirmed"]


async def test_the_form_link_and_unsubscribe(stack: Stack) -> None:
    """Someone who never wrote to the company signs up on the form: the confirmation is a new
    mail to their address."""
    reader = "new.reader@example.org"
    base = f"{stack.bridge.url}/features/consent"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/form/newsletter") as resp:
            page = await resp.text()
            assert resp.status == 200 and "Yes, send me the &lt;monthly&gt; newsletter." in page
        count = len(stack.smtp.messages)
        async with http.post(
            f"{base}/subscribe/newsletter", data={"email": reader.upper()},
            headers={"Accept": "application/json"},
        ) as resp:  # fmt: skip
            assert resp.status == 200 and (await resp.json())["ok"] is True
        sent = await stack.smtp.wait_for(
            lambda m: m.rcpt_tos == [reader] and m in stack.smtp.messages[count:], timeout=30
        )
        text = sent.message.get_body(("plain",)).get_content()
        assert "Yes, send me the <monthly> newsletter." in text
        [link] = LINK.findall(text)
        assert await steps(stack, "newsletter") == ["requested"]
        async with http.get(link) as resp:  # a mail scanner opens it: nothing changes
            assert resp.status == 200 and '<button type="submit"' in await resp.text()
        assert await steps(stack, "newsletter") == ["requested"]
        async with http.post(link, data={"go": "1"}) as resp:
            page = await resp.text()
            assert resp.status == 200 and "Thank you, you are subscribed" in page
        assert await steps(stack, "newsletter") == ["requested", "confirmed"]
        async with http.post(link, data={"go": "1"}) as resp:  # used again: nothing new
            assert "You had confirmed already" in await resp.text()
        [unsubscribe] = {u for u in LINK.findall(page) if "/unsubscribe/" in u}
        async with http.get(unsubscribe) as resp:
            assert resp.status == 200 and "Unsubscribe" in await resp.text()
        assert await steps(stack, "newsletter") == ["requested", "confirmed"]
        async with http.post(unsubscribe, data="List-Unsubscribe=One-Click", headers={
            "Content-Type": "application/x-www-form-urlencoded"}) as resp:  # fmt: skip
            assert resp.status == 200
    assert await steps(stack, "newsletter") == ["requested", "confirmed", "withdrawn"]
    assert await steps(stack, "order-updates") == ["requested", "confirmed"]  # untouched


async def test_stop_over_a_signature_withdraws(stack: Stack) -> None:
    """Opting out by mail is as easy as opting in: STOP on the first line, above a mail
    client's signature, withdraws what Carla confirmed by keyword, with one confirmation."""
    count = len(stack.smtp.messages)
    raw, _ = mail(CUSTOMER, "Re: Hello", "STOP\n\nSent from my iPhone", name="Carla Kundin")
    await _deliver(stack, raw)
    sent = await stack.smtp.wait_for(
        lambda m: m.rcpt_tos == [CUSTOMER] and m in stack.smtp.messages[count:], timeout=30
    )
    assert "You are unsubscribed" in sent.message.get_body(("plain",)).get_content()
    assert await steps(stack, "order-updates") == ["requested", "confirmed", "withdrawn"]
