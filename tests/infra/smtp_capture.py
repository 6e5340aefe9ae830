"""An SMTP server on loopback that captures outgoing mail, for tests (aiosmtpd).

Usage::

    smtp = SmtpCapture(credentials={"bridge": "secret"}, starttls=True)
    smtp.start()                              # or: await smtp.astart()
    ... the code under test sends to smtp.host:smtp.port ...
    mail = await smtp.wait_for(lambda m: "bob@example.org" in m.rcpt_tos)
    mail.message["Subject"], mail.data, mail.auth_login, mail.tls
    smtp.fail_next(2, code=451)               # the next 2 transactions get "451 4.3.0 ..."
    smtp.fail_next(code=550, stage="rcpt")    # the next RCPT TO gets "550 5.1.1 ..."
    smtp.stop()

The server runs in its own thread (aiosmtpd's :class:`~aiosmtpd.controller.Controller`), so
it answers even while the test's event loop is blocked, and works from sync and async tests.
It listens on 127.0.0.1 only, on a free port.  AUTH (PLAIN, LOGIN) is offered when
``credentials`` are given and is allowed without TLS (loopback); such a server then refuses
``MAIL FROM`` before a successful AUTH (``530 5.7.0``), unless ``require_auth=False``.
STARTTLS (``starttls=True``) uses a self-signed certificate made at start;
``implicit_tls=True`` makes it an SMTPS server (TLS from the first byte) instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.message
import email.policy
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from .ports import LOOPBACK, free_port
from .process import Service
from .tls import make_self_signed_cert

__all__ = ["CapturedMail", "Rejection", "SmtpCapture", "async_smtp_capture"]

_STAGES = ("mail", "rcpt", "data")
_DEFAULT_REPLIES = {
    421: "421 4.3.2 Service shutting down (injected by test)",
    450: "450 4.2.1 Mailbox busy (injected by test)",
    451: "451 4.3.0 Temporary local problem (injected by test)",
    452: "452 4.3.1 Insufficient system storage (injected by test)",
    550: "550 5.1.1 Mailbox unavailable (injected by test)",
    552: "552 5.3.4 Message too big (injected by test)",
    553: "553 5.1.3 Bad address syntax (injected by test)",
    554: "554 5.7.1 Transaction failed (injected by test)",
}


@dataclass
class CapturedMail:
    """One accepted message."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    """The message as received (dot-unstuffed, CRLF line endings as sent)."""
    message: email.message.EmailMessage
    """``data`` (with LF line endings) parsed with :data:`email.policy.default`."""
    auth_login: str | None
    """The login that authenticated the session (None: no AUTH)."""
    tls: bool
    """Whether the session was encrypted (STARTTLS or implicit TLS)."""
    peer: Any
    mail_options: list[str] = field(default_factory=list)
    rcpt_options: list[str] = field(default_factory=list)
    received_at: float = field(default_factory=time.time)

    @property
    def subject(self) -> str | None:
        value = self.message["Subject"]
        return None if value is None else str(value)


@dataclass
class Rejection:
    """A command answered with an injected error (see :meth:`SmtpCapture.fail_next`)."""

    stage: str
    reply: str
    mail_from: str | None
    rcpt_tos: list[str]
    address: str | None = None
    """The RCPT TO address (stage ``rcpt``) or MAIL FROM address (stage ``mail``)."""


@dataclass
class _Failure:
    stage: str
    reply: str


class _Controller(Controller):
    """A Controller that remembers its protocol instances so :meth:`stop` can close their
    connections (otherwise open client connections leak transports -> ResourceWarning)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.protocols: list[SMTP] = []

    def factory(self) -> SMTP:
        proto = super().factory()
        self.protocols.append(proto)
        return proto

    def close_connections(self) -> None:
        """Close every client connection from inside the server's loop, and give the loop a
        moment to run their connection_lost callbacks (TLS needs a few iterations)."""
        done = threading.Event()

        def close_all() -> None:
            for proto in self.protocols:
                transport = proto.transport
                if transport is not None and not transport.is_closing():
                    transport.close()
            self.protocols.clear()
            self.loop.call_later(0.05, done.set)

        self.loop.call_soon_threadsafe(close_all)
        done.wait(5)


class SmtpCapture(Service):
    """A capturing SMTP server on ``127.0.0.1:port``.

    :param port: TCP port; a free one if None (kept across :meth:`restart`).
    :param credentials: login -> password accepted by AUTH PLAIN/LOGIN; None disables AUTH.
    :param require_auth: refuse MAIL FROM before AUTH (default: True iff credentials given).
    :param starttls: offer STARTTLS with a self-signed certificate.
    :param require_starttls: refuse everything but EHLO/STARTTLS/QUIT before STARTTLS.
    :param implicit_tls: SMTPS: TLS from the first byte (instead of STARTTLS).
    :param hostname: the name in the greeting and EHLO reply.
    :param data_size_limit: advertised SIZE and the limit enforced on DATA.
    """

    host = LOOPBACK

    def __init__(
        self,
        *,
        port: int | None = None,
        credentials: dict[str, str] | None = None,
        require_auth: bool | None = None,
        starttls: bool = False,
        require_starttls: bool = False,
        implicit_tls: bool = False,
        hostname: str = "localhost",
        data_size_limit: int = 32 * 1024 * 1024,
    ) -> None:
        if implicit_tls and starttls:
            raise ValueError("choose either starttls or implicit_tls")
        self.port = port or free_port()
        self.credentials = dict(credentials) if credentials is not None else None
        self.require_auth = (credentials is not None) if require_auth is None else require_auth
        if self.require_auth and self.credentials is None:
            raise ValueError("require_auth needs credentials")
        self.starttls = starttls or require_starttls
        self.require_starttls = require_starttls
        self.implicit_tls = implicit_tls
        self.hostname = hostname
        self.data_size_limit = data_size_limit

        self.messages: list[CapturedMail] = []
        """Every accepted message, in order."""
        self.rejections: list[Rejection] = []
        """Every injected failure that was answered, in order."""
        self.auth_failures: list[str] = []
        """Logins of failed AUTH attempts (aiosmtplib's ``login()`` tries every offered
        mechanism, so one wrong password there shows up once per mechanism)."""
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self._controller: _Controller | None = None
        self._cert_dir: Path | None = None
        self.cert_path: Path | None = None
        self.key_path: Path | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> SmtpCapture:
        """Start serving (in a thread); return once the server answers."""
        if self._controller is not None:
            return self
        tls_ctx = self._server_tls_context() if (self.starttls or self.implicit_tls) else None
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "server_hostname": self.hostname,
            "data_size_limit": self.data_size_limit,
            "enable_SMTPUTF8": True,
            "ready_timeout": 10.0,
        }
        if self.credentials is not None:
            # auth_required is enforced in handle_MAIL: aiosmtpd's own auth_required without
            # auth_require_tls emits a UserWarning (an error under the test settings).
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        if self.implicit_tls:
            kwargs["ssl_context"] = tls_ctx
        elif tls_ctx is not None:
            kwargs.update(tls_context=tls_ctx, require_starttls=self.require_starttls)
        controller = _Controller(_Handler(self), **kwargs)
        try:
            controller.start()
        except BaseException:
            with contextlib.suppress(Exception):
                controller.stop(no_assert=True)
            raise
        self._controller = controller
        return self

    def stop(self) -> None:
        """Close every connection and stop the server.  Captured mail is kept; a restart
        (:meth:`restart`, same port) makes a new certificate if TLS is on."""
        controller = self._controller
        if controller is None:
            return
        self._controller = None
        try:
            controller.close_connections()
        finally:
            controller.stop()
            if self._cert_dir is not None:
                shutil.rmtree(self._cert_dir, ignore_errors=True)
                self._cert_dir = None

    def _server_tls_context(self) -> ssl.SSLContext:
        self._cert_dir = Path(tempfile.mkdtemp(prefix="bridge-test-smtp-"))
        self.cert_path, self.key_path = make_self_signed_cert(self._cert_dir, self.hostname)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (valid for 127.0.0.1)."""
        if self.cert_path is None:
            raise RuntimeError("TLS is not enabled or the server has not been started")
        return ssl.create_default_context(cafile=str(self.cert_path))

    # ------------------------------------------------------------------ test controls

    def fail_next(
        self,
        count: int = 1,
        code: int = 451,
        message: str | None = None,
        *,
        stage: str = "data",
    ) -> None:
        """Answer the next ``count`` commands of ``stage`` with an error instead.

        ``stage``: ``"data"`` (the end of DATA: the whole message is refused, the usual way a
        server rejects a delivery), ``"rcpt"`` (one RCPT TO each) or ``"mail"`` (MAIL FROM).
        ``code`` 4xx is a temporary failure, 5xx a permanent one; ``message`` is the full reply
        line (e.g. ``"451 4.7.1 Greylisted"``), default a standard text for ``code``.
        """
        if stage not in _STAGES:
            raise ValueError(f"stage must be one of {_STAGES}")
        if not 400 <= code <= 599:
            raise ValueError("code must be a 4xx or 5xx SMTP reply code")
        if message is None:
            cls = code // 100
            reply = _DEFAULT_REPLIES.get(code, f"{code} {cls}.0.0 Injected failure")
        else:
            reply = message if message[:3] == str(code) else f"{code} {message}"
        with self._lock:
            self._failures.extend(_Failure(stage, reply) for _ in range(count))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def clear(self) -> None:
        """Forget captured messages, rejections and auth failures."""
        with self._lock:
            self.messages.clear()
            self.rejections.clear()
            self.auth_failures.clear()

    def _take_failure(self, stage: str) -> str | None:
        with self._lock:
            for i, failure in enumerate(self._failures):
                if failure.stage == stage:
                    del self._failures[i]
                    return failure.reply
        return None

    async def wait_for(
        self,
        predicate: Callable[[CapturedMail], bool] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - a plain timeout reads best in tests
    ) -> CapturedMail:
        """The first captured message matching ``predicate`` (any if None), waiting up to
        ``timeout`` seconds for it to arrive; :class:`TimeoutError` lists what did arrive."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                for mail in self.messages:
                    if predicate is None or predicate(mail):
                        return mail
                summary = [(m.mail_from, m.rcpt_tos, m.subject) for m in self.messages]
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"no captured mail matched within {timeout}s; captured: {summary}; "
                    f"rejections: {[(r.stage, r.reply) for r in self.rejections]}"
                )
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------------ aiosmtpd callbacks

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.credentials is None:
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        if self.credentials.get(login) == password:
            return AuthResult(success=True, auth_data=login)
        with self._lock:
            self.auth_failures.append(login)
        return AuthResult(success=False, handled=False)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<SmtpCapture {self.host}:{self.port} {state} captured={len(self.messages)}>"


class _Handler:
    def __init__(self, capture: SmtpCapture) -> None:
        self.capture = capture

    def _reject(self, stage: str, reply: str, envelope: Envelope, address: str | None) -> str:
        with self.capture._lock:
            self.capture.rejections.append(
                Rejection(stage, reply, envelope.mail_from, list(envelope.rcpt_tos), address)
            )
        return reply

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.capture.require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        reply = self.capture._take_failure("mail")
        if reply is not None:
            return self._reject("mail", reply, envelope, address)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.capture._take_failure("rcpt")
        if reply is not None:
            return self._reject("rcpt", reply, envelope, address)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self.capture._take_failure("data")
        if reply is not None:
            return self._reject("data", reply, envelope, None)
        raw = envelope.original_content or b""
        transport = server.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        # Parse with LF line endings, as a mail client would: get_content() gives "...\n".
        message = email.message_from_bytes(
            raw.replace(b"\r\n", b"\n"), policy=email.policy.default
        )
        assert isinstance(message, email.message.EmailMessage)
        mail = CapturedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            data=raw,
            message=message,
            auth_login=session.auth_data if session.authenticated else None,
            tls=tls,
            peer=session.peer,
            mail_options=list(envelope.mail_options),
            rcpt_options=list(envelope.rcpt_options),
        )
        with self.capture._lock:
            self.capture.messages.append(mail)
        return "250 2.0.0 OK: queued"


def async_smtp_capture(**kwargs: Any) -> SmtpCapture:
    """An :class:`SmtpCapture` (kwargs go to its constructor) for ``async with``: started on
    entry, stopped on exit."""
    return SmtpCapture(**kwargs)
