"""Sender authentication: the company's server's ``Authentication-Results`` (and only its
own) shown in the room; unverified mail flagged or refused; forged bounces kept apart."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.connectors.email.auth import check_sender
from bridge.events import RemoteDeliveryFailure, RemoteMessage
from tests.contract.fake_host import FakeHost

from ..conftest import running
from .harness import EmailHarness

SERVER = "mx.company.test"


@pytest.fixture
async def harness() -> AsyncIterator[EmailHarness]:
    async for instance in running(EmailHarness(threading="thread")):
        yield instance


@pytest.mark.parametrize(
    ("results", "verdict"),
    [
        ([f"{SERVER}; dkim=pass header.d=customer.test; dmarc=pass header.from=customer.test"],
         "pass"),
        ([f"{SERVER}; spf=pass smtp.mailfrom=customer.test"], "pass"),
        ([f"{SERVER} 1; dmarc=fail (p=reject) header.from=bank.test; dkim=pass"], "fail"),
        ([f"{SERVER}; spf=softfail smtp.mailfrom=x.test; dkim=none"], "fail"),
        ([f"{SERVER}; dmarc=none; dkim=pass"], "pass"),
        ([f"{SERVER}; none"], "none"),
        ([], "none"),
        # what the sender wrote into the mail: another server's id, or ours below our own
        (["evil.test; dmarc=pass; dkim=pass; spf=pass"], "none"),
        ([f"{SERVER}; dmarc=fail", f"{SERVER}; dmarc=pass"], "fail"),
        ([f"(comment) {SERVER.upper()}; (spf=pass) dkim=fail"], "fail"),
    ],
)  # fmt: skip
def test_check_sender(results: list[str], verdict: str) -> None:
    assert check_sender(results, SERVER).verdict == verdict


def raw_mail(mid: str, results: str | None, forged: str = f"{SERVER}; dmarc=pass") -> bytes:
    """A mail with the sender's own (``forged``) header, below our server's (``results``)."""
    sender = "anna@customer.test"
    head = f"Authentication-Results: {results}\n" if results else ""
    return (
        f"Return-Path: <{sender}>\n{head}Authentication-Results: {forged}\n"
        f"From: Anna <{sender}>\nSubject: Invoice\nMessage-ID: <{mid}>\n\nPay now.\n"
    ).encode()


def messages(host: FakeHost) -> list[RemoteMessage]:
    return [e for e in host.events if isinstance(e, RemoteMessage)]


async def test_unverified_mail_is_flagged(harness: EmailHarness, host: FakeHost) -> None:
    connector = harness.make_connector(host, authserv_id=SERVER)
    await connector._handle_mail(raw_mail("ok@customer.test", f"{SERVER}; dmarc=pass"), None)
    await connector._handle_mail(raw_mail("bad@customer.test", f"{SERVER}; dmarc=fail"), None)
    # only a header the sender wrote, of another server: not trusted
    forged = "mx.company.test.evil.test; dmarc=pass"
    await connector._handle_mail(raw_mail("own@customer.test", None, forged), None)
    ok, bad, own = messages(host)
    assert ok.text == "Pay now."
    assert bad.text.startswith("⚠️ Sender not verified by mx.company.test (dmarc=fail)")
    assert bad.text.endswith("Pay now.") and not bad.notice
    assert own.text.startswith("⚠️ Sender not verified")


async def test_unverified_mail_can_be_refused(harness: EmailHarness, host: FakeHost) -> None:
    connector = harness.make_connector(host, authserv_id=SERVER, unauthenticated="refuse")
    await connector._handle_mail(raw_mail("bad@customer.test", f"{SERVER}; dkim=fail"), None)
    (event,) = messages(host)
    assert event.notice and event.chat.id == "unverified/bad@customer.test"
    assert "did not verify its sender (dkim=fail)" in event.text
    assert [a.filename for a in event.attachments] == ["original.eml"]


async def test_without_authserv_id_nothing_is_flagged(
    harness: EmailHarness, host: FakeHost
) -> None:
    connector = harness.make_connector(host)
    await connector._handle_mail(raw_mail("x@customer.test", f"{SERVER}; dmarc=fail"), None)
    (event,) = messages(host)
    assert event.text == "Pay now."


def dsn(original: str, recipient: str) -> bytes:
    return (
        "Return-Path: <>\nFrom: MAILER-DAEMON@mx.elsewhere.test\nSubject: Undelivered\n"
        f"Message-ID: <dsn-{original}>\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="d"\n\n'
        "--d\nContent-Type: text/plain\n\nFailed.\n"
        "--d\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n"
        f"Final-Recipient: rfc822; {recipient}\nAction: failed\nStatus: 5.1.1\n"
        "--d\nContent-Type: text/rfc822-headers\n\n"
        f"Message-ID: <{original}>\n--d--\n"
    ).encode()


async def test_a_forged_bounce_posts_no_failure(harness: EmailHarness, host: FakeHost) -> None:
    connector = harness.make_connector(host)
    await connector._handle_mail(raw_mail("first@customer.test", None), None)
    (first,) = messages(host)
    ours = "bridge.0123@company.test"
    # the bridge's reply, as the core records it
    host.events.append(RemoteMessage(chat=first.chat, sender=first.sender, message_id=ours))
    # about the customer's own mail (not one the bridge sent), for another recipient, and
    # finally a real one
    for raw in (
        dsn("first@customer.test", "anna@customer.test"),
        dsn(ours, "someone@else.test"),
        dsn(ours, "Anna@customer.test"),
    ):
        await connector._handle_mail(raw, None)
    *_, customer_id, other, real = host.events
    assert isinstance(customer_id, RemoteMessage) and customer_id.notice
    assert isinstance(other, RemoteMessage) and other.notice
    assert other.chat.id != first.chat.id and customer_id.chat.id != first.chat.id
    assert isinstance(real, RemoteDeliveryFailure)
    assert real.chat.id == first.chat.id and real.message_id == ours
