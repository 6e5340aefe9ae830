"""Inbound mail as data: ``parse_mail`` turns raw RFC 5322 bytes into a ``ParsedMail``, and
``to_remote_event`` turns that into the remote event the core bridges.

Mail is hostile and often broken, so ``parse_mail`` never raises: headers are decoded from
their raw form (RFC 2047 words, raw 8-bit), bodies with their declared charset and
``errors="replace"``, and when the stdlib parser trips over a message the next, more lenient
way is tried. What is shown in Matrix is trimmed (quoted history, signatures); the untouched
original stays available as ``original.eml``. Attachments are numbered in one way that
``attachment_bytes`` repeats, so the connector can serve them from the stored raw mail.
"""

from __future__ import annotations

import email
import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from html import escape
from typing import Any
from urllib.parse import unquote

from bridge.events import (
    RemoteAttachment,
    RemoteChat,
    RemoteDeliveryFailure,
    RemoteEvent,
    RemoteMessage,
    RemoteUser,
)
from bridge.types import MessageID, RemoteChatID, RemoteUserID

from ..sanitize import clean_text, html_to_text, sanitize_html
from ..walker import bound_html
from .bounce import find_bounce
from .headers import (
    FORWARD_PREFIX,
    Headers,
    addresses_of,
    date_of,
    decode_header,
    envelope_is_empty,
    is_auto_submitted,
    message_id_of,
    message_ids,
    normalize_subject,
    recipients_of,
    safe,
    sender_of,
)
from .mime import (
    MAX_MIME_DEPTH,
    REPORT_PARTS,
    MailAttachment,
    content_type_of,
    is_attachment,
    make_attachment,
    message_bytes,
    part_bytes,
    part_text,
)
from .trim import trim_html, trim_text

AUTO_REPLY_PREFIX = "🤖 Automatic reply: "


UNKNOWN_SENDER = "unknown@invalid"


EML_FILENAME = "original.eml"


MAX_REFERENCES = 100


MAX_PARTS = 500
"""MIME parts looked at; the rest is only in ``original.eml`` (and the room is told so)."""
MAX_TEXT_BYTES = 16_000
MAX_HTML_BYTES = 32_000
"""What one Matrix event carries of a mail (a homeserver refuses events over 64 KiB); the
rest is in ``original.eml``. Longer HTML is left out rather than cut inside an element."""
NOT_READABLE = "⚠️ This mail could not be shown in full: {reason}. The original is attached."


@dataclass(frozen=True)
class ParsedMail:
    message_id: str
    """Without angle brackets; ``sha256-<hex>@bridge`` of the raw bytes when missing."""
    in_reply_to: list[str]
    references: list[str]
    """In header order, duplicates dropped; the root and the latest when very long."""
    subject: str
    normalized_subject: str
    """Without reply/forward prefixes, whitespace collapsed."""
    from_address: str
    """Lowercased addr-spec of ``From`` (else ``Sender``, else ``Return-Path``); may be ""."""
    from_name: str | None
    to: list[str]
    date: float | None
    auto_submitted: bool
    """Machine-generated: never answer it automatically (RFC 3834)."""
    envelope_empty: bool
    """``Return-Path: <>``: sent by a machine (RFC 5321 4.5.5); never answered either."""
    text: str
    """Plain text for display: quoted history and signature trimmed."""
    html: str | None
    """Sanitised, trimmed HTML, or None."""
    attachments: list[MailAttachment]
    is_bounce: bool
    bounce_original_message_id: str | None
    bounce_reason: str | None
    raw: bytes = field(repr=False)
    hidden_attachments: frozenset[int] = frozenset()
    """Indices of inline images used only by the trimmed-away quoted history or signature."""
    bounce_recipients: tuple[str, ...] = ()
    """The addresses a bounce says failed."""
    auth_results: tuple[str, ...] = ()
    """The ``Authentication-Results`` values, top first (see ``auth.check_sender``)."""
    unreadable: str | None = None
    """Why the mail could not be read in full (too deeply nested, too many elements, the
    parser gave up or took too long): it is bridged as a notice with the original attached."""
    notes: tuple[str, ...] = ()
    """What was left out of the shown text (parts beyond ``MAX_PARTS``, a cut long text)."""
    recipients: tuple[str, ...] = ()
    """Lower-cased, each once: the ``To``, ``Cc``, ``Delivered-To`` and ``X-Original-To``
    addresses, in that order."""

    @property
    def automatic(self) -> bool:
        """Sent by a machine: shown as a notice and never answered automatically."""
        return self.auto_submitted or self.envelope_empty


def parse_mail(raw: bytes) -> ParsedMail:
    """Parse ``raw``; never raises, whatever the bytes. The work is bounded (parts, nesting,
    HTML elements); still, it takes a while for large mails: the connector calls it off the
    event loop."""
    raw = bytes(raw)
    msg, body = _structure(raw)
    return _parsed(raw, msg, body)


def unreadable_mail(raw: bytes, reason: str) -> ParsedMail:
    """Only the headers of ``raw`` (a bounded, quick read), for a mail whose body could not be
    read (``reason``): bridged as a notice with the original attached."""
    raw = bytes(raw)
    return _parsed(raw, None, _Body(unreadable=reason))


def _parsed(raw: bytes, msg: Message | None, body: _Body) -> ParsedMail:
    headers = Headers(msg, raw)
    get = headers.get

    message_id = safe(lambda: message_id_of(get("message-id")), None)
    if not message_id:
        message_id = f"sha256-{hashlib.sha256(raw).hexdigest()}@bridge"
    references: list[str] = safe(lambda: message_ids(get("references")), [])
    if len(references) > MAX_REFERENCES:
        references = references[:1] + references[-(MAX_REFERENCES - 1) :]
    subject = safe(lambda: _one_line(decode_header(get("subject") or ""))[:1000], "")
    no_sender: tuple[str, str | None] = ("", None)
    sender = safe(lambda: sender_of(headers), no_sender)
    report = safe(lambda: find_bounce(msg), None) if msg is not None else None
    display: tuple[str, str | None, frozenset[int]] = ("", None, frozenset())
    forwarded = bool(FORWARD_PREFIX.match(subject))
    text, html, hidden = safe(lambda: _display(body, trim=not forwarded), display)
    notes = list(body.notes)
    if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
        text = _cut(text, MAX_TEXT_BYTES) + "…"
        notes.append("The text is longer than shown here; the original is attached.")
        html = None  # the cut plain text, with the note, is shown instead
    if html is not None and len(html.encode("utf-8")) > MAX_HTML_BYTES:
        html = None

    in_reply_to: list[str] = safe(lambda: message_ids(get("in-reply-to")), [])
    original_id = report.original_id if report else None
    if report and report.is_failure and not original_id:
        original_id = next(iter((in_reply_to or references)[-1:]), None)
    return ParsedMail(
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        subject=subject,
        normalized_subject=normalize_subject(subject),
        from_address=sender[0],
        from_name=sender[1],
        to=safe(lambda: [a for _, a in addresses_of(get("to"))], []),
        date=safe(lambda: date_of(get("date")), None),
        auto_submitted=safe(lambda: is_auto_submitted(headers), True) or report is not None,
        envelope_empty=safe(lambda: envelope_is_empty(get("return-path")), False),
        text=text,
        html=html,
        attachments=body.attachments,
        is_bounce=bool(report and report.is_failure),
        bounce_original_message_id=original_id if report and report.is_failure else None,
        bounce_reason=report.reason if report and report.is_failure else None,
        raw=raw,
        hidden_attachments=hidden,
        bounce_recipients=report.recipients if report and report.is_failure else (),
        auth_results=tuple(
            v[:2000] for k, v in headers.items[:200] if k == "authentication-results"
        ),
        unreadable=body.unreadable,
        notes=tuple(notes),
        recipients=safe(lambda: recipients_of(headers), ()),
    )


def _one_line(value: str) -> str:
    """A header value as one line: encoded words can carry CR, LF and other controls."""
    return re.sub(r"[\x00-\x1f\x7f\u0085\u2028\u2029]", " ", value).strip()


def _cut(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def mail_attachments(raw: bytes) -> list[MailAttachment]:
    """The attachments of ``raw``, numbered as in ``ParsedMail.attachments``."""
    return _structure(bytes(raw))[1].attachments


def content_digest(mail: ParsedMail) -> str:
    """Equal for two deliveries of one mail (whatever trace headers servers added on the way),
    different for another mail that reuses its Message-ID."""
    body = re.split(rb"\r?\n\r?\n", mail.raw, maxsplit=1)[-1].replace(b"\r\n", b"\n")
    digest = hashlib.sha256(body)
    for value in (mail.subject, mail.from_address, str(mail.date)):
        digest.update(b"\x00" + value.encode("utf-8", "replace"))
    return digest.hexdigest()


def attachment_bytes(raw: bytes, index: int) -> tuple[bytes, str, str]:
    """``(data, mimetype, filename)`` of attachment ``index`` as numbered in
    ``ParsedMail.attachments``; index ``len(attachments)`` is the raw mail itself. Raises
    ``IndexError`` for any other index."""
    raw = bytes(raw)
    attachments = _structure(raw)[1].attachments
    if index == len(attachments):
        return raw, "message/rfc822", EML_FILENAME
    if not 0 <= index < len(attachments):
        raise IndexError(f"the mail has no part {index}")
    part = attachments[index]
    return part.data, part.mimetype, part.filename


def written_to(mail: ParsedMail, own_addresses: Collection[str]) -> str | None:
    """The address of the account's mailbox the customer wrote to: the first recipient of
    ``mail`` that is one of ``own_addresses``, else the first ``To`` address."""
    own = {address.lower() for address in own_addresses}
    return next((a for a in mail.recipients if a in own), None) or next(iter(mail.to), None)


def to_remote_event(
    mail: ParsedMail,
    *,
    chat_id: str,
    chat_name: str,
    eml_attachment: bool = True,
    own_addresses: Collection[str] = (),
) -> RemoteEvent:
    """The event for ``mail`` in the portal ``chat_id``: a ``RemoteDeliveryFailure`` for a
    bounce of a known message, else a ``RemoteMessage`` (a notice when machine-generated),
    whose routing facts name the one of ``own_addresses`` the customer wrote to."""
    chat = RemoteChat(id=RemoteChatID(chat_id), name=chat_name)
    sender_id = RemoteUserID(mail.from_address or UNKNOWN_SENDER)
    if mail.is_bounce and mail.bounce_original_message_id:
        return RemoteDeliveryFailure(
            chat=chat,
            sender=RemoteUser(id=sender_id),
            timestamp=mail.date,
            message_id=MessageID(mail.bounce_original_message_id),
            reason=mail.bounce_reason or "the message could not be delivered",
        )
    attachments = [
        RemoteAttachment(
            url=f"mail-part:{i}",
            filename=part.filename,
            mimetype=part.mimetype,
            size=len(part.data),
            extra={
                "index": i,
                "section": part.section,
                "encoding": part.encoding,
                "sha256": hashlib.sha256(part.data).hexdigest(),
            },
        )
        for i, part in enumerate(mail.attachments)
        if i not in mail.hidden_attachments
    ]
    if eml_attachment:
        index = len(mail.attachments)
        attachments.append(
            RemoteAttachment(
                url=f"mail-part:{index}",
                filename=EML_FILENAME,
                mimetype="message/rfc822",
                size=len(mail.raw),
                extra={
                    "index": index,
                    "original": True,
                    "section": "",
                    "sha256": hashlib.sha256(mail.raw).hexdigest(),
                },
            )
        )
    text, html = mail.text, mail.html
    if mail.notes:
        text = "\n\n".join([text, *(f"⚠️ {note}" for note in mail.notes)]).strip()
        html = html + "".join(f"<p>⚠️ {escape(note)}</p>" for note in mail.notes) if html else None
    if mail.unreadable:
        text = "\n\n".join([NOT_READABLE.format(reason=mail.unreadable), text]).strip()
        html = None
    if mail.is_bounce:  # a bounce of something we cannot point at: say so in the room
        text = f"⚠️ A message could not be delivered: {mail.bounce_reason}"
        html = None
    elif mail.automatic:
        text = AUTO_REPLY_PREFIX + text
        html = escape(AUTO_REPLY_PREFIX) + html if html else None
    references = [*mail.references, mail.message_id][-20:]
    metadata: dict[str, Any] = {
        "portal": {
            "subject": mail.subject,
            "contact": mail.from_address,
            "contact_name": mail.from_name,
            "last_message_id": mail.message_id,
            "references": references,
            "last_automatic": mail.automatic,
        }
    }
    to = written_to(mail, own_addresses)
    if to:
        metadata["routing"] = {"to": to}
    return RemoteMessage(
        chat=chat,
        sender=RemoteUser(id=sender_id, displayname=mail.from_name),
        timestamp=mail.date,
        metadata=metadata,
        message_id=MessageID(mail.message_id),
        text=text,
        html=html,
        attachments=tuple(attachments),
        reply_to=None,
        notice=mail.automatic or mail.is_bounce or mail.unreadable is not None,
    )


@dataclass
class _Body:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[MailAttachment] = field(default_factory=list)
    parts_left: list[int] = field(default_factory=lambda: [MAX_PARTS])
    """Shared by the bodies of one mail (alternatives collect into bodies of their own)."""
    skipped: list[int] = field(default_factory=lambda: [0, 0])
    """Parts left out (beyond ``MAX_PARTS``, nested deeper than ``MAX_MIME_DEPTH``); shared."""
    unreadable: str | None = None

    @property
    def notes(self) -> list[str]:
        many, deep = self.skipped
        notes = []
        if many:
            notes.append(
                f"This mail has {many} more parts than the {MAX_PARTS} shown here; "
                "they are in the attached original."
            )
        if deep:
            notes.append(
                f"{deep} parts nested more than {MAX_MIME_DEPTH} levels deep are left out; "
                "they are in the attached original."
            )
        return notes


_CONTENT_TYPE_LINE = re.compile(rb"^content-type:", re.IGNORECASE | re.MULTILINE)


def _structure(raw: bytes) -> tuple[Message | None, _Body]:
    """The parsed message and its bodies and attachments; the same for the same bytes."""
    # policy.default parses each part's headers into objects, slow for thousands of parts.
    many_parts = len(_CONTENT_TYPE_LINE.findall(raw)) > 2 * MAX_PARTS
    policies = (policy.compat32,) if many_parts else (policy.default, policy.compat32)
    for mail_policy in policies:
        try:
            msg = email.message_from_bytes(raw, policy=mail_policy)
            body = _Body()
            _collect(msg, body, 0, "")
            return msg, body
        except Exception:  # the stdlib parser gave up: try the lenient policy, then raw text
            continue
    return None, _Body(unreadable="its structure is too complex for the mail parser")


def _collect(part: Message, body: _Body, depth: int, section: str) -> None:
    """``section`` is the IMAP section of ``part`` ("" for the mail itself): the parts of a
    multipart are numbered from 1 under it, a single part of the mail itself is ``1``."""
    if depth > MAX_MIME_DEPTH:
        body.skipped[1] += 1
        return
    if body.parts_left[0] <= 0:
        body.skipped[0] += 1
        return
    body.parts_left[0] -= 1
    ctype = content_type_of(part)
    payload = part.get_payload()
    own = section or "1"
    if ctype in ("message/rfc822", "message/global") or ctype in REPORT_PARTS:
        body.attachments.append(make_attachment(part, ctype, message_bytes(part), own))
    elif isinstance(payload, list) and ctype == "multipart/alternative":
        choices = []
        for child, child_section in _children(payload, section):
            sub = _Body(parts_left=body.parts_left, skipped=body.skipped)
            _collect(child, sub, depth + 1, child_section)
            choices.append(sub)
        plain = next((c.plain for c in choices if any(p.strip() for p in c.plain)), [])
        html = next((c.html for c in reversed(choices) if any(h.strip() for h in c.html)), [])
        body.plain.extend(plain)
        body.html.extend(html)
        for choice in choices:
            body.attachments.extend(choice.attachments)
    elif isinstance(payload, list):
        for child, child_section in _children(payload, section):
            _collect(child, body, depth + 1, child_section)
    elif ctype in ("text/plain", "text/html") and not is_attachment(part):
        (body.plain if ctype == "text/plain" else body.html).append(part_text(part, ctype))
    elif ctype.startswith("multipart/"):  # boundary lost: show what is there as text
        body.plain.append(part_text(part, "text/plain"))
    else:
        body.attachments.append(make_attachment(part, ctype, part_bytes(part), own))


def _children(payload: list[Any], section: str) -> list[tuple[Message, str]]:
    return [
        (child, f"{section}.{i}" if section else str(i))
        for i, child in enumerate(payload, 1)
        if isinstance(child, Message)
    ]


def _display(body: _Body, trim: bool = True) -> tuple[str, str | None, frozenset[int]]:
    """Plain text, sanitised HTML (both trimmed if ``trim``) and the hidden attachments."""
    plain = "\n".join(p.strip("\n") for p in body.plain if p.strip())
    raw_html = "\n".join(h for h in body.html if h.strip())
    raw_html, cut = bound_html(raw_html)
    if cut and body.unreadable is None:
        body.unreadable = "its HTML is nested too deeply or has too many elements"
    html: str | None = None
    hidden: frozenset[int] = frozenset()
    html_text = ""
    if raw_html:
        trimmed = trim_html(raw_html) if trim else raw_html
        html = sanitize_html(trimmed)
        html_text = html_to_text(html)
        if not html_text:
            trimmed, html = raw_html, sanitize_html(raw_html)
            html_text = html_to_text(html)
        html = html or None
        used, shown = _cids(raw_html), _cids(trimmed)
        hidden = frozenset(
            i
            for i, part in enumerate(body.attachments)
            if part.content_id and part.content_id.lower() in used - shown
        )
    if plain.strip():
        text = trim_text(plain) if trim else plain.strip()
    else:
        text = html_text
    return clean_text(text), clean_text(html) if html else None, hidden


def _cids(html: str) -> set[str]:
    return {unquote(c).lower() for c in re.findall(r"cid:([^\"'\s>)]{1,998})", html, re.I)}
