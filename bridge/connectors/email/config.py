"""The mailbox account's config section: IMAP (or LMTP) in, SMTP out, without network calls."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from ...connector import ConfigError
from ..options import Options

SECURITY = ("tls", "starttls", "none")
ADDRESS = r"[^@\s]+@[^@\s]+\.[^@\s]+"


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    security: str
    """``tls`` (implicit TLS), ``starttls`` or ``none`` (loopback and tests only)."""
    user: str | None = None
    password: str | None = None
    verify_tls: bool = True


@dataclass(frozen=True)
class LmtpConfig:
    """Where the company's MTA pushes the mailbox's mail (RFC 2033), instead of or beside IMAP."""

    host: str = "127.0.0.1"
    port: int = 2424
    max_message_size: int = 50 * 1024 * 1024
    recipients: tuple[str, ...] = ()
    """The addresses accepted (any other is answered 550); by default ``from_address``."""


@dataclass(frozen=True)
class EmailConfig:
    imap: ServerConfig | None
    """``None`` when mail arrives only over LMTP."""
    smtp: ServerConfig
    from_address: str
    from_name: str = "Support"
    sender_name_template: str = "{displayname} ({from_name})"
    """How a staff member appears in From: ``{displayname}`` and ``{from_name}``."""
    folder: str = "INBOX"
    threading: str = "thread"
    """``thread``: a portal per mail thread and contact; ``contact``: one per contact."""
    poll_interval: float = 60.0
    """Seconds between checks when the server has no IDLE."""
    idle_timeout: float = 25 * 60.0
    """IDLE is re-issued after this many seconds (RFC 2177: before 29 minutes)."""
    max_size: int = 25 * 1024 * 1024
    delivery_deadline: float = 24 * 3600.0
    title: str = "Email"
    lmtp: LmtpConfig | None = None
    authserv_id: str | None = None
    """The company's mail server's id in its ``Authentication-Results`` headers; unset: sender
    authentication is not looked at."""
    unauthenticated: str = "flag"
    """A sender the server did not authenticate: ``accept``, ``flag`` (a warning in the room)
    or ``refuse`` (a notice with the original attached, in a conversation of its own)."""

    @property
    def addresses(self) -> tuple[str, ...]:
        """The mailbox's own addresses: ``from_address`` and those LMTP accepts."""
        recipients = self.lmtp.recipients if self.lmtp is not None else ()
        return tuple(dict.fromkeys(a.lower() for a in (self.from_address, *recipients)))


def _server(raw: Any, key: str, default_ports: dict[str, int]) -> ServerConfig:
    opts = Options(raw, key, (f.name for f in fields(ServerConfig)), "mail server")
    security = opts.choice("security", SECURITY, "tls")
    return ServerConfig(
        host=opts.string("host"),
        port=opts.positive_int("port", default_ports[security]),
        security=security,
        user=opts.string("user") if raw.get("user") is not None else None,
        password=opts.string("password") if raw.get("password") is not None else None,
        verify_tls=opts.boolean("verify_tls", True),
    )


def _lmtp(raw: Any, key: str, from_address: str) -> LmtpConfig:
    opts = Options(raw, key, (f.name for f in fields(LmtpConfig)), "LMTP listener")
    d = LmtpConfig()
    port = opts.positive_int("port", d.port)
    if port > 65535:
        raise ConfigError(f"{key}.port", "must be a port number (1-65535)")
    recipients = raw.get("recipients", [from_address])
    if (
        not isinstance(recipients, list)
        or not recipients
        or not all(isinstance(r, str) and re.fullmatch(ADDRESS, r) for r in recipients)
    ):
        raise ConfigError(f"{key}.recipients", "must be a list of addresses like a@example.com")
    return LmtpConfig(
        host=opts.string("host", d.host),
        port=port,
        max_message_size=opts.positive_int("max_message_size", d.max_message_size),
        recipients=tuple(recipients),
    )


def parse_config(raw: Any, key: str) -> EmailConfig:
    opts = Options(raw, key, (f.name for f in fields(EmailConfig)), "email")
    if raw.get("imap") is None and raw.get("lmtp") is None:
        raise ConfigError(
            f"{key}.imap", "is required (the mailbox to read), unless mail arrives over lmtp"
        )
    if raw.get("smtp") is None:
        raise ConfigError(f"{key}.smtp", "is required (the server that sends replies)")
    imap = None
    if raw.get("imap") is not None:
        imap = _server(raw["imap"], f"{key}.imap", {"tls": 993, "starttls": 143, "none": 143})
        if imap.user is None:
            raise ConfigError(f"{key}.imap.user", "is required (the mailbox login)")
        if imap.password is None:
            raise ConfigError(f"{key}.imap.password", "is required (the mailbox password)")
    smtp = _server(raw["smtp"], f"{key}.smtp", {"tls": 465, "starttls": 587, "none": 25})
    from_address = opts.string(
        "from_address", pattern=ADDRESS, hint="must be an address like support@example.com"
    )
    lmtp = None
    if raw.get("lmtp") is not None:
        lmtp = _lmtp(raw["lmtp"], f"{key}.lmtp", from_address)
    d = EmailConfig(imap, smtp, "x@example.com")
    template = opts.string("sender_name_template", d.sender_name_template)
    try:
        template.format(displayname="x", from_name="y")
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"{key}.sender_name_template", f"bad template: {e}") from e
    idle = opts.seconds("idle_timeout", d.idle_timeout)
    if idle >= 29 * 60:
        raise ConfigError(f"{key}.idle_timeout", "must be under 29 minutes (RFC 2177)")
    return EmailConfig(
        imap=imap,
        smtp=smtp,
        from_address=from_address,
        from_name=opts.string("from_name", d.from_name),
        sender_name_template=template,
        folder=opts.string("folder", d.folder),
        threading=opts.choice("threading", ("thread", "contact"), d.threading),
        poll_interval=opts.seconds("poll_interval", d.poll_interval),
        idle_timeout=idle,
        max_size=opts.positive_int("max_size", d.max_size),
        delivery_deadline=opts.seconds("delivery_deadline", d.delivery_deadline),
        title=opts.string("title", d.title),
        lmtp=lmtp,
        authserv_id=(
            opts.string("authserv_id", pattern=r"[^\s;()]+", hint="must be a host name")
            if raw.get("authserv_id") is not None
            else None
        ),
        unauthenticated=opts.choice(
            "unauthenticated", ("accept", "flag", "refuse"), d.unauthenticated
        ),
    )
