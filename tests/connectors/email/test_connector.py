"""The email connector against a real Dovecot, an SMTP capture and the FakeHost."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
from collections.abc import AsyncIterator
from email.message import EmailMessage

import aioimaplib
import pytest

from bridge.connector import PermanentDeliveryError, TemporaryDeliveryError
from bridge.connectors.email import EmailConnector
from bridge.connectors.email.parse import parse_mail
from bridge.events import MatrixMessage, RemoteMessage
from bridge.media import MediaFile
from bridge.types import PortalKey, RemoteChatID
from tests.contract.fake_host import FakeHost

from ..conftest import running
from .harness import FROM_ADDRESS, MAIL_USER, EmailHarness, build_mail, mail_tasks_left, read
from .parse_support import MIXED, MIXED_SECTIONS


@pytest.fixture(params=["contact"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[EmailHarness]:
    async for instance in running(EmailHarness(threading=request.param)):
        yield instance


thread_mode = pytest.mark.parametrize("harness", ["thread"], indirect=True)


_event_ids = itertools.count(1)


def staff_message(chat: str, text: str, event_id: str | None = None) -> MatrixMessage:
    return MatrixMessage(
        portal=PortalKey(EmailHarness.account_id, RemoteChatID(chat)),
        event_id=event_id or f"$e{next(_event_ids)}:example.com",
        sender="@alice:example.com",
        sender_name="Alice",
        text=text,
        msgtype="m.text",
    )


async def deliver(harness: EmailHarness, sender: str, subject: str, mid: str, **kw) -> None:
    raw = build_mail(sender, subject, f"Body of {mid}", message_id=mid, **kw)
    await harness.deliver(raw, mid)


def by_id(host: FakeHost, mid: str) -> RemoteMessage:
    (event,) = [e for e in host.events if getattr(e, "message_id", None) == mid]
    assert isinstance(event, RemoteMessage)
    return event


async def test_contact_mode_one_chat_per_sender(
    harness: EmailHarness, connector: EmailConnector, host: FakeHost
) -> None:
    anna = harness.address("anna")
    await deliver(harness, anna, "Order 4711", "a1@customer.test")
    await deliver(harness, anna, "Invoice question", "a2@customer.test")
    assert by_id(host, "a1@customer.test").chat.id == anna
    assert by_id(host, "a2@customer.test").chat.id == anna


@thread_mode
async def test_thread_mode_replies_and_other_senders(
    harness: EmailHarness, connector: EmailConnector, host: FakeHost
) -> None:
    anna, ben = harness.address("anna"), harness.address("ben")
    await deliver(harness, anna, "Order 4711", "t1@customer.test")
    chat = by_id(host, "t1@customer.test").chat.id
    assert chat == f"{anna}/t1@customer.test"
    await deliver(
        harness, anna, "Re: Order 4711", "t2@customer.test",
        in_reply_to="t1@customer.test", references=["t1@customer.test"],
    )  # fmt: skip
    assert by_id(host, "t2@customer.test").chat.id == chat
    await deliver(
        harness, ben, "Re: Order 4711", "t3@customer.test",
        in_reply_to="t1@customer.test", references=["t1@customer.test"],
    )  # fmt: skip
    assert by_id(host, "t3@customer.test").chat.id == f"{ben}/t3@customer.test"
    await deliver(harness, anna, "Something else", "t4@customer.test")
    assert by_id(host, "t4@customer.test").chat.id == f"{anna}/t4@customer.test"


async def test_last_uid_persisted_nothing_repeated(
    harness: EmailHarness, connector: EmailConnector, host: FakeHost
) -> None:
    anna = harness.address("anna")
    await deliver(harness, anna, "One", "u1@customer.test")
    await deliver(harness, anna, "Two", "u2@customer.test")
    assert host.data.get("last_uid", 0) >= 2 and host.data.get("uidvalidity")
    await connector.stop()
    async with FakeHost(harness.account_id) as second:
        second.data = dict(host.data)
        again = harness.make_connector(second)
        await again.start()
        try:
            await deliver(harness, anna, "Three", "u3@customer.test")
        finally:
            await again.stop()
        assert [e.message_id for e in second.events] == ["u3@customer.test"]  # type: ignore[attr-defined]
        assert second.duplicates == []


async def test_download_attachment_and_original(
    harness: EmailHarness, connector: EmailConnector, host: FakeHost
) -> None:
    data = b"%PDF-1.4\n" + bytes(range(256)) * 4
    raw = build_mail(
        harness.address("anna"), "Invoice", "Attached.", message_id="d1@customer.test",
        attachment=(data, "application/pdf", "invoice.pdf"),
    )  # fmt: skip
    await harness.deliver(raw, "d1@customer.test")
    event = by_id(host, "d1@customer.test")
    files = {a.filename: a for a in event.attachments}
    assert set(files) == {"invoice.pdf", "original.eml"}
    content, mimetype = await connector.download_attachment(files["invoice.pdf"])
    assert (await read(content), mimetype) == (data, "application/pdf")
    content, mimetype = await connector.download_attachment(files["original.eml"])
    assert mimetype == "message/rfc822"
    assert (await read(content)).replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Each IMAP ``UID FETCH`` the connector sends: its items and the bytes it got back."""
    seen: list[tuple[str, int]] = []
    original = aioimaplib.IMAP4.uid

    async def uid(self: aioimaplib.IMAP4, command: str, *args: str, **kw: object) -> object:
        response = await original(self, command, *args, **kw)
        if command.lower() == "fetch":
            size = sum(len(line) for line in response.lines if isinstance(line, bytearray))
            seen.append((args[-1], size))
        return response

    monkeypatch.setattr(aioimaplib.IMAP4, "uid", uid)
    return seen


@pytest.mark.parametrize("encoding", ["base64", "quoted-printable"])
async def test_a_large_attachment_is_fetched_alone_in_ranges(
    harness: EmailHarness,
    connector: EmailConnector,
    host: FakeHost,
    fetches: list[tuple[str, int]],
    encoding: str,
) -> None:
    """A several-MB attachment arrives byte-identical, fetched as its own body part in ranges
    of at most 1 MiB: the mail is never fetched whole for it."""
    data = random.Random(7).randbytes(3 * 1024 * 1024 + 17)
    if encoding == "quoted-printable":
        data = bytes(random.Random(8).choice(b"abc =\t\xe9\n") for _ in range(1024 * 1024))
    msg = EmailMessage()
    msg["From"] = harness.address("anna")
    msg["To"] = FROM_ADDRESS
    msg["Subject"] = "Big"
    msg["Message-ID"] = f"<big-{encoding}@customer.test>"
    msg.set_content("See the log.")
    msg.add_attachment(data, maintype="application", subtype="octet-stream",
                       filename="big.bin", cte=encoding)  # fmt: skip
    msg.add_attachment(b"small", maintype="text", subtype="plain", filename="note.txt")
    raw = bytes(msg)
    await harness.deliver(raw, f"big-{encoding}@customer.test")
    event = by_id(host, f"big-{encoding}@customer.test")
    files = {a.filename: a for a in event.attachments}
    fetches.clear()
    content, mimetype = await connector.download_attachment(files["big.bin"])
    assert isinstance(content, MediaFile) and content.size == len(data)
    assert (await read(content), mimetype) == (data, "application/octet-stream")
    assert fetches and all(items.startswith("(BODY.PEEK[2]<") for items, _ in fetches)
    assert all(size <= 1024 * 1024 for _, size in fetches)
    assert len(fetches) > 1  # in ranges
    fetches.clear()
    content, _ = await connector.download_attachment(files["note.txt"])
    assert await read(content) == b"small"
    assert [items for items, _ in fetches] == ["(BODY.PEEK[3]<0.1048576>)"]
    fetches.clear()
    content, mimetype = await connector.download_attachment(files["original.eml"])
    assert mimetype == "message/rfc822"
    assert isinstance(content, MediaFile)
    assert (await read(content)).replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
    assert fetches and all(items.startswith("(BODY.PEEK[]<") for items, _ in fetches)
    assert all(size <= 1024 * 1024 for _, size in fetches)


async def test_a_part_the_server_reads_otherwise_comes_from_the_whole_mail(
    harness: EmailHarness,
    connector: EmailConnector,
    host: FakeHost,
    fetches: list[tuple[str, int]],
) -> None:
    """A part whose fetched bytes differ from what was parsed (here: another section asked
    for) is not handed over as it came: the whole mail is read and the parsed part served."""
    data = b"%PDF-1.4\n" + bytes(range(256)) * 4
    raw = build_mail(
        harness.address("anna"), "Invoice", "Attached.", message_id="w1@customer.test",
        attachment=(data, "application/pdf", "invoice.pdf"),
    )  # fmt: skip
    await harness.deliver(raw, "w1@customer.test")
    event = by_id(host, "w1@customer.test")
    (pdf,) = [a for a in event.attachments if a.filename == "invoice.pdf"]
    wrong = dataclasses.replace(pdf, extra={**pdf.extra, "section": "1"})
    fetches.clear()
    content, mimetype = await connector.download_attachment(wrong)
    assert (await read(content), mimetype) == (data, "application/pdf")
    assert [items for items, _ in fetches] == ["(BODY.PEEK[1]<0.1048576>)", "(BODY.PEEK[])"]


@pytest.mark.parametrize(
    ("code", "error"), [(451, TemporaryDeliveryError), (550, PermanentDeliveryError)]
)
async def test_smtp_failures(
    harness: EmailHarness,
    connector: EmailConnector,
    host: FakeHost,
    code: int,
    error: type[Exception],
) -> None:
    anna = harness.address("anna")
    await deliver(harness, anna, "Order", "f1@customer.test")
    harness.smtp.fail_next(1, code)
    with pytest.raises(error) as caught:
        await connector.send_message(staff_message(anna, "Reply"))
    assert str(code) in caught.value.reason  # type: ignore[attr-defined]
    if code == 451:
        assert not isinstance(caught.value, PermanentDeliveryError)
    else:
        assert not isinstance(caught.value, TemporaryDeliveryError)
    assert harness.smtp.messages == []


@pytest.mark.parametrize("harness", ["contact", "thread"], indirect=True)
async def test_reply_is_threaded(
    harness: EmailHarness, connector: EmailConnector, host: FakeHost
) -> None:
    anna = harness.address("anna")
    await deliver(harness, anna, "Order 4711", "r1@customer.test", name="Anna Kunde")
    await deliver(
        harness, anna, "Re: Order 4711", "r2@customer.test", name="Anna Kunde",
        in_reply_to="r1@customer.test", references=["r1@customer.test"],
    )  # fmt: skip
    chat = by_id(host, "r2@customer.test").chat.id
    sent = await connector.send_message(staff_message(chat, "It ships tomorrow."))
    out = (await harness.smtp.wait_for()).message
    assert out["Subject"] == "Re: Order 4711"
    assert out["In-Reply-To"] == "<r2@customer.test>"
    assert out["References"].split() == ["<r1@customer.test>", "<r2@customer.test>"]
    assert out["Message-ID"] == f"<{sent.message_id}>"
    (sender,) = out["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Alice (ACME Support)", FROM_ADDRESS)
    (to,) = out["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Anna Kunde", anna)
    assert out.get_body(("plain",)).get_content().strip() == "It ships tomorrow."
    assert harness.smtp.messages[0].auth_login == MAIL_USER


async def test_an_automatic_reply_is_marked_so(
    harness: EmailHarness, connector: EmailConnector, host: FakeHost
) -> None:
    """RFC 3834: what the bridge sends by itself (a welcome) is marked, so the customer's
    own auto-responder does not answer it; a staff reply is not."""
    anna = harness.address("anna")
    await deliver(harness, anna, "Hello", "auto1@customer.test")
    chat = by_id(host, "auto1@customer.test").chat.id
    welcome = dataclasses.replace(staff_message(chat, "Welcome!"), automatic=True)
    await connector.send_message(welcome)
    assert (await harness.smtp.wait_for()).message["Auto-Submitted"] == "auto-replied"
    await connector.send_message(staff_message(chat, "Personally: hello"))
    await harness.smtp.wait_for(lambda m: "Personally" in str(m.message))
    assert harness.smtp.messages[-1].message["Auto-Submitted"] is None


async def test_a_reply_sent_again_keeps_its_message_id(
    harness: EmailHarness, connector: EmailConnector, host: FakeHost
) -> None:
    """After a crash the core sends an unconfirmed reply again: the same Matrix event gives the
    same Message-ID, so mail systems can recognise the repeat; another event another one."""
    anna = harness.address("anna")
    await deliver(harness, anna, "Order 4711", "k1@customer.test")
    chat = by_id(host, "k1@customer.test").chat.id
    first = await connector.send_message(staff_message(chat, "On its way.", "$same:example.com"))
    again = await connector.send_message(staff_message(chat, "On its way.", "$same:example.com"))
    other = await connector.send_message(staff_message(chat, "Anything else?"))
    ids = [str(m.message["Message-ID"]) for m in harness.smtp.messages]
    assert ids[0] == ids[1] == f"<{first.message_id}>" == f"<{again.message_id}>"
    assert ids[2] == f"<{other.message_id}>" != ids[0]


async def test_reconnect_backoff_starts_over_after_a_working_session(
    harness: EmailHarness, host: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failed logins back off 1, 2, 4 s...; a session that worked and then broke (a server
    restart) is retried after 1 s again, not after the backoff of an outage long past."""
    connector = harness.make_connector(host)
    outcomes = iter([False, False, False, True, False, True])  # True: logged in, then lost
    delays: list[float] = []

    async def read_mailbox() -> None:
        connector._logged_in = next(outcomes)
        raise ConnectionError("lost")

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 6:
            raise asyncio.CancelledError

    monkeypatch.setattr(connector, "_read_mailbox", read_mailbox)
    monkeypatch.setattr("bridge.connectors.email.connector.asyncio.sleep", sleep)
    with pytest.raises(asyncio.CancelledError):
        await connector._run()
    assert delays == [1.0, 2.0, 4.0, 1.0, 2.0, 1.0]


async def test_stop_in_idle_leaves_no_task_behind(harness: EmailHarness, host: FakeHost) -> None:
    """Stopped while the mailbox waits in IDLE, the connector leaves no IMAP task pending
    (asyncio would log "Task was destroyed but it is pending" when it is collected)."""
    connector = harness.make_connector(host)
    before = set(asyncio.all_tasks())
    await connector.start()
    await asyncio.sleep(0.5)  # logged in, in IDLE
    await connector.stop()
    left = mail_tasks_left(before)
    assert not left, left


async def test_nested_parts_are_fetched_by_their_imap_section(
    harness: EmailHarness,
    connector: EmailConnector,
    host: FakeHost,
    fetches: list[tuple[str, int]],
) -> None:
    """The sections recorded when a mail is parsed are the server's: each attachment of a
    nested mail comes from its own part (a forwarded mail, which the parser re-serialises, is
    the one read from the whole mail)."""
    raw = MIXED.replace("a@example.com", harness.address("anna")).encode()
    await harness.deliver(raw, "mixed@example.com")
    event = by_id(host, "mixed@example.com")
    expected = [p.data for p in parse_mail(raw).attachments]
    shown = event.attachments[: len(expected)]
    for attachment, data, section in zip(shown, expected, MIXED_SECTIONS, strict=True):
        fetches.clear()
        content, _ = await connector.download_attachment(attachment)
        assert await read(content) == data
        if attachment.mimetype != "message/rfc822":
            assert [items for items, _ in fetches] == [f"(BODY.PEEK[{section}]<0.1048576>)"]


async def test_a_part_of_a_mail_gone_from_the_mailbox_is_a_permanent_error(
    harness: EmailHarness, connector: EmailConnector, host: FakeHost
) -> None:
    raw = build_mail(
        harness.address("anna"), "Invoice", "Attached.", message_id="gone@customer.test",
        attachment=(b"%PDF-1.4 gone", "application/pdf", "gone.pdf"),
    )  # fmt: skip
    await harness.deliver(raw, "gone@customer.test")
    files = {a.filename: a for a in by_id(host, "gone@customer.test").attachments}
    maildir = harness.dovecot.maildir(MAIL_USER)
    for path in [*maildir.glob("cur/*"), *maildir.glob("new/*")]:
        path.unlink()
    for name in ("gone.pdf", "original.eml"):
        with pytest.raises(PermanentDeliveryError, match="no longer in the mailbox"):
            await connector.download_attachment(files[name])


async def test_downloads_survive_a_server_restart_between_them(
    harness: EmailHarness, connector: EmailConnector, host: FakeHost
) -> None:
    """The download session kept open between attachments is replaced when the server
    dropped it."""
    data = b"%PDF-1.4\n" + bytes(range(256))
    raw = build_mail(
        harness.address("anna"), "Invoice", "Attached.", message_id="r1@customer.test",
        attachment=(data, "application/pdf", "invoice.pdf"),
    )  # fmt: skip
    await harness.deliver(raw, "r1@customer.test")
    files = {a.filename: a for a in by_id(host, "r1@customer.test").attachments}
    assert await read((await connector.download_attachment(files["invoice.pdf"]))[0]) == data
    await asyncio.to_thread(harness.dovecot.restart)
    assert await read((await connector.download_attachment(files["invoice.pdf"]))[0]) == data


async def test_a_mail_arriving_while_the_download_session_is_open_is_found(
    harness: EmailHarness, connector: EmailConnector, host: FakeHost
) -> None:
    """The download session stays open between attachments; a mail that arrived after it
    selected the folder is unknown to it until it looks again, which is no reason to call
    the mail gone."""
    first = build_mail(
        harness.address("anna"), "One", "Attached.", message_id="one@customer.test",
        attachment=(b"%PDF-1.4 one", "application/pdf", "one.pdf"),
    )  # fmt: skip
    await harness.deliver(first, "one@customer.test")
    files = {a.filename: a for a in by_id(host, "one@customer.test").attachments}
    content, _ = await connector.download_attachment(files["one.pdf"])  # opens the session
    assert await read(content) == b"%PDF-1.4 one"
    second = build_mail(
        harness.address("anna"), "Two", "Attached.", message_id="two@customer.test",
        attachment=(b"%PDF-1.4 two", "application/pdf", "two.pdf"),
    )  # fmt: skip
    await harness.deliver(second, "two@customer.test")
    files = {a.filename: a for a in by_id(host, "two@customer.test").attachments}
    content, _ = await connector.download_attachment(files["two.pdf"])
    assert await read(content) == b"%PDF-1.4 two"
    content, _ = await connector.download_attachment(files["original.eml"])
    assert b"two@customer.test" in await read(content)
