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

import base64
import binascii
import codecs
import email
import hashlib
import quopri
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from email import policy
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from html import escape
from typing import NamedTuple, TypeVar
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

from .sanitize import (
    VOID_TAGS,
    HtmlNode,
    clean_text,
    html_to_text,
    parse_html,
    sanitize_html,
    serialize,
)

AUTO_REPLY_PREFIX = "🤖 Automatic reply: "
UNKNOWN_SENDER = "unknown@invalid"
EML_FILENAME = "original.eml"
MAX_REFERENCES = 100
MAX_MIME_DEPTH = 30
MAX_PARTS = 500
"""MIME parts looked at; the rest is only in ``original.eml``."""
MAX_TRIM_TEXT = 500_000
MAX_TRIM_HTML = 1_000_000
"""Larger bodies are shown untrimmed (trimming them would be slow)."""


class MailAttachment(NamedTuple):
    filename: str
    mimetype: str
    data: bytes
    content_id: str | None
    inline: bool


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


# --------------------------------------------------------------------------- entry points


def parse_mail(raw: bytes) -> ParsedMail:
    """Parse ``raw``; never raises, whatever the bytes."""
    raw = bytes(raw)
    msg, body = _structure(raw)
    headers = _Headers(msg, raw)
    get = headers.get

    message_id = _safe(lambda: _message_id(get("message-id")), None)
    if not message_id:
        message_id = f"sha256-{hashlib.sha256(raw).hexdigest()}@bridge"
    references: list[str] = _safe(lambda: _ids(get("references")), [])
    if len(references) > MAX_REFERENCES:
        references = references[:1] + references[-(MAX_REFERENCES - 1) :]
    subject = _safe(lambda: decode_header(get("subject") or "")[:1000], "")
    no_sender: tuple[str, str | None] = ("", None)
    sender = _safe(lambda: _sender(headers), no_sender)
    report = _safe(lambda: _bounce(msg), None) if msg is not None else None
    display: tuple[str, str | None, frozenset[int]] = ("", None, frozenset())
    forwarded = bool(_FORWARD_PREFIX.match(subject))
    text, html, hidden = _safe(lambda: _display(body, trim=not forwarded), display)

    in_reply_to: list[str] = _safe(lambda: _ids(get("in-reply-to")), [])
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
        to=_safe(lambda: [a for _, a in _addresses(get("to"))], []),
        date=_safe(lambda: _date(get("date")), None),
        auto_submitted=_safe(lambda: _auto_submitted(headers), True) or report is not None,
        envelope_empty=_safe(lambda: _envelope_empty(get("return-path")), False),
        text=text,
        html=html,
        attachments=body.attachments,
        is_bounce=bool(report and report.is_failure),
        bounce_original_message_id=original_id if report and report.is_failure else None,
        bounce_reason=report.reason if report and report.is_failure else None,
        raw=raw,
        hidden_attachments=hidden,
    )


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


def to_remote_event(
    mail: ParsedMail, *, chat_id: str, chat_name: str, eml_attachment: bool = True
) -> RemoteEvent:
    """The event for ``mail`` in the portal ``chat_id``: a ``RemoteDeliveryFailure`` for a
    bounce of a known message, else a ``RemoteMessage`` (a notice when machine-generated)."""
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
            extra={"index": i},
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
                extra={"index": index},
            )
        )
    text, html = mail.text, mail.html
    if mail.is_bounce:  # a bounce of something we cannot point at: say so in the room
        text = f"⚠️ A message could not be delivered: {mail.bounce_reason}"
        html = None
    elif mail.auto_submitted:
        text = AUTO_REPLY_PREFIX + text
        html = escape(AUTO_REPLY_PREFIX) + html if html else None
    references = [*mail.references, mail.message_id][-20:]
    return RemoteMessage(
        chat=chat,
        sender=RemoteUser(id=sender_id, displayname=mail.from_name),
        timestamp=mail.date,
        metadata={
            "portal": {
                "subject": mail.subject,
                "contact": mail.from_address,
                "contact_name": mail.from_name,
                "last_message_id": mail.message_id,
                "references": references,
            }
        },
        message_id=MessageID(mail.message_id),
        text=text,
        html=html,
        attachments=tuple(attachments),
        reply_to=None,
        notice=mail.auto_submitted or mail.is_bounce,
    )


# --------------------------------------------------------------------------- helpers

T = TypeVar("T")


def _safe(fn: Callable[[], T], default: T) -> T:
    try:
        return fn()
    except Exception:  # a broken mail must not stop the rest of it from being bridged
        return default


# --------------------------------------------------------------------------- charsets

_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "unicode-1-1-utf-7": "utf-7",
    "utf8mb4": "utf-8",
}
_LATIN1 = frozenset({"ascii", "iso8859-1"})
"""Labels that, as in browsers (WHATWG), mean windows-1252 when the bytes are not ASCII."""


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip("\"'").split("*", 1)[0].lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True):  # base64, rot13, zlib...
        return None
    return info.name


def decode_bytes(data: bytes, charset: str | None) -> str:
    """``data`` as text in ``charset``; undeclared or ASCII/Latin-1: UTF-8 if it is valid, else
    windows-1252; unknown charsets: UTF-8 with replacement characters. Never raises."""
    if charset is not None and _codec(charset) is None:
        return clean_text(data.decode("utf-8", "replace"))
    codec = _codec(charset)
    if codec is None or codec in _LATIN1:
        try:
            return clean_text(data.decode("utf-8"))
        except UnicodeDecodeError:
            return clean_text(data.decode("cp1252", "replace"))
    try:
        return clean_text(data.decode(codec, "replace"))
    except Exception:  # a codec that fails even with errors="replace"
        return clean_text(data.decode("utf-8", "replace"))


def _eight_bit(value: str) -> str:
    """A raw header value with its 8-bit bytes (surrogate-escaped by the parser) decoded."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    return decode_bytes(value.encode("utf-8", "surrogateescape"), None)


_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([BbQq])\?([^?\s]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])|\r?\n")


def _word_bytes(encoding: str, text: str) -> bytes:
    if encoding in "Bb":
        clean = re.sub(r"[^A-Za-z0-9+/]", "", text)
        if len(clean) % 4 == 1:
            clean = clean[:-1]
        try:
            return base64.b64decode(clean + "=" * (-len(clean) % 4))
        except (binascii.Error, ValueError):
            return text.encode()
    return quopri.decodestring(text.encode("utf-8", "replace"), header=True)


def decode_header(value: str) -> str:
    """An unstructured header value unfolded and decoded (RFC 2047 words, raw 8-bit bytes).
    Adjacent encoded words in one charset are joined before decoding, so a character split
    across two words survives."""
    value = _eight_bit(_FOLD.sub("", value))
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset: str | None = None
    position = 0

    def flush() -> None:
        if pending:
            out.append(decode_bytes(b"".join(pending), pending_charset or "utf-8"))
            pending.clear()

    for match in _ENCODED_WORD.finditer(value):
        gap = value[position : match.start()]
        charset = match.group(1)
        if gap and not (gap.isspace() and position > 0 and pending):
            flush()
            out.append(gap)
        if pending and charset.lower() != (pending_charset or "").lower():
            flush()
        pending_charset = charset
        pending.append(_word_bytes(match.group(2), match.group(3)))
        position = match.end()
    flush()
    out.append(value[position:])
    return clean_text("".join(out)).strip()


# --------------------------------------------------------------------------- headers


class _Headers:
    """The top-level header fields in raw form (lowercased names, first occurrence wins)."""

    def __init__(self, msg: Message | None, raw: bytes) -> None:
        self.items: list[tuple[str, str]] = []
        if msg is not None:
            self.items = _safe(lambda: [(str(k).lower(), str(v)) for k, v in msg.raw_items()], [])
        else:
            head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
            self.items = parse_header_block(head.decode("utf-8", "surrogateescape"))

    def get(self, name: str) -> str | None:
        for key, value in self.items:
            if key == name:
                return value
        return None

    def has(self, name: str) -> bool:
        return any(key == name for key, _ in self.items)


def parse_header_block(text: str) -> list[tuple[str, str]]:
    """``Name: value`` lines (with folded continuations) as (lowercased name, value) pairs."""
    fields: list[tuple[str, str]] = []
    for line in re.split(r"\r?\n", text):
        if line[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + " " + line.strip())
        elif ":" in line:
            name, _, value = line.partition(":")
            fields.append((name.strip().lower(), value.strip()))
    return fields


_ID = re.compile(r"<([^<>\s]{1,998})>")


def _ids(value: str | None) -> list[str]:
    if not value:
        return []
    text = _eight_bit(_FOLD.sub(" ", value))
    found = _ID.findall(text) or [t.strip("<>") for t in text.split() if "@" in t]
    ids: list[str] = []
    for item in found:
        item = clean_text(item).strip()
        if item and len(item) <= 998 and item not in ids:
            ids.append(item)
    return ids


def _message_id(value: str | None) -> str | None:
    ids = _ids(value)
    if ids:
        return ids[0]
    tokens = _eight_bit(_FOLD.sub(" ", value or "")).split()
    token = clean_text(tokens[0].strip("<>")) if tokens else ""
    return token[:998] or None


def _addresses(value: str | None) -> list[tuple[str | None, str]]:
    if not value:
        return []
    result: list[tuple[str | None, str]] = []
    for name, addr in getaddresses([_FOLD.sub(" ", value)]):
        addr = re.sub(r"[\s\x00-\x1f\x7f]", "", _eight_bit(addr)).lower()[:320]
        if addr:
            result.append((decode_header(name)[:256] or None, clean_text(addr)))
    return result


def _sender(headers: _Headers) -> tuple[str, str | None]:
    for name in ("from", "sender", "return-path"):
        found = _addresses(headers.get(name))
        if found:
            display, addr = found[0]
            return addr, display
    return "", None


def _date(value: str | None) -> float | None:
    if not value:
        return None
    when = parsedate_to_datetime(_FOLD.sub(" ", value).strip())
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


_AUTO_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})


def _auto_submitted(headers: _Headers) -> bool:
    auto = headers.get("auto-submitted")
    if auto is not None and auto.split(";")[0].strip().lower() != "no":
        return True
    precedence = (headers.get("precedence") or "").strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        return True
    return headers.has("x-autoreply") or headers.has("x-autorespond")


def _envelope_empty(value: str | None) -> bool:
    return value is not None and re.sub(r"\s", "", value) == "<>"


_SUBJECT_PREFIX = re.compile(
    r"^(?:\s*(?:re|fwd?|aw|wg|sv|vs|antw|antwort|tr|rif|ref|odp|res|enc|rv|回复|回覆|答复|转发|轉寄)"
    r"\s*(?:\[\d{1,4}\]|\(\d{1,4}\))?\s*[:：])+",
    re.IGNORECASE,
)


_FORWARD_PREFIX = re.compile(
    r"\s*(?:fwd?|wg|tr|enc|rv|转发|轉寄)\s*(?:\[\d{1,4}\]|\(\d{1,4}\))?\s*[:：]", re.IGNORECASE
)
"""A forward: what looks like quoted history is the content, so nothing is trimmed."""


def normalize_subject(subject: str) -> str:
    """``subject`` without Re:/Fwd:/AW:/WG:/Sv:... prefixes, whitespace collapsed."""
    return " ".join(_SUBJECT_PREFIX.sub("", subject).split())


# --------------------------------------------------------------------------- MIME structure


@dataclass
class _Body:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[MailAttachment] = field(default_factory=list)
    parts_left: list[int] = field(default_factory=lambda: [MAX_PARTS])
    """Shared by the bodies of one mail (alternatives collect into bodies of their own)."""


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
            _collect(msg, body, 0)
            return msg, body
        except Exception:  # the stdlib parser gave up: try the lenient policy, then raw text
            continue
    body_bytes = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[-1]
    return None, _Body(plain=[decode_bytes(body_bytes, None)])


_REPORT_PARTS = frozenset(
    {"message/delivery-status", "message/global-delivery-status", "text/rfc822-headers",
     "message/global-headers", "message/disposition-notification", "message/feedback-report",
     "message/global-disposition-notification"}
)  # fmt: skip


def _content_type(part: Message) -> str:
    ctype = _safe(part.get_content_type, "application/octet-stream")
    return ctype if re.fullmatch(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", ctype) else "text/plain"


def _collect(part: Message, body: _Body, depth: int) -> None:
    if depth > MAX_MIME_DEPTH or body.parts_left[0] <= 0:
        return
    body.parts_left[0] -= 1
    ctype = _content_type(part)
    payload = part.get_payload()
    if ctype in ("message/rfc822", "message/global") or ctype in _REPORT_PARTS:
        body.attachments.append(_attachment(part, ctype, _message_bytes(part)))
    elif isinstance(payload, list) and ctype == "multipart/alternative":
        choices = []
        for child in _messages(payload):
            sub = _Body(parts_left=body.parts_left)
            _collect(child, sub, depth + 1)
            choices.append(sub)
        plain = next((c.plain for c in choices if any(p.strip() for p in c.plain)), [])
        html = next((c.html for c in reversed(choices) if any(h.strip() for h in c.html)), [])
        body.plain.extend(plain)
        body.html.extend(html)
        for choice in choices:
            body.attachments.extend(choice.attachments)
    elif isinstance(payload, list):
        for child in _messages(payload):
            _collect(child, body, depth + 1)
    elif ctype in ("text/plain", "text/html") and not _is_attachment(part):
        (body.plain if ctype == "text/plain" else body.html).append(_part_text(part, ctype))
    elif ctype.startswith("multipart/"):  # boundary lost: show what is there as text
        body.plain.append(_part_text(part, "text/plain"))
    else:
        body.attachments.append(_attachment(part, ctype, _part_bytes(part)))


def _disposition(part: Message) -> str | None:
    return _safe(part.get_content_disposition, None)


def _is_attachment(part: Message) -> bool:
    return _disposition(part) == "attachment" or _filename(part) is not None


def _filename(part: Message) -> str | None:
    name = _safe(part.get_filename, None)
    if not isinstance(name, str):
        return None
    name = decode_header(name)
    name = re.sub(r"[\x00-\x1f\x7f]", "", name.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = stem[:190] + dot + ext[:9] if dot and len(ext) < 10 else name[:200]
    return name or None


_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "message/rfc822": ".eml",
    "message/global": ".eml",
    "message/delivery-status": ".txt",
    "text/rfc822-headers": ".txt",
}


def _attachment(part: Message, ctype: str, data: bytes) -> MailAttachment:
    filename = _filename(part)
    if filename is None and ctype in ("message/rfc822", "message/global"):
        inner = _messages(_safe(part.get_payload, None))
        subject = decode_header(_Headers(inner[0], b"").get("subject") or "") if inner else ""
        filename = re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", subject)[:100].strip() + ".eml"
        filename = "message.eml" if filename == ".eml" else filename
    if filename is None:
        filename = ("attachment" if ctype not in _REPORT_PARTS else "details") + _EXTENSIONS.get(
            ctype, ".bin"
        )
    raw_id = _Headers(part, b"").get("content-id") or ""
    content_id = clean_text(_FOLD.sub("", raw_id).strip().strip("<>").strip())[:998] or None
    disposition = _disposition(part)
    inline = disposition == "inline" or (disposition is None and content_id is not None)
    return MailAttachment(filename, ctype, data, content_id, inline)


def _part_bytes(part: Message) -> bytes:
    data = _safe(lambda: part.get_payload(decode=True), None)
    if isinstance(data, bytes):
        return data
    payload = _safe(part.get_payload, None)
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogateescape")
    return b""


def _message_bytes(part: Message) -> bytes:
    payload = _safe(part.get_payload, None)
    if isinstance(payload, list):
        return b"\n".join(_as_bytes(item) for item in _messages(payload))
    return _part_bytes(part)


def _as_bytes(msg: Message) -> bytes:
    try:
        return msg.as_bytes(policy=policy.compat32)
    except Exception:  # the generator can fail on what the parser accepted
        return str(msg).encode("utf-8", "surrogateescape") if _safe(msg.keys, None) else b""


def _messages(payload: object) -> list[Message]:
    return [m for m in payload if isinstance(m, Message)] if isinstance(payload, list) else []


def _param(part: Message, name: str, header: str = "content-type") -> str | None:
    try:
        value = part.get_param(name, None, header)
    except Exception:  # a header the parser cannot make sense of
        return None
    if isinstance(value, tuple):
        value = value[2]
    return value.strip() if isinstance(value, str) else None


_META_CHARSET = re.compile(
    rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_:.-]{1,40})", re.IGNORECASE
)


def _part_text(part: Message, ctype: str) -> str:
    data = _part_bytes(part)
    charset = _safe(part.get_content_charset, None)
    if ctype == "text/html" and not charset:
        match = _META_CHARSET.search(data[:4096])
        charset = match.group(1).decode("ascii") if match else None
    text = decode_bytes(data, charset).removeprefix("\ufeff")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if ctype == "text/plain" and (_param(part, "format") or "").lower() == "flowed":
        text = unflow(text, delsp=(_param(part, "delsp") or "").lower() == "yes")
    return text


def unflow(text: str, delsp: bool = False) -> str:
    """Joins the soft line breaks of ``format=flowed`` text (RFC 3676)."""
    out: list[str] = []
    current: tuple[int, str] | None = None
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        content = content[1:] if content.startswith(" ") else content
        soft = content.endswith(" ") and content != "-- "
        if soft and delsp:
            content = content[:-1]
        if current is not None and current[0] == depth:
            current = (depth, current[1] + content)
        else:
            if current is not None:
                out.append(_quoted(*current))
            current = (depth, content)
        if not soft:
            out.append(_quoted(*current))
            current = None
    if current is not None:
        out.append(_quoted(*current))
    return "\n".join(out)


def _quoted(depth: int, content: str) -> str:
    return ">" * depth + " " + content if depth else content


# --------------------------------------------------------------------------- display


def _display(body: _Body, trim: bool = True) -> tuple[str, str | None, frozenset[int]]:
    """Plain text, sanitised HTML (both trimmed if ``trim``) and the hidden attachments."""
    plain = "\n".join(p.strip("\n") for p in body.plain if p.strip())
    raw_html = "\n".join(h for h in body.html if h.strip())
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


# --------------------------------------------------------------------------- trimming

_ATTRIBUTIONS = (
    (r"On", r"wrote"),
    (r"Am", r"(?:schrieb|geschrieben)[^\n]{0,200}?"),
    (r"Le", r"a\s+écrit"),
    (r"El", r"escribió"),
    (r"Op", r"schreef[^\n]{0,200}?"),
    (r"Il", r"ha\s+scritto"),
    (r"Den", r"skrev[^\n]{0,200}?"),
)
_ATTRIBUTION = re.compile(
    r"^[ \t]*(?:"
    + "|".join(
        rf"{start}\b[^\n]{{0,300}}?(?:\n(?![ \t]*>)[^\n]{{0,300}}?){{0,2}}\b{verb}[ \t]*:"
        for start, verb in _ATTRIBUTIONS
    )
    + r")[ \t]*$",
    re.MULTILINE,
)
_ATTRIBUTION_LINE = re.compile(
    r"(?:"
    + "|".join(rf"{start}\b.{{0,400}}?\b{verb}[ \t]*:" for start, verb in _ATTRIBUTIONS)
    + r")"
)
_SEPARATOR = re.compile(
    r"-{2,}[ \t]*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original"
    r"|Messaggio originale|Oorspronkelijk bericht|Originalmeddelande|Původní zpráva"
    r"|Wiadomość oryginalna|Opprinnelig melding)[ \t]*-{2,}",
    re.IGNORECASE,
)
_FROM_LABEL = re.compile(r"\*?(?:From|Von|De|Van|Da|Från|Fra|Od)[ \t]?:", re.IGNORECASE)
_SENT_LABEL = re.compile(
    r"\*?(?:Sent|Gesendet|Envoyé|Enviado|Verzonden|Inviato|Skickat|Sendt|Wysłano)[ \t]?:",
    re.IGNORECASE,
)
_RULE = re.compile(r"[ \t]*(?:_{10,}|-{10,})[ \t]*")
_WROTE_END = re.compile(
    r"(?:wrote|schrieb|geschrieben|écrit|escribió|schreef|skrev|scritto)[ \t]*:[ \t]*$",
    re.IGNORECASE,
)


def _reply_header_start(text: str) -> int | None:
    """Where the first quoted-history header of plain ``text`` begins, if anywhere."""
    candidates: list[int] = []
    for match in _ATTRIBUTION.finditer(text):
        if any(ch.isdigit() for ch in match.group(0)):
            candidates.append(match.start())
            break
    separator = re.search(r"^[ \t]*" + _SEPARATOR.pattern + r"[ \t]*$", text, re.M | re.I)
    if separator:
        candidates.append(separator.start())
    lines = text.split("\n")
    offset = 0
    for i, line in enumerate(lines):
        if _FROM_LABEL.match(line.lstrip()) and (
            _SENT_LABEL.search(line)
            or any(_SENT_LABEL.match(following.lstrip()) for following in lines[i + 1 : i + 7])
        ):
            start = offset
            previous = [j for j in range(i) if lines[j].strip()][-1:]
            if previous and _RULE.fullmatch(lines[previous[0]]):
                start = sum(len(line) + 1 for line in lines[: previous[0]])
            candidates.append(start)
            break
        offset += len(line) + 1
    return min(candidates) if candidates else None


def trim_text(text: str) -> str:
    """Plain ``text`` without quoted history (from the first reply header on, trailing
    ``>`` blocks) and without the signature (from a "-- " line on). Falls back to the whole
    text rather than return nothing."""
    original = "\n".join(line.rstrip() for line in text.strip("\n").split("\n")).strip("\n")
    if len(original) > MAX_TRIM_TEXT:
        return original
    cut = _reply_header_start(original)
    trimmed = original[:cut] if cut is not None else original
    lines = trimmed.split("\n")
    for i, line in enumerate(lines):
        if line.rstrip() == "--":
            lines = lines[:i]
            break
    quoted = False
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith(">")):
        quoted = quoted or lines[-1].lstrip().startswith(">")
        lines.pop()
    if quoted and lines and _WROTE_END.search(lines[-1]):
        lines.pop()
    result = "\n".join(lines).strip()
    return result or original.strip()


_QUOTE_CLASSES = frozenset(
    {"gmail_quote", "gmail_quote_container", "moz-cite-prefix", "yahoo_quoted",
     "protonmail_quote", "gmail_signature", "moz-signature"}
)  # fmt: skip
_CUT_IDS = frozenset(
    {"divrplyfwdmsg", "appendonsend", "stopspelling", "mail-editor-reference-message-container"}
)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|mso-hide\s*:\s*all", re.IGNORECASE)


def trim_html(html: str) -> str:
    """``html`` (unsanitised) without quoted history and signature blocks: cited blockquotes,
    Gmail/Thunderbird/Yahoo quote and signature elements, hidden elements, and everything from
    Outlook's reply markers or a reply header on. Returns ``html`` unchanged when it cannot be
    parsed."""
    if len(html) > MAX_TRIM_HTML:
        return html
    try:
        root = parse_html(html)
    except ValueError:
        return html
    doomed = {
        id(node)
        for node in root.iter()
        if node.tag is not None
        and (
            (node.tag == "blockquote" and node.attrs.get("type", "").lower() == "cite")
            or not _QUOTE_CLASSES.isdisjoint(node.classes())
            or _HIDDEN_STYLE.search(node.attrs.get("style", ""))
        )
    }
    for node in root.iter():
        if any(id(child) in doomed for child in node.children):
            node.children = [child for child in node.children if id(child) not in doomed]
    cut = _html_cut_point(root)
    if cut is not None:
        _cut_from(cut)
    _strip_trailing(root)
    return serialize(root)


def _html_cut_point(root: HtmlNode) -> HtmlNode | None:
    """The first node of quoted history or signature in document order, if any."""
    texts: list[tuple[HtmlNode, str]] = []
    marker: HtmlNode | None = None
    for node in root.iter():
        if node.tag is not None:
            if node.attrs.get("id", "").lower() in _CUT_IDS:
                marker = node
                break
            continue
        raw = node.text.replace("\xa0", " ")
        if raw.strip("\r\n") == "-- ":
            marker = node
            break
        if text := " ".join(raw.split()):
            texts.append((node, text))
    for i, (node, text) in enumerate(texts):
        if _SEPARATOR.fullmatch(text):
            return node
        if _FROM_LABEL.match(text) and (
            _SENT_LABEL.search(text) or any(_SENT_LABEL.match(t) for _, t in texts[i + 1 : i + 7])
        ):
            return node
        joined = text
        for j in range(i, min(i + 4, len(texts))):
            if j > i:
                joined += " " + texts[j][1]
            if _ATTRIBUTION_LINE.fullmatch(joined) and any(ch.isdigit() for ch in joined):
                return node
    return marker


def _cut_from(node: HtmlNode) -> None:
    """Remove ``node`` and everything after it in document order."""
    child, keep_child = node, False
    while child.parent is not None:
        parent = child.parent
        index = next(i for i, c in enumerate(parent.children) if c is child)
        parent.children = parent.children[: index + 1 if keep_child else index]
        child, keep_child = parent, True


def _strip_trailing(node: HtmlNode) -> bool:
    """Drop trailing whitespace, breaks, rules and empty elements; True if nothing is left."""
    while node.children:
        last = node.children[-1]
        if last.tag is None:
            if last.text.replace("\xa0", " ").strip():
                return False
        elif last.tag == "img":
            return False
        elif last.tag not in VOID_TAGS and not _strip_trailing(last):
            return False
        node.children.pop()
    return True


# --------------------------------------------------------------------------- bounces (RFC 3464)


@dataclass(frozen=True)
class _Report:
    is_failure: bool
    """False for reports that only say "delayed", "delivered", "relayed" or "expanded"."""
    original_id: str | None
    reason: str


_NOT_FAILED = frozenset({"delayed", "delivered", "relayed", "expanded"})
_STATUS_TEXT = {
    "1.1": "bad destination mailbox address",
    "1.2": "bad destination system address",
    "1.3": "bad destination mailbox address syntax",
    "1.6": "destination mailbox has moved",
    "1.10": "recipient address has null MX",
    "2.1": "mailbox disabled",
    "2.2": "mailbox full",
    "2.3": "message length exceeds administrative limit",
    "3.4": "message too big for system",
    "4.1": "no answer from host",
    "4.4": "unable to route",
    "4.7": "delivery time expired",
    "7.1": "delivery not authorized, message refused",
    "7.26": "multiple authentication checks failed",
}


def _find_report(part: Message, depth: int) -> Message | None:
    if depth > MAX_MIME_DEPTH:
        return None
    ctype = _content_type(part)
    if ctype == "multipart/report":
        if (_param(part, "report-type") or "").lower() == "delivery-status":
            return part
    if ctype.startswith("multipart/"):
        for child in _messages(part.get_payload()):
            if found := _find_report(child, depth + 1):
                return found
    return None


def _status_blocks(part: Message) -> list[list[tuple[str, str]]]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [
            [(name, _eight_bit(_FOLD.sub(" ", value)).strip()) for name, value in block.items]
            for block in (_Headers(m, b"") for m in _messages(payload))
        ]
    text = decode_bytes(_part_bytes(part), None).replace("\r\n", "\n")
    return [parse_header_block(block) for block in re.split(r"\n[ \t]*\n", text)]


def _typed_value(value: str) -> str:
    """``rfc822; a@b`` → ``a@b``, ``smtp; 550 ...`` → ``550 ...``, whitespace collapsed."""
    kind, sep, rest = value.partition(";")
    if sep and re.fullmatch(r"\s*[A-Za-z0-9-]{1,20}\s*", kind):
        value = rest
    return " ".join(clean_text(value).split())


def _recipient_failed(fields: dict[str, str]) -> bool:
    action = (fields.get("action") or "").strip().lower().split(" ")[0]
    if action == "failed":
        return True
    if action in _NOT_FAILED:
        return False
    status = fields.get("status", "").strip()
    return not status or status.startswith("5")


def _recipient_reason(fields: dict[str, str]) -> str:
    diagnostic = _typed_value(fields.get("diagnostic-code", ""))
    status = fields.get("status", "").strip().split(" ")[0]
    if diagnostic:
        reason = diagnostic[:500]
    elif status:
        detail = _STATUS_TEXT.get(status.partition(".")[2])
        reason = f"{status} {detail}" if detail else status
    else:
        reason = (fields.get("action") or "").strip() or "undeliverable"
    recipient = fields.get("final-recipient") or fields.get("original-recipient") or ""
    recipient = _typed_value(recipient)
    return f"{reason} ({recipient[:320]})" if recipient else reason


def _bounce(msg: Message) -> _Report | None:
    report = _find_report(msg, 0)
    if report is None:
        return None
    blocks: list[list[tuple[str, str]]] = []
    original_id: str | None = None
    for child in _messages(report.get_payload()):
        ctype = _content_type(child)
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            blocks.extend(_status_blocks(child))
        elif original_id is None and ctype in ("message/rfc822", "message/global"):
            inner = _messages(child.get_payload())
            if inner:
                original_id = _message_id(_Headers(inner[0], b"").get("message-id"))
        elif original_id is None and ctype in ("text/rfc822-headers", "message/global-headers"):
            fields = dict(reversed(parse_header_block(decode_bytes(_part_bytes(child), None))))
            original_id = _message_id(fields.get("message-id"))
    for block in blocks:
        for name, value in block:
            if original_id is None and name in ("original-message-id", "x-original-message-id"):
                original_id = _message_id(value)
    recipients = [
        dict(block)
        for block in blocks
        if any(k in ("final-recipient", "original-recipient", "action") for k, _ in block)
    ]
    failed = [r for r in recipients if _recipient_failed(r)]
    reason = "; ".join(_recipient_reason(r) for r in failed)[:2000]
    return _Report(
        is_failure=bool(failed) or not recipients,
        original_id=original_id,
        reason=reason or "the message could not be delivered",
    )
