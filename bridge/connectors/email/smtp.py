"""Writing mail: a staff reply as a threaded multipart mail, sent through SMTP.

A message the bridge starts (a broadcast, a confirmation mail) may carry a few more headers
(``MatrixMessage.headers``): only those of ``EXTRA_HEADERS``, each at most once, no control
characters, at most 998 characters; the list headers in printable ASCII, written as given
(never folded into encoded words, which would hide their URLs from mail clients). Anything
else refuses the message, before anything is sent. To an address without a conversation
(the chat id is the address itself) the mail goes out as a new one, not as a reply; so does
list mail (a ``List-*`` header: a broadcast), also to a customer who wrote before."""

from __future__ import annotations

import email.policy
import hashlib
import re
from collections.abc import Sequence
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
ADDRESS = re.compile(
    r"[^@\s<>,;:\"()\[\]\\\x00-\x1f\x7f]{1,200}@[^@\s<>,;:\"()\[\]\\\x00-\x1f\x7f]{1,200}"
)


EXTRA_HEADERS = {
    name.lower(): name
    for name in ("List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "Precedence", "Subject")
}
"""Headers a message the bridge starts may carry (``MatrixMessage.headers``), by lower name."""
MAX_HEADER = 998
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
POLICY = email.policy.SMTP.clone(refold_source="none")
"""Headers set raw (the list headers) are written as they are."""


def extra_headers(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """``headers`` by their proper names, checked (see the module docstring)."""
    found: dict[str, str] = {}
    for given, value in headers:
        name = EXTRA_HEADERS.get(str(given).lower())
        if name is None:
            raise PermanentDeliveryError(f"the bridge does not set the mail header {given!r}")
        if name in found:
            raise PermanentDeliveryError(f"the mail header {name} is given twice")
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_HEADER:
            raise PermanentDeliveryError(f"the mail header {name} is empty or too long")
        if _CONTROL.search(value) or (name != "Subject" and not _PRINTABLE_ASCII.fullmatch(value)):
            raise PermanentDeliveryError(f"the mail header {name} holds characters it may not")
        found[name] = value
    return found


def _folded(name: str, value: str) -> str:
    """``value`` folded after its commas where the header's line would pass 998 characters."""
    if len(name) + 2 + len(value) <= MAX_HEADER:
        return value
    folded = ",\r\n ".join(part.strip() for part in value.split(","))
    if any(len(line) > MAX_HEADER for line in f"{name}: {folded}".split("\r\n")):
        raise PermanentDeliveryError(f"the mail header {name} is too long")
    return folded


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
    headers: Sequence[tuple[str, str]] = (),
) -> EmailMessage:
    """A reply in the conversation described by the portal's ``meta`` (contact, subject,
    last message id, references), or a new mail when ``meta`` has only the contact. With
    ``source_id`` (the Matrix event id) the Message-ID is derived from it, so a mail sent
    again after a crash has the same Message-ID and mail systems can recognise the repeat."""
    contact = meta.get("contact")
    if not isinstance(contact, str) or not ADDRESS.fullmatch(contact):
        raise PermanentDeliveryError("this conversation has no e-mail address to answer")
    extra = extra_headers(headers)
    last = meta.get("last_message_id")
    last_id = last if isinstance(last, str) and _MESSAGE_ID.fullmatch(last) else None
    if any(name.startswith("List-") for name in extra):
        # List mail is no reply in the customer's conversation.
        meta, last_id = {"contact": contact, "contact_name": meta.get("contact_name")}, None
    replying = last_id is not None
    if "Subject" in extra:
        subject = header_text(extra.pop("Subject"), MAX_HEADER)
    elif replying or meta.get("subject"):
        subject = reply_subject(meta.get("subject"))
    else:
        subject = header_text(text.strip().split("\n", 1)[0], 78) or "(no subject)"
    msg = EmailMessage(policy=POLICY)
    name = config.sender_name_template.format(
        displayname=header_text(sender_name, 200), from_name=config.from_name
    )
    msg["From"] = formataddr((header_text(name, 300), config.from_address))
    msg["To"] = formataddr((header_text(meta.get("contact_name"), 300), contact))
    msg["Subject"] = subject
    msg["Date"] = format_datetime(email.utils.localtime())
    domain = config.from_address.split("@", 1)[1]
    if source_id:
        digest = hashlib.sha256(source_id.encode("utf-8", "replace")).hexdigest()[:32]
        msg["Message-ID"] = f"<bridge.{digest}@{domain}>"
    else:
        msg["Message-ID"] = make_msgid(domain=domain)
    references = [
        r for r in meta.get("references") or [] if isinstance(r, str) and _MESSAGE_ID.fullmatch(r)
    ]
    if last_id is not None:
        msg["In-Reply-To"] = f"<{last_id}>"
        if last_id not in references:
            references.append(last_id)
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references[-20:])
    if automatic:
        # RFC 3834: never answered by other robots; a mail the bridge starts is no reply.
        msg["Auto-Submitted"] = "auto-replied" if replying else "auto-generated"
    for name, value in extra.items():
        msg.set_raw(name, _folded(name, value))
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
    # Flattened here: aiosmtplib would refold the list headers with its own policy.
    data = msg.as_bytes(policy=POLICY)
    recipients = [address.addr_spec for address in msg["To"].addresses]
    try:
        await aiosmtplib.send(
            data,
            sender=config.from_address,
            recipients=recipients,
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
