"""The email connector's remote side: a real Dovecot (IMAP in) and an SMTP capture (mail out).

``EmailHarness`` starts a throwaway ``DovecotServer`` with the company mailbox and an
``SmtpCapture`` that accepts the mailbox's login, points the connector at both (IMAP with
STARTTLS, SMTP without TLS but with AUTH, IDLE or a 1 s poll) and drives them as customers do:
mails are appended to the mailbox and what the connector sent is read back from the capture.

The harness configures ``threading: contact``, so a chat's id is its customer's address: the
suite's chat and user labels that first talk together share one address (as Telegram's private
chats share their user's id); message labels map to Message-IDs.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from email.message import EmailMessage
from email.utils import formataddr, parseaddr
from typing import Any, cast

from bridge.connectors.email import EmailConnector
from bridge.media import MediaFile
from bridge.types import AccountID, RemoteChatID
from tests.contract.harness import (
    ConnectorHarness,
    FailureKind,
    FakeHost,
    IdKind,
    Received,
    ReceivedAttachment,
    one_id_for_chat_and_user,
)
from tests.infra.dovecot import DovecotServer
from tests.infra.lmtp_client import push_mail
from tests.infra.ports import free_port
from tests.infra.smtp_capture import CapturedMail, SmtpCapture

MAIL_USER = "support"
MAIL_PASSWORD = "mailbox-password"
FROM_ADDRESS = "support@company.test"
FROM_NAME = "ACME Support"
CUSTOMER_DOMAIN = "customer.test"


async def read(content: bytes | MediaFile) -> bytes:
    """What ``download_attachment`` returned, as bytes (a ``MediaFile`` is read and closed)."""
    if isinstance(content, bytes):
        return content
    with content:
        return b"".join([chunk async for chunk in content.chunks()])


def mail_tasks_left(before: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """The IMAP or mail connector tasks started since ``before`` and still pending. The test
    loop is shared by the whole session, so a request another test's HTTP server is still
    serving is not counted: only tasks running aioimaplib or this connector's code."""

    def ours(task: asyncio.Task[Any]) -> bool:
        step: Any = task.get_coro()
        while step is not None:
            code = getattr(step, "cr_code", None) or getattr(step, "gi_code", None)
            name = code.co_filename if code is not None else ""
            if "aioimaplib" in name or "connectors/email" in name:
                return True
            step = getattr(step, "cr_await", None) or getattr(step, "gi_yieldfrom", None)
        return False

    return [t for t in set(asyncio.all_tasks()) - before if not t.done() and ours(t)]


def build_mail(
    sender: str,
    subject: str,
    text: str,
    *,
    message_id: str,
    name: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    attachment: tuple[bytes, str, str] | None = None,
) -> bytes:
    """A customer's mail as raw bytes; ``message_id`` and references without angle brackets."""
    msg = EmailMessage()
    msg["From"] = formataddr((name, sender)) if name else sender
    msg["To"] = formataddr((FROM_NAME, FROM_ADDRESS))
    msg["Subject"] = subject
    msg["Date"] = "Mon, 02 Jun 2025 10:00:00 +0000"
    msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    msg.set_content(text)
    if attachment is not None:
        data, mimetype, filename = attachment
        main, _, sub = mimetype.partition("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=filename)
    return bytes(msg)


class EmailHarness(ConnectorHarness):
    name = "email"
    connector_class = EmailConnector
    account_id = AccountID("support-mail")

    def __init__(self, *, threading: str = "contact") -> None:
        super().__init__()
        self.threading = threading
        self.dovecot = DovecotServer()
        self.dovecot.add_user(MAIL_USER, MAIL_PASSWORD)
        self.smtp = SmtpCapture(credentials={MAIL_USER: MAIL_PASSWORD})
        self._run = secrets.token_hex(4)
        self._ids: dict[tuple[str, str], str] = {}
        self._addresses = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.dovecot.astart()
        await self.smtp.astart()

    async def stop(self) -> None:
        try:
            await self.smtp.astop()
        finally:
            await self.dovecot.astop()

    # ------------------------------------------------------------------ config

    def valid_config(self) -> dict[str, Any]:
        return {
            "type": "email",
            "staff": ["@admin:example.com"],
            "imap": {
                "host": self.dovecot.host,
                "port": self.dovecot.imap_port,
                "security": "starttls",
                "verify_tls": False,
                "user": MAIL_USER,
                "password": MAIL_PASSWORD,
            },
            "smtp": {
                "host": self.smtp.host,
                "port": self.smtp.port,
                "security": "none",
                "user": MAIL_USER,
                "password": MAIL_PASSWORD,
            },
            "from_address": FROM_ADDRESS,
            "from_name": FROM_NAME,
            "threading": self.threading,
            "poll_interval": 1,
            "idle_timeout": 60,
            "delivery_deadline": 600,
            "title": "Test Email",
        }

    def invalid_configs(self) -> list[tuple[dict[str, Any], str]]:
        key = self.config_key
        valid = self.valid_config()

        def changed(**values: Any) -> dict[str, Any]:
            return {**valid, **values}

        def without(name: str) -> dict[str, Any]:
            return {k: v for k, v in valid.items() if k != name}

        def server(name: str, drop: str | None = None, **values: Any) -> dict[str, Any]:
            section = {k: v for k, v in valid[name].items() if k != drop}
            return {**valid, name: {**section, **values}}

        if "imap" in valid:
            incoming = [
                (without("imap"), f"{key}.imap"),
                (changed(imap="imap.example.com"), f"{key}.imap"),
                (server("imap", drop="host"), f"{key}.imap.host"),
                (server("imap", host=""), f"{key}.imap.host"),
                (server("imap", host=42), f"{key}.imap.host"),
                (server("imap", security="ssl"), f"{key}.imap.security"),
                (server("imap", security="STARTTLS"), f"{key}.imap.security"),
                (server("imap", port=0), f"{key}.imap.port"),
                (server("imap", port="143"), f"{key}.imap.port"),
                (server("imap", verify_tls="no"), f"{key}.imap.verify_tls"),
                (server("imap", drop="user"), f"{key}.imap.user"),
                (server("imap", user=""), f"{key}.imap.user"),
                (server("imap", password=""), f"{key}.imap.password"),
                (server("imap", tls=True), f"{key}.imap.tls"),
            ]
        else:
            incoming = [
                (without("lmtp"), f"{key}.imap"),
                (changed(lmtp="127.0.0.1:2424"), f"{key}.lmtp"),
                (changed(lmtp=[]), f"{key}.lmtp"),
                (server("lmtp", port=0), f"{key}.lmtp.port"),
                (server("lmtp", port=70000), f"{key}.lmtp.port"),
                (server("lmtp", port="2424"), f"{key}.lmtp.port"),
                (server("lmtp", host=""), f"{key}.lmtp.host"),
                (server("lmtp", max_message_size=0), f"{key}.lmtp.max_message_size"),
                (server("lmtp", user="x"), f"{key}.lmtp.user"),
                (server("lmtp", recipients="a@company.test"), f"{key}.lmtp.recipients"),
                (server("lmtp", recipients=[]), f"{key}.lmtp.recipients"),
                (server("lmtp", recipients=["sales"]), f"{key}.lmtp.recipients"),
                (changed(imap="imap.example.com"), f"{key}.imap"),
            ]
        return [
            *incoming,
            (without("smtp"), f"{key}.smtp"),
            (changed(smtp=["smtp.example.com"]), f"{key}.smtp"),
            (server("smtp", drop="host"), f"{key}.smtp.host"),
            (server("smtp", security=True), f"{key}.smtp.security"),
            (server("smtp", port=-25), f"{key}.smtp.port"),
            (server("smtp", verify_tls=0), f"{key}.smtp.verify_tls"),
            (server("smtp", password=7), f"{key}.smtp.password"),
            (server("smtp", username="x"), f"{key}.smtp.username"),
            (without("from_address"), f"{key}.from_address"),
            (changed(from_address="support"), f"{key}.from_address"),
            (changed(from_address="Support <support@company.test>"), f"{key}.from_address"),
            (changed(from_address=""), f"{key}.from_address"),
            (changed(from_name=""), f"{key}.from_name"),
            (changed(sender_name_template="{nobody}"), f"{key}.sender_name_template"),
            (changed(sender_name_template="{displayname"), f"{key}.sender_name_template"),
            (changed(folder=""), f"{key}.folder"),
            (changed(threading="subject"), f"{key}.threading"),
            (changed(threading=None, poll_interval=0), f"{key}.poll_interval"),
            (changed(poll_interval="1m"), f"{key}.poll_interval"),
            (changed(idle_timeout=29 * 60), f"{key}.idle_timeout"),
            (changed(idle_timeout=3600), f"{key}.idle_timeout"),
            (changed(idle_timeout=0), f"{key}.idle_timeout"),
            (changed(max_size=0), f"{key}.max_size"),
            (changed(max_size=1.5), f"{key}.max_size"),
            (changed(delivery_deadline=float("inf")), f"{key}.delivery_deadline"),
            (changed(title=""), f"{key}.title"),
            (changed(authserv_id="mx example"), f"{key}.authserv_id"),
            (changed(authserv_id=""), f"{key}.authserv_id"),
            (changed(unauthenticated="drop"), f"{key}.unauthenticated"),
            (changed(imap_host="imap.example.com"), f"{key}.imap_host"),
        ]

    def make_connector(self, host: FakeHost, **overrides: Any) -> EmailConnector:
        if self.host is not host:
            self._seed_portals(host)
        return cast(EmailConnector, super().make_connector(host, **overrides))

    # ------------------------------------------------------------------ ids

    def address(self, label: str) -> str:
        """A customer address for ``label`` (lowercase, as the connector reports senders)."""
        return f"{label.lower()}.{self._run}@{CUSTOMER_DOMAIN}"

    def remote_id(self, kind: IdKind, label: str) -> str:
        known = self._ids.get((kind, label))
        if known is not None:
            return known
        if kind == "message":
            value = f"{label}.{self._run}@{CUSTOMER_DOMAIN}"
        elif kind == "chat" and self.threading == "contact":
            # A conversation the suite names before anyone wrote: its customer's address.
            value = self.address(label)
        elif kind == "user":
            value = self.address(label)
        else:
            raise AssertionError(f"in thread mode chat {label!r} exists only once mail came")
        self._ids[(kind, label)] = value
        return value

    def _pair(self, chat: str, sender: str) -> str:
        """The address of ``sender``, which in contact mode is also the id of ``chat``."""
        if self.threading != "contact":
            user_id = self.remote_id("user", sender)
            chat_id = self._ids.get(("chat", chat))
            if chat_id is not None and not chat_id.startswith(user_id + "/"):
                raise AssertionError(f"chat {chat!r} ({chat_id}) is not {sender!r}'s")
            return user_id
        return one_id_for_chat_and_user(
            self._ids,
            chat,
            sender,
            lambda: self.address(sender),
            "in contact threading a chat is its customer",
        )

    def _bind_thread_chat(self, chat: str, sender: str, message_id: str) -> None:
        if self.threading != "contact" and ("chat", chat) not in self._ids:
            self._ids[("chat", chat)] = f"{self.remote_id('user', sender)}/{message_id}"

    # ------------------------------------------------------------------ remote to connector

    async def deliver(self, raw: bytes, message_id: str, seconds: float = 20.0) -> None:
        """Append ``raw`` to the mailbox and wait until the host recorded ``message_id`` or
        refused it as a repeat."""
        assert self.host is not None, "make_connector() was not called"
        host = self.host

        def seen() -> tuple[int, int]:
            return (
                sum(1 for e in host.events if getattr(e, "message_id", None) == message_id),
                sum(1 for e in host.duplicates if getattr(e, "message_id", None) == message_id),
            )

        before = seen()
        await self.push(raw)
        async with asyncio.timeout(seconds):
            while True:  # polled: FakeHost's event is set for new events, not for repeats
                if seen() != before:
                    return
                await asyncio.sleep(0.02)

    async def push(self, raw: bytes) -> None:
        """Put ``raw`` where the connector reads mail: the IMAP mailbox."""
        await self.dovecot.adeliver(MAIL_USER, raw)

    async def remote_sends_message(
        self,
        chat_id: str,
        sender_id: str,
        text: str,
        message_id: str,
        *,
        sender_name: str | None = None,
    ) -> None:
        await self._send(chat_id, sender_id, message_id, text, sender_name=sender_name)

    async def remote_sends_attachment(
        self,
        chat_id: str,
        sender_id: str,
        message_id: str,
        data: bytes,
        filename: str,
        mimetype: str,
    ) -> None:
        await self._send(
            chat_id, sender_id, message_id, "See attached.",
            attachment=(data, mimetype, filename),
        )  # fmt: skip

    async def _send(
        self,
        chat: str,
        sender: str,
        label: str,
        text: str,
        *,
        sender_name: str | None = None,
        attachment: tuple[bytes, str, str] | None = None,
    ) -> None:
        address = self._pair(chat, sender)
        message_id = self.remote_id("message", label)
        self._bind_thread_chat(chat, sender, message_id)
        raw = build_mail(
            address, f"Question {label}", text, message_id=message_id, name=sender_name,
            attachment=attachment,
        )  # fmt: skip
        await self.deliver_message(label, raw)

    async def redeliver(self, label: str, delivery: Any) -> None:
        """``delivery`` is raw mail; a duplicate is the same mail again."""
        await self.deliver(delivery, self.remote_id("message", label))

    # ------------------------------------------------------------------ connector to remote

    async def remote_received(self) -> list[Received]:
        return [received(mail) for mail in list(self.smtp.messages)]

    async def make_remote_fail(self, kind: FailureKind, count: int = 1) -> None:
        self.smtp.fail_next(count, 451 if kind == "temporary" else 550)

    # ------------------------------------------------------------------ portals

    def _seed_portals(self, host: FakeHost) -> None:
        """Let ``host`` know the portal of every conversation the suite names, as the core does
        once the customer wrote (in an earlier session): a chat without recorded events gets
        ``{"contact": <its customer>, "subject": ...}``. FakeHost starts without portals, and
        the suite sends to ``chat-1`` before anyone wrote there."""
        original = host.portal_metadata

        async def portal_metadata(chat_id: RemoteChatID) -> dict[str, Any]:
            meta = await original(chat_id)
            known = {v for (kind, _), v in self._ids.items() if kind == "chat"}
            if not meta and chat_id in known:
                return {"contact": chat_id.split("/", 1)[0], "subject": "Your order"}
            return meta

        host.portal_metadata = portal_metadata  # type: ignore[method-assign]


class EmailLmtpHarness(EmailHarness):
    """The same mailbox with mail pushed over LMTP by the company's MTA instead of IMAP: no
    Dovecot; the harness is the MTA."""

    name = "email-lmtp"

    def __init__(self, *, threading: str = "contact") -> None:
        super().__init__(threading=threading)
        self.lmtp_port = free_port()

    async def start(self) -> None:
        await self.smtp.astart()

    async def stop(self) -> None:
        await self.smtp.astop()

    def valid_config(self) -> dict[str, Any]:
        config = {k: v for k, v in super().valid_config().items() if k != "imap"}
        recipients = [FROM_ADDRESS, "sales@company.test", "info@company.test"]
        lmtp = {"host": "127.0.0.1", "port": self.lmtp_port, "recipients": recipients}
        return {**config, "lmtp": lmtp}

    async def push(self, raw: bytes) -> None:
        replies = await push_mail("127.0.0.1", self.lmtp_port, raw)
        assert all(code == 250 for code, _ in replies), replies


def _strip(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text.strip("<>") or None


def received(mail: CapturedMail) -> Received:
    """A captured mail in the suite's connector-neutral form."""
    msg = mail.message
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    attachment: ReceivedAttachment | None = None
    for part in msg.iter_attachments():
        attachment = {
            "filename": part.get_filename(),
            "mimetype": part.get_content_type(),
            "data": part.get_payload(decode=True) or b"",
        }
        break
    return {
        "type": "message",
        "id": _strip(msg["Message-ID"]) or "",
        "chat_id": parseaddr(str(msg["To"] or ""))[1],
        "text": plain.get_content() if plain is not None else None,  # type: ignore[attr-defined]
        "html": html.get_content() if html is not None else None,  # type: ignore[attr-defined]
        "reply_to": _strip(msg["In-Reply-To"]),
        "attachment": attachment,
    }
