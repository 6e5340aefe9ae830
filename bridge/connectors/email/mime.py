"""MIME parts: content types, attachments, filenames and text of one part, decoded leniently."""

from __future__ import annotations

import re
from email import policy
from email.message import Message
from typing import NamedTuple

from ..sanitize import clean_text
from .headers import FOLD, Headers, decode_bytes, decode_header, safe

MAX_MIME_DEPTH = 30


class MailAttachment(NamedTuple):
    filename: str
    mimetype: str
    data: bytes
    content_id: str | None
    inline: bool
    section: str | None = None
    """The IMAP body section of the part (``2``, ``1.3``), to fetch it alone later."""
    encoding: str = ""
    """Its ``Content-Transfer-Encoding`` as sent (lowercased); "" for none."""


REPORT_PARTS = frozenset(
    {"message/delivery-status", "message/global-delivery-status", "text/rfc822-headers",
     "message/global-headers", "message/disposition-notification", "message/feedback-report",
     "message/global-disposition-notification"}
)  # fmt: skip


def content_type_of(part: Message) -> str:
    ctype = safe(part.get_content_type, "application/octet-stream")
    return ctype if re.fullmatch(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", ctype) else "text/plain"


def _disposition(part: Message) -> str | None:
    return safe(part.get_content_disposition, None)


def is_attachment(part: Message) -> bool:
    return _disposition(part) == "attachment" or _filename(part) is not None


def _filename(part: Message) -> str | None:
    name = safe(part.get_filename, None)
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


def make_attachment(
    part: Message, ctype: str, data: bytes, section: str | None = None
) -> MailAttachment:
    filename = _filename(part)
    if filename is None and ctype in ("message/rfc822", "message/global"):
        inner = attached_messages(safe(part.get_payload, None))
        subject = decode_header(Headers(inner[0], b"").get("subject") or "") if inner else ""
        filename = re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", subject)[:100].strip() + ".eml"
        filename = "message.eml" if filename == ".eml" else filename
    if filename is None:
        filename = ("attachment" if ctype not in REPORT_PARTS else "details") + _EXTENSIONS.get(
            ctype, ".bin"
        )
    raw_id = Headers(part, b"").get("content-id") or ""
    content_id = clean_text(FOLD.sub("", raw_id).strip().strip("<>").strip())[:998] or None
    disposition = _disposition(part)
    inline = disposition == "inline" or (disposition is None and content_id is not None)
    encoding = safe(lambda: str(part.get("content-transfer-encoding", "")), "")
    encoding = encoding.strip().lower()
    return MailAttachment(filename, ctype, data, content_id, inline, section, encoding)


def part_bytes(part: Message) -> bytes:
    data = safe(lambda: part.get_payload(decode=True), None)
    if isinstance(data, bytes):
        return data
    payload = safe(part.get_payload, None)
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogateescape")
    return b""


def message_bytes(part: Message) -> bytes:
    payload = safe(part.get_payload, None)
    if isinstance(payload, list):
        return b"\n".join(_as_bytes(item) for item in attached_messages(payload))
    return part_bytes(part)


def _as_bytes(msg: Message) -> bytes:
    try:
        return msg.as_bytes(policy=policy.compat32)
    except Exception:  # the generator can fail on what the parser accepted
        return str(msg).encode("utf-8", "surrogateescape") if safe(msg.keys, None) else b""


def attached_messages(payload: object) -> list[Message]:
    return [m for m in payload if isinstance(m, Message)] if isinstance(payload, list) else []


def param_of(part: Message, name: str, header: str = "content-type") -> str | None:
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


def part_text(part: Message, ctype: str) -> str:
    data = part_bytes(part)
    charset = safe(part.get_content_charset, None)
    if ctype == "text/html" and not charset:
        match = _META_CHARSET.search(data[:4096])
        charset = match.group(1).decode("ascii") if match else None
    text = decode_bytes(data, charset).removeprefix("\ufeff")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if ctype == "text/plain" and (param_of(part, "format") or "").lower() == "flowed":
        text = unflow(text, delsp=(param_of(part, "delsp") or "").lower() == "yes")
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
