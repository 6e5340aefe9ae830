"""Smoke tests for the mail test infrastructure: a real Dovecot (IMAP) and a capturing SMTP
server on loopback, driven with the clients the email connector uses (aioimaplib,
aiosmtplib)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import ssl
import tempfile
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import aioimaplib
import aiosmtplib
import pytest
from aioimaplib.aioimaplib import Command

from tests.infra.dovecot import DovecotError, DovecotServer
from tests.infra.ports import port_is_open
from tests.infra.smtp_capture import SmtpCapture

USER, PASSWORD = "alice", "alice-pw"
SMTP_LOGIN, SMTP_PASSWORD = "bridge", "smtp-secret"


def raw_mail(subject: str, body: str = "Hello from the test.\n") -> bytes:
    return (
        f"From: Customer <customer@example.org>\r\nTo: Support <{USER}@example.com>\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '-')}@example.org>\r\n"
        f"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\n{body}"
    ).encode()


def response_code(lines: list[bytes | bytearray], name: str) -> int:
    """The number in an ``[NAME n]`` response code of a SELECT/EXAMINE response."""
    for line in lines:
        match = re.search(rb"\[" + name.encode() + rb" (\d+)\]", bytes(line))
        if match:
            return int(match.group(1))
    raise AssertionError(f"no [{name} n] in {lines!r}")


async def imap_login(server: DovecotServer) -> aioimaplib.IMAP4:
    client = aioimaplib.IMAP4(host=server.host, port=server.imap_port, timeout=10)
    await client.wait_hello_from_server()
    response = await client.login(USER, PASSWORD)
    assert response.result == "OK", response
    return client


async def imap_logout(client: aioimaplib.IMAP4) -> None:
    if client.protocol.state != aioimaplib.LOGOUT and client.protocol.transport is not None:
        if not client.protocol.transport.is_closing():
            await client.logout()


async def imap_starttls(
    client: aioimaplib.IMAP4, context: ssl.SSLContext, server_hostname: str
) -> None:
    """aioimaplib (2.0.x) has no STARTTLS method: send the command, then upgrade the
    transport in place with ``loop.start_tls`` and refresh the capabilities."""
    proto = client.protocol
    response = await proto.execute(Command("STARTTLS", proto.new_tag(), loop=proto.loop))
    assert response.result == "OK", response
    loop = asyncio.get_running_loop()
    tls_transport = await loop.start_tls(
        proto.transport, proto, context, server_hostname=server_hostname
    )
    assert tls_transport is not None
    proto.transport = tls_transport
    await proto.capability()


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    server = DovecotServer()
    server.add_user(USER, PASSWORD)  # before start: no passwd-file reload wait
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpCapture]:
    with SmtpCapture(credentials={SMTP_LOGIN: SMTP_PASSWORD}) as server:
        yield server


@pytest.fixture
def captured(smtp: SmtpCapture) -> Iterator[SmtpCapture]:
    smtp.clear()
    smtp.clear_failures()
    yield smtp
    smtp.clear_failures()


def outgoing(subject: str, to: str = "customer@example.org") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "support@example.com"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("A reply from staff.\n")
    return msg


# ---------------------------------------------------------------------------- Dovecot


def test_dovecot_started_quickly_on_loopback(dovecot: DovecotServer) -> None:
    assert dovecot.running
    assert dovecot.start_seconds is not None and dovecot.start_seconds < 10
    assert port_is_open(dovecot.imap_port) and port_is_open(dovecot.imaps_port)
    assert dovecot.config_path.read_text().count(f"listen = {dovecot.host}") == 1
    assert "/etc/dovecot" not in dovecot.config_path.read_text()


async def test_imap_select_fetch_and_idle(dovecot: DovecotServer) -> None:
    first_uid = await dovecot.adeliver(USER, raw_mail("first mail"))
    assert isinstance(first_uid, int)

    client = await imap_login(dovecot)
    try:
        selected = await client.select("INBOX")
        assert selected.result == "OK", selected
        uidvalidity = response_code(selected.lines, "UIDVALIDITY")
        uidnext = response_code(selected.lines, "UIDNEXT")
        assert uidvalidity > 0 and uidnext == first_uid + 1
        assert uidvalidity == dovecot.folder_status(USER)["UIDVALIDITY"]

        fetched = await client.uid("fetch", str(first_uid), "(UID FLAGS BODY.PEEK[])")
        assert fetched.result == "OK", fetched
        body = next(bytes(x) for x in fetched.lines if isinstance(x, bytearray))
        assert b"Subject: first mail" in body
        assert re.search(rb"UID %d\b" % first_uid, b" ".join(bytes(x) for x in fetched.lines))

        assert "IDLE" in client.protocol.capabilities
        idle = await client.idle_start(timeout=20)
        second_uid = await dovecot.adeliver(USER, raw_mail("second mail"))
        assert second_uid == uidnext
        pushed: list[bytes] = []
        while not any(line.endswith(b"EXISTS") for line in pushed):
            push = await client.wait_server_push(timeout=10)
            pushed += [bytes(line) for line in push if isinstance(line, bytes | bytearray)]
        client.idle_done()
        done = await asyncio.wait_for(idle, 10)
        assert done.result == "OK", done

        fetched = await client.uid("fetch", f"{second_uid}:*", "(UID ENVELOPE)")
        assert b"second mail" in b" ".join(bytes(x) for x in fetched.lines)
    finally:
        await imap_logout(client)


async def test_imap_starttls_and_imaps(dovecot: DovecotServer) -> None:
    context = dovecot.client_ssl_context()  # verifies the self-signed certificate
    client = aioimaplib.IMAP4(host=dovecot.host, port=dovecot.imap_port, timeout=10)
    await client.wait_hello_from_server()
    try:
        assert "STARTTLS" in client.protocol.capabilities
        await imap_starttls(client, context, dovecot.host)
        assert client.protocol.transport.get_extra_info("ssl_object") is not None
        assert "STARTTLS" not in client.protocol.capabilities
        assert (await client.login(USER, PASSWORD)).result == "OK"
        assert (await client.select("INBOX")).result == "OK"
    finally:
        await imap_logout(client)

    imaps = aioimaplib.IMAP4_SSL(
        host=dovecot.host, port=dovecot.imaps_port, timeout=10, ssl_context=context
    )
    await imaps.wait_hello_from_server()
    try:
        assert (await imaps.login(USER, PASSWORD)).result == "OK"
    finally:
        await imap_logout(imaps)


async def test_wrong_password_and_user_added_while_running(dovecot: DovecotServer) -> None:
    client = aioimaplib.IMAP4(host=dovecot.host, port=dovecot.imap_port, timeout=10)
    await client.wait_hello_from_server()
    try:
        refused = await client.login(USER, "wrong")
        assert refused.result == "NO"
        assert b"AUTHENTICATIONFAILED" in b" ".join(refused.lines)
    finally:
        await imap_logout(client)

    started = time.monotonic()
    await dovecot.aadd_user("bob", "bob-pw")
    assert time.monotonic() - started < 1.5
    uid = await dovecot.adeliver("bob", raw_mail("for bob"), "Support/Archive")
    assert dovecot.folder_status("bob", "Support/Archive")["MESSAGES"] == 1
    assert uid is not None


async def test_uidvalidity_change(dovecot: DovecotServer) -> None:
    await dovecot.adeliver(USER, raw_mail("before uidvalidity change"))
    before = (await dovecot.afolder_status(USER))["UIDVALIDITY"]
    new = await dovecot.aset_uidvalidity(USER, "INBOX")
    assert new == before + 1
    explicit = await dovecot.aset_uidvalidity(USER, "INBOX", 777_000)
    assert explicit == 777_000

    client = await imap_login(dovecot)
    try:
        selected = await client.select("INBOX")
        assert response_code(selected.lines, "UIDVALIDITY") == 777_000
        found = await client.uid_search("ALL")
        assert found.result == "OK" and found.lines[0].split(), found  # mail is still there
    finally:
        await imap_logout(client)
    with pytest.raises(ValueError):
        dovecot.set_uidvalidity(USER, "INBOX", 0)


async def test_restart_keeps_mail(dovecot: DovecotServer) -> None:
    uid = await dovecot.adeliver(USER, raw_mail("survives restart"))
    status = await dovecot.afolder_status(USER)

    # aioimaplib does not fail pending commands (nor an IDLE) when the connection drops:
    # they run into their timeout.  conn_lost_cb is how a client learns the server went away.
    lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def connection_lost(exc: Exception | None) -> None:
        if not lost.done():
            lost.set_result(exc)

    client = aioimaplib.IMAP4(
        host=dovecot.host, port=dovecot.imap_port, timeout=10, conn_lost_cb=connection_lost
    )
    await client.wait_hello_from_server()
    assert (await client.login(USER, PASSWORD)).result == "OK"
    await client.select("INBOX")
    await dovecot.arestart()
    await asyncio.wait_for(lost, 10)  # the old session was cut by the restart

    assert await dovecot.afolder_status(USER) == status
    client = await imap_login(dovecot)
    try:
        selected = await client.select("INBOX")
        assert response_code(selected.lines, "UIDVALIDITY") == status["UIDVALIDITY"]
        fetched = await client.uid("fetch", str(uid), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"survives restart" in b" ".join(bytes(x) for x in fetched.lines)
    finally:
        await imap_logout(client)


def test_stop_leaves_no_processes_or_files() -> None:
    server = DovecotServer()
    server.add_user("carol", "pw")
    server.start()
    pgid = server.pid or 0
    base = server.base_dir
    assert base is not None and base.is_dir()
    server.stop()
    assert not server.running and not port_is_open(server.imap_port)
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    assert not base.exists()

    # A given directory is kept (and reused: same mail after a new start).  Not pytest's
    # tmp_path: as root, Dovecot's users cannot reach it (then a temp dir is used instead).
    given = Path(tempfile.mkdtemp(prefix="bridge-test-kept-"))
    given.chmod(0o755)
    try:
        kept = DovecotServer(given / "dovecot")
        kept.add_user("carol", "pw")
        with kept:
            kept.deliver("carol", raw_mail("kept"))
        assert kept.base_dir == given / "dovecot" and kept.base_dir.exists()
        with kept:
            assert kept.folder_status("carol")["MESSAGES"] == 1
            # A crash: every process dies at once; a new start serves the same mail.
            pgid = kept.pid or 0
            kept.kill()
            with pytest.raises(ProcessLookupError):
                os.killpg(pgid, 0)
            kept.start()
            assert kept.folder_status("carol")["MESSAGES"] == 1
        with pytest.raises(DovecotError, match="not running"):
            kept.deliver("carol", raw_mail("nope"))
    finally:
        shutil.rmtree(given, ignore_errors=True)


# ---------------------------------------------------------------------------- SMTP


async def test_smtp_send_with_auth_is_captured(captured: SmtpCapture) -> None:
    errors, reply = await aiosmtplib.send(
        outgoing("Re: your question"),
        hostname=captured.host,
        port=captured.port,
        username=SMTP_LOGIN,
        password=SMTP_PASSWORD,
        start_tls=False,
        timeout=10,
    )
    assert errors == {} and reply.startswith("2.0.0"), reply
    mail = await captured.wait_for(lambda m: m.subject == "Re: your question", timeout=5)
    assert mail.mail_from == "support@example.com"
    assert mail.rcpt_tos == ["customer@example.org"]
    assert mail.auth_login == SMTP_LOGIN and not mail.tls
    assert mail.message.get_content() == "A reply from staff.\n"
    assert b"Subject: Re: your question" in mail.data

    with pytest.raises(TimeoutError, match="no captured mail matched"):
        await captured.wait_for(lambda m: m.subject == "never sent", timeout=0.1)


async def test_smtp_auth_is_required_and_checked(captured: SmtpCapture) -> None:
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as no_auth:
        await aiosmtplib.send(
            outgoing("no auth"), hostname=captured.host, port=captured.port, start_tls=False
        )
    assert no_auth.value.code == 530
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as bad:
        await aiosmtplib.send(
            outgoing("bad password"),
            hostname=captured.host,
            port=captured.port,
            username=SMTP_LOGIN,
            password="wrong",
            start_tls=False,
        )
    assert bad.value.code == 535
    # aiosmtplib's login() tries each offered mechanism (PLAIN, LOGIN) before giving up.
    assert set(captured.auth_failures) == {SMTP_LOGIN}
    assert captured.messages == []


async def test_smtp_injected_failures(captured: SmtpCapture) -> None:
    client = aiosmtplib.SMTP(hostname=captured.host, port=captured.port, start_tls=False)
    async with client:
        await client.login(SMTP_LOGIN, SMTP_PASSWORD)

        captured.fail_next(2, code=451)
        for _ in range(2):
            with pytest.raises(aiosmtplib.SMTPDataError) as temporary:
                await client.send_message(outgoing("greylisted"))
            assert temporary.value.code == 451
        await client.send_message(outgoing("greylisted"))  # the retry goes through

        captured.fail_next(code=550)
        with pytest.raises(aiosmtplib.SMTPDataError) as permanent:
            await client.send_message(outgoing("refused"))
        assert permanent.value.code == 550

        captured.fail_next(code=550, stage="rcpt", message="550 5.1.1 No such user here")
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as rcpt:
            await client.send_message(outgoing("unknown user", to="nobody@example.org"))
        assert [r.code for r in rcpt.value.recipients] == [550]
        assert "No such user" in rcpt.value.recipients[0].message

        captured.fail_next(code=421, stage="mail")
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as sender:
            await client.send_message(outgoing("shutting down"))
        assert sender.value.code == 421

    assert [m.subject for m in captured.messages] == ["greylisted"]
    assert [(r.stage, r.reply[:3]) for r in captured.rejections] == [
        ("data", "451"),
        ("data", "451"),
        ("data", "550"),
        ("rcpt", "550"),
        ("mail", "421"),
    ]


async def test_smtp_starttls_and_implicit_tls() -> None:
    with SmtpCapture(
        credentials={SMTP_LOGIN: SMTP_PASSWORD}, starttls=True, require_starttls=True
    ) as server:
        with pytest.raises(aiosmtplib.SMTPException):
            await aiosmtplib.send(
                outgoing("plain"),
                hostname=server.host,
                port=server.port,
                start_tls=False,
                username=SMTP_LOGIN,
                password=SMTP_PASSWORD,
            )
        client = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            start_tls=True,
            tls_context=server.client_ssl_context(),
        )
        async with client:
            await client.ehlo()  # auth_login() (unlike login()) does not re-EHLO after TLS
            await client.auth_login(SMTP_LOGIN, SMTP_PASSWORD)  # AUTH LOGIN, not PLAIN
            await client.send_message(outgoing("over starttls"))
        mail = await server.wait_for(timeout=5)
        assert mail.tls and mail.auth_login == SMTP_LOGIN and mail.subject == "over starttls"

    with SmtpCapture(credentials={SMTP_LOGIN: SMTP_PASSWORD}, implicit_tls=True) as server:
        await aiosmtplib.send(
            outgoing("over smtps"),
            hostname=server.host,
            port=server.port,
            use_tls=True,
            tls_context=server.client_ssl_context(),
            username=SMTP_LOGIN,
            password=SMTP_PASSWORD,
        )
        mail = await server.wait_for(timeout=5)
        assert mail.tls and mail.subject == "over smtps"


async def test_smtp_stop_with_open_connection_and_restart() -> None:
    server = SmtpCapture()
    await server.astart()
    client = aiosmtplib.SMTP(hostname=server.host, port=server.port, start_tls=False)
    await client.connect()
    await client.ehlo()
    await server.astop()  # closes the open session
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await client.noop()
    client.close()
    assert not port_is_open(server.port)

    await server.arestart()
    await aiosmtplib.send(
        outgoing("after restart"), hostname=server.host, port=server.port, start_tls=False
    )
    assert (await server.wait_for(timeout=5)).auth_login is None
    await server.astop()
