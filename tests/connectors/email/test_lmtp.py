"""Mail pushed over LMTP by the company's MTA: per-recipient replies, ``250`` only once the
host has the mail, ``451`` (and a retry that is not doubled) when it cannot, and the envelope
sender kept as ``Return-Path``."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from bridge.connector import StateKind
from bridge.connectors.email import EmailConnector
from bridge.events import RemoteMessage
from tests.contract.fake_host import FakeHost
from tests.infra.lmtp_client import push_mail

from ..conftest import running
from .harness import EmailLmtpHarness, build_mail, read


@pytest.fixture
async def harness() -> AsyncIterator[EmailLmtpHarness]:
    async for instance in running(EmailLmtpHarness()):
        yield instance


def mail(harness: EmailLmtpHarness, mid: str) -> bytes:
    return build_mail(harness.address("pat"), "Order", f"Body of {mid}", message_id=mid)


async def push(harness: EmailLmtpHarness, raw: bytes, **kw: object) -> list[int]:
    replies = await push_mail("127.0.0.1", harness.lmtp_port, raw, **kw)  # type: ignore[arg-type]
    return [code for code, _ in replies]


async def test_listening_is_the_connected_state(connector: EmailConnector, host: FakeHost) -> None:
    assert connector.state.kind == StateKind.CONNECTED
    assert str(connector.lmtp.port if connector.lmtp else "") in (connector.state.message or "")


async def test_one_reply_per_recipient_after_the_host_has_the_mail(
    harness: EmailLmtpHarness, connector: EmailConnector, host: FakeHost
) -> None:
    rcpts = ("support@company.test", "sales@company.test", "info@company.test")
    assert await push(harness, mail(harness, "m1@customer.test"), recipients=rcpts) == [250] * 3
    # The 250s came after the event was recorded, not before.
    (event,) = host.events
    assert isinstance(event, RemoteMessage) and event.message_id == "m1@customer.test"
    assert event.text == "Body of m1@customer.test"


async def test_only_the_configured_recipients_are_accepted(
    harness: EmailLmtpHarness, connector: EmailConnector, host: FakeHost
) -> None:
    rcpts = ("Sales@Company.test", "someone@company.test", "x@elsewhere.test")
    assert await push(harness, mail(harness, "r1@customer.test"), recipients=rcpts) == [
        250, 550, 550,
    ]  # fmt: skip
    assert [e.message_id for e in host.events] == ["r1@customer.test"]  # type: ignore[attr-defined]
    nobody = ("someone@company.test",)
    assert await push(harness, mail(harness, "r2@customer.test"), recipients=nobody) == [550]
    assert len(host.events) == 1


async def test_recipients_default_to_the_from_address(
    harness: EmailLmtpHarness, host: FakeHost
) -> None:
    config = harness.valid_config()
    del config["lmtp"]["recipients"]
    connector = EmailConnector(
        harness.account_id, EmailConnector.parse_config(config, harness.config_key), host
    )
    await connector.start()
    try:
        replies = await push(
            harness, mail(harness, "r3@customer.test"),
            recipients=("support@company.test", "sales@company.test"),
        )  # fmt: skip
    finally:
        await connector.stop()
    assert replies == [250, 550]


async def test_host_failure_is_a_temporary_reply_and_the_retry_is_not_doubled(
    harness: EmailLmtpHarness, connector: EmailConnector, host: FakeHost
) -> None:
    raw = mail(harness, "m2@customer.test")
    host.fail_next_events(1)
    rcpts = ("support@company.test", "sales@company.test")
    assert await push(harness, raw, recipients=rcpts) == [451, 451]
    assert host.events == []
    assert await push(harness, raw) == [250]  # the MTA tries again
    assert await push(harness, raw) == [250]  # and again, its 250 having been lost
    assert [e.message_id for e in host.events] == ["m2@customer.test"]  # type: ignore[attr-defined]
    assert len(host.duplicates) == 1


async def test_envelope_sender_becomes_return_path(
    harness: EmailLmtpHarness, connector: EmailConnector, host: FakeHost
) -> None:
    """A mail with an empty envelope sender (``MAIL FROM:<>``) is automatic: shown as a
    notice, never answered; with a sender it is an ordinary message."""
    assert await push(harness, mail(harness, "m3@customer.test"), sender="") == [250]
    assert await push(harness, mail(harness, "m4@customer.test")) == [250]
    auto, normal = host.events
    assert isinstance(auto, RemoteMessage) and isinstance(normal, RemoteMessage)
    assert auto.notice and not normal.notice


async def test_pushed_attachment_is_carried_in_the_event(
    harness: EmailLmtpHarness, connector: EmailConnector, host: FakeHost
) -> None:
    data = bytes(range(256)) * 40
    raw = build_mail(
        harness.address("pat"), "Scan", "See attached.", message_id="m5@customer.test",
        attachment=(data, "application/pdf", "scan.pdf"),
    )  # fmt: skip
    assert await push(harness, raw) == [250]
    (event,) = host.events
    assert isinstance(event, RemoteMessage)
    by_name = {a.filename: a for a in event.attachments}
    content, mimetype = await connector.download_attachment(by_name["scan.pdf"])
    assert (await read(content), mimetype) == (data, "application/pdf")
    content, mimetype = await connector.download_attachment(by_name["original.eml"])
    eml = await read(content)
    assert mimetype == "message/rfc822"
    assert eml.replace(b"\r\n", b"\n").endswith(raw.replace(b"\r\n", b"\n"))
    assert eml.startswith(b"Return-Path: <mta@example.net>\r\n")


async def test_busy_port_is_reported_in_the_state(harness: EmailLmtpHarness) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", harness.lmtp_port))
        taken.listen()
        async with FakeHost(harness.account_id) as host:
            connector = harness.make_connector(host)
            await connector.start()
            try:
                assert connector.state.kind == StateKind.DISCONNECTED
                assert "LMTP" in (connector.state.message or "")
            finally:
                await connector.stop()


async def test_line_too_long_is_refused_and_the_listener_lives(
    harness: EmailLmtpHarness, connector: EmailConnector, host: FakeHost
) -> None:
    """SMTP forbids lines over 1,000 bytes: the MTA gets a clean 500 (and bounces the mail);
    nothing is recorded and the next mail goes through."""
    replies = await push_mail("127.0.0.1", harness.lmtp_port, b"Subject: x\r\n\r\n" + b"y" * 5000)
    assert [code for code, _ in replies] == [500]
    assert host.events == []
    assert await push(harness, mail(harness, "m6@customer.test")) == [250]
    assert len(host.events) == 1
