"""Writing mail: a staff reply as a threaded multipart mail, sent through SMTP."""

from __future__ import annotations

import email.policy
import hashlib
import re
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

import aiosmtplib

from ...connector import PermanentDeliveryError, TemporaryDeliveryError
from .config import EmailConfig
from .imap import tls_context

REPLY_PREFIXES = ("re:", "aw:", "sv:", "antw:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_MESSAGE_ID = re.compile(r"[^<>\s\x00-\x1f\x7f\u0085\u2028\u2029]{1,900}")
_ADDRESS = re.compile(
    r"[^@\s<>,;:\"()\[\]\\\x00-\x1f\x7f]{1,200}@[^@\s<>,;:\"()\[\]\\\x00-\x1f\x7f]{1,200}"
)


def header_text(value: object, limit: int = 900) -> str:
    """``value`` fit for a header: the portal's metadata comes from remote mail, and a CR/LF
    in it would make every reply in the conversation fail (or add headers)."""
    return " ".join(_CONTROL.sub(" ", str(value or "")).split())[:limit]


def reply_subject(subject: str | None) -> str:
    subject = header_text(subject)
    if not subject:
        return "Re: (no subject)"
    return subject if subject.lower().startswith(REPLY_PREFIXES) else f"Re: {subject}"


def build_reply(
    config: EmailConfig,
    *,
    sender_name: str,
    meta: dict[str, Any],
    text: str,
    html: str | None,
    attachment: tuple[bytes, str, str] | None = None,
    automatic: bool = False,
    source_id: str | None = None,
) -> EmailMessage:
    """A reply in the conversation described by the portal's ``meta`` (contact, subject,
    last message id, references). With ``source_id`` (the Matrix event id) the Message-ID is
    derived from it, so a mail sent again after a crash has the same Message-ID and mail
    systems can recognise the repeat."""
    contact = meta.get("contact")
    if not isinstance(contact, str) or not _ADDRESS.fullmatch(contact):
        raise PermanentDeliveryError("this conversation has no e-mail address to answer")
    msg = EmailMessage(policy=email.policy.SMTP)
    name = config.sender_name_template.format(
        displayname=header_text(sender_name, 200), from_name=config.from_name
    )
    msg["From"] = formataddr((header_text(name, 300), config.from_address))
    msg["To"] = formataddr((header_text(meta.get("contact_name"), 300), contact))
    msg["Subject"] = reply_subject(meta.get("subject"))
    msg["Date"] = format_datetime(email.utils.localtime())
    domain = config.from_address.split("@", 1)[1]
    if source_id:
        digest = hashlib.sha256(source_id.encode("utf-8", "replace")).hexdigest()[:32]
        msg["Message-ID"] = f"<bridge.{digest}@{domain}>"
    else:
        msg["Message-ID"] = make_msgid(domain=domain)
    last = meta.get("last_message_id")
    references = [
        r for r in meta.get("references") or [] if isinstance(r, str) and _MESSAGE_ID.fullmatch(r)
    ]
    if isinstance(last, str) and _MESSAGE_ID.fullmatch(last):
        msg["In-Reply-To"] = f"<{last}>"
        if last not in references:
            references.append(last)
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references[-20:])
    if automatic:
        msg["Auto-Submitted"] = "auto-replied"  # RFC 3834: never answered by other robots
    msg.set_content(text or " ")
    if html:
        msg.add_alternative(html, subtype="html")
    if attachment is not None:
        data, mimetype, filename = attachment
        maintype, _, subtype = mimetype.partition("/")
        msg.add_attachment(
            data, maintype=maintype or "application", subtype=subtype or "octet-stream",
            filename=filename,
        )  # fmt: skip
    return msg


async def send(config: EmailConfig, msg: EmailMessage) -> None:
    server = config.smtp
    try:
        await aiosmtplib.send(
            msg,
            hostname=server.host,
            port=server.port,
            username=server.user,
            password=server.password,
            use_tls=server.security == "tls",
            start_tls=True if server.security == "starttls" else False,
            tls_context=tls_context(server) if server.security != "none" else None,
            timeout=60,
        )
    except aiosmtplib.SMTPRecipientsRefused as e:
        codes = [r.code for r in e.recipients]
        reason = "; ".join(f"{r.code} {r.message}" for r in e.recipients)
        if codes and all(c >= 500 for c in codes):
            raise PermanentDeliveryError(f"the recipient was refused: {reason}") from e
        raise TemporaryDeliveryError(f"the recipient was refused for now: {reason}") from e
    except aiosmtplib.SMTPResponseException as e:
        reason = f"the mail server answered {e.code} {e.message}"
        if 400 <= e.code < 500:
            raise TemporaryDeliveryError(reason) from e
        raise PermanentDeliveryError(reason) from e
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
        raise TemporaryDeliveryError(f"the mail server is unreachable: {e}") from e
