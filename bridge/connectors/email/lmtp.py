"""Mail pushed by the company's MTA over LMTP (RFC 2033), as an alternative to reading IMAP.

The MTA gets its ``250`` only after the mail is handed to the core and committed there, so a
mail is never lost between the two: a crash before that makes the MTA deliver it again, and
the repeat is recognised by its Message-ID. ``Return-Path`` is added from the envelope sender,
as a final delivery agent does, so bounces (``MAIL FROM:<>``) are told apart as in IMAP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope, Session

from ...logsafe import pii
from .config import LmtpConfig

log = logging.getLogger("bridge.email.lmtp")

Deliver = Callable[[bytes], Awaitable[None]]


class _Handler:
    def __init__(self, deliver: Deliver, recipients: frozenset[str]) -> None:
        self.deliver = deliver
        self.recipients = recipients

    async def handle_RCPT(  # noqa: N802
        self, server: LMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.strip().lower() not in self.recipients:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: LMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode("utf-8", "replace")
        sender = (envelope.mail_from or "").strip().strip("<>")  # aiosmtpd keeps "<>" as is
        raw = f"Return-Path: <{sender}>\r\n".encode("utf-8", "replace") + raw
        try:
            await self.deliver(raw)
            status = "250 2.0.0 Delivered"
        except Exception:
            log.exception("Could not accept pushed mail from <%s>", pii(sender))
            status = "451 4.3.0 Temporary failure, try again later"
        # LMTP answers DATA once per recipient; aiosmtpd writes the returned text as it is.
        return "\r\n".join([status] * max(1, len(envelope.rcpt_tos)))


class LmtpListener:
    """An LMTP server on ``config.host:config.port`` that hands each mail to ``deliver``."""

    def __init__(self, config: LmtpConfig, deliver: Deliver) -> None:
        self.config = config
        self.deliver = deliver
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the OS chose for port 0)."""
        if self._server is None or not self._server.sockets:
            return self.config.port
        return int(self._server.sockets[0].getsockname()[1])

    def _protocol(self) -> Any:
        return LMTP(
            _Handler(self.deliver, frozenset(a.lower() for a in self.config.recipients)),
            data_size_limit=self.config.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname="bridge",
            ident="Matrix bridge LMTP",
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, host=self.config.host, port=self.config.port
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
