"""The connector against hostile and odd mail (real Dovecot, FakeHost): nothing a sender does
blocks the mailbox or the event loop, and nothing it accepted is dropped without a notice."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.connectors.email import EmailConnector
from bridge.connectors.email import connector as connector_module
from bridge.connectors.email.imap import Mailbox, open_mailbox
from bridge.connectors.email.parse import ParsedMail, parse_mail
from bridge.events import RemoteEvent, RemoteMessage
from tests.contract.fake_host import FakeHost, HostFailure

from ..conftest import running
from .harness import EmailHarness, build_mail, read


@pytest.fixture
async def harness() -> AsyncIterator[EmailHarness]:
    async for instance in running(EmailHarness(threading="thread")):
        yield instance


def messages(host: FakeHost) -> list[RemoteMessage]:
    return [e for e in host.events if isinstance(e, RemoteMessage)]


async def test_parsing_runs_off_the_event_loop(harness: EmailHarness, host: FakeHost) -> None:
    """While a mail is parsed the loop keeps running other tasks: here the parse can only
    finish after a ticker task on the loop ticked three times."""
    connector = harness.make_connector(host)
    ticked = threading.Event()
    ticks = 0
    threads: list[bool] = []

    def slow_parse(raw: bytes) -> ParsedMail:
        threads.append(threading.current_thread() is threading.main_thread())
        ticked.wait(10)
        return parse_mail(raw)

    async def ticker() -> None:
        nonlocal ticks
        while ticks < 3:
            await asyncio.sleep(0.01)
            ticks += 1
        ticked.set()

    raw = build_mail("anna@customer.test", "Hi", "Hello", message_id="tick@customer.test")
    original = connector_module.parse_mail
    connector_module.parse_mail = slow_parse  # type: ignore[assignment]
    try:
        task = asyncio.create_task(ticker())
        await connector._handle_mail(raw, None)
        await task
    finally:
        connector_module.parse_mail = original
    assert threads == [False]
    assert ticks == 3 and [m.message_id for m in messages(host)] == ["tick@customer.test"]


async def test_a_mail_too_slow_to_read_is_a_notice_with_the_original(
    harness: EmailHarness, host: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = harness.make_connector(host)
    connector.parse_timeout = 0.05
    release = threading.Event()

    def stuck_parse(raw: bytes) -> ParsedMail:
        release.wait(30)
        return parse_mail(raw)

    monkeypatch.setattr(connector_module, "parse_mail", stuck_parse)
    raw = build_mail("anna@customer.test", "Hi", "Hello", message_id="slow@customer.test")
    try:
        await connector._handle_mail(raw, None)
    finally:
        release.set()
    (event,) = messages(host)
    assert event.notice and "took too long" in event.text
    assert event.message_id == "slow@customer.test"
    assert [a.filename for a in event.attachments] == ["original.eml"]
    data, mimetype = await connector.download_attachment(event.attachments[0])
    assert (await read(data), mimetype) == (raw, "message/rfc822")


async def test_a_mail_that_cannot_be_handed_over_is_quarantined(
    harness: EmailHarness, host: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host refuses one mail every time: after ``MAX_ATTEMPTS`` it is bridged as a notice
    with the original attached, and the mail after it is bridged too."""
    monkeypatch.setattr(connector_module, "MAX_ATTEMPTS", 2)
    record = host.handle_remote_event
    refused: list[str] = []

    async def refuse_poison(event: RemoteEvent) -> bool:
        if isinstance(event, RemoteMessage) and "Poison" in event.text and not event.notice:
            refused.append(event.message_id)
            raise ValueError("the host cannot store this mail")
        return await record(event)

    monkeypatch.setattr(host, "handle_remote_event", refuse_poison)
    connector = harness.make_connector(host)
    poison = build_mail("eve@customer.test", "Bad", "Poison", message_id="poison@customer.test")
    await harness.push(poison)
    await connector.start()
    try:
        await harness.deliver(
            build_mail("anna@customer.test", "Fine", "Hello", message_id="fine@customer.test"),
            "fine@customer.test",
            seconds=30,
        )
    finally:
        await connector.stop()
    assert refused == ["poison@customer.test"] * 2
    first, second = messages(host)
    assert first.message_id == "poison@customer.test" and first.notice
    assert "could not be bridged" in first.text and "ValueError" in first.text
    assert first.chat.id == "eve@customer.test/poison@customer.test"
    (eml,) = first.attachments
    async with FakeHost(harness.account_id) as other:
        reader = harness.make_connector(other)
        data = await read((await reader.download_attachment(eml))[0])
    assert data.replace(b"\r\n", b"\n") == poison.replace(b"\r\n", b"\n")
    assert second.message_id == "fine@customer.test" and not second.notice
    assert host.data["last_uid"] == 2 and host.data["failures"] == {}


async def test_a_host_outage_is_not_a_quarantine(
    harness: EmailHarness, host: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the quarantine notice cannot be handed over either, the mail stays unread."""
    monkeypatch.setattr(connector_module, "MAX_ATTEMPTS", 1)
    connector = harness.make_connector(host)
    host.fail_next_events(2)
    raw = build_mail("anna@customer.test", "Hi", "Hello", message_id="out@customer.test")
    await harness.push(raw)
    assert connector.config.imap is not None
    async with open_mailbox(connector.config.imap, "INBOX") as box:
        with pytest.raises(HostFailure):
            await connector._take_uid(box, 1, {})
    assert host.events == [] and "last_uid" not in host.data


async def test_mail_without_from_is_bridged(harness: EmailHarness, host: FakeHost) -> None:
    connector = harness.make_connector(host)
    sender_only = (
        b"Sender: Bob <bob@customer.test>\nSubject: Hi\nMessage-ID: <s1@customer.test>\n\nHello\n"
    )
    reply_to = b"Reply-To: carl@customer.test\nMessage-ID: <s2@customer.test>\n\nHello\n"
    nobody = b"Subject: Who am I\nMessage-ID: <s3@customer.test>\n\nHello\n"
    for raw in (sender_only, reply_to, nobody):
        await connector._handle_mail(raw, None)
    bob, carl, unknown = messages(host)
    assert bob.chat.id == "bob@customer.test/s1@customer.test" and bob.chat.name == "Bob"
    assert carl.chat.id == "carl@customer.test/s2@customer.test"
    assert unknown.chat.id == "no-sender/s3@customer.test"
    assert unknown.chat.name == "(no sender)" and unknown.text == "Hello"


async def test_bounce_of_an_unknown_message_is_shown(
    harness: EmailHarness, host: FakeHost
) -> None:
    connector = harness.make_connector(host)
    raw = (
        b"Return-Path: <>\nFrom: MAILER-DAEMON@mx.company.test\nSubject: Undelivered\n"
        b"Message-ID: <dsn@mx.company.test>\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="d"\n\n'
        b"--d\nContent-Type: text/plain\n\nFailed.\n"
        b"--d\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n"
        b"Final-Recipient: rfc822; x@customer.test\nAction: failed\nStatus: 5.1.1\n"
        b"Original-Message-ID: <never-sent@company.test>\n"
        b"--d--\n"
    )
    await connector._handle_mail(raw, None)
    (event,) = messages(host)
    assert event.notice and "could not be delivered" in event.text
    assert event.chat.id == "mailer-daemon@mx.company.test/dsn@mx.company.test"


async def test_a_reused_message_id_with_other_content_is_bridged(
    harness: EmailHarness, host: FakeHost
) -> None:
    connector = harness.make_connector(host)
    first = build_mail("anna@customer.test", "Hi", "First", message_id="same@customer.test")
    other = build_mail("anna@customer.test", "Hi", "Second", message_id="same@customer.test")
    await connector._handle_mail(first, None)
    await connector._handle_mail(b"Received: by relay\n" + first, None)  # a real repeat
    await connector._handle_mail(other, None)
    assert len(host.duplicates) == 1
    one, two = messages(host)
    assert one.message_id == "same@customer.test" and one.text == "First"
    assert two.message_id.startswith("same@customer.test#") and two.text == "Second"
    # also when the connector restarted in between (the digest is in the portal's metadata)
    again = harness.make_connector(host)
    await again._handle_mail(first, None)
    await again._handle_mail(other, None)
    assert len(host.duplicates) == 3 and len(messages(host)) == 2


async def test_mail_without_subject_has_a_topic(harness: EmailHarness, host: FakeHost) -> None:
    connector = harness.make_connector(host)
    await connector._handle_mail(b"From: a@customer.test\nMessage-ID: <n@x>\n\nHello\n", None)
    (event,) = messages(host)
    assert event.chat.topic == "(no subject)"


async def test_attachments_of_one_mail_are_fetched_alone_in_one_session(
    harness: EmailHarness, host: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each attachment is fetched as its own body part, never the whole mail, and the
    attachments asked for one after the other share one IMAP session."""
    whole: list[int] = []
    ranges: list[tuple[int, str]] = []
    sessions: list[Mailbox] = []
    fetch, fetch_range, init = Mailbox.fetch, Mailbox.fetch_range, Mailbox.__init__

    async def counted(self: Mailbox, uid: int) -> bytes | None:
        whole.append(uid)
        return await fetch(self, uid)

    async def counted_range(
        self: Mailbox, uid: int, section: str, offset: int, length: int
    ) -> bytes | None:
        ranges.append((uid, section))
        return await fetch_range(self, uid, section, offset, length)

    def opened(self: Mailbox, *args: Any, **kw: Any) -> None:
        sessions.append(self)
        init(self, *args, **kw)

    monkeypatch.setattr(Mailbox, "fetch", counted)
    monkeypatch.setattr(Mailbox, "fetch_range", counted_range)
    monkeypatch.setattr(Mailbox, "__init__", opened)
    parts = "".join(
        f'--p\nContent-Type: text/csv\nContent-Disposition: attachment; filename="{i}.csv"\n\n'
        f"row {i}\n"
        for i in range(40)
    )
    raw = (
        "From: anna@customer.test\nMessage-ID: <many@customer.test>\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="p"\n\n' + parts + "--p--\n"
    ).encode()
    connector: EmailConnector = harness.make_connector(host)
    await connector.start()
    try:
        await harness.deliver(raw, "many@customer.test")
        (event,) = messages(host)
        assert len(event.attachments) == 41
        whole.clear()
        sessions.clear()
        for index, attachment in enumerate(event.attachments[:-1]):
            data = await read((await connector.download_attachment(attachment))[0])
            assert data.rstrip() == f"row {index}".encode()
    finally:
        await connector.stop()
    assert whole == []
    uid = ranges[0][0]
    assert ranges == [(uid, str(i)) for i in range(1, 41)]
    assert len(sessions) == 1
