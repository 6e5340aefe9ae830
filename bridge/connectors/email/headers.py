"""Mail headers and charsets: RFC 2047 words, raw 8-bit, broken charsets, addresses, ids,
dates, automatic-mail markers and subjects, decoded without ever raising."""

from __future__ import annotations

import base64
import binascii
import codecs
import quopri
import re
from collections.abc import Callable
from datetime import UTC
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import TypeVar

from ..sanitize import clean_text

T = TypeVar("T")


def safe(fn: Callable[[], T], default: T) -> T:
    try:
        return fn()
    except Exception:  # a broken mail must not stop the rest of it from being bridged
        return default


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


def eight_bit(value: str) -> str:
    """A raw header value with its 8-bit bytes (surrogate-escaped by the parser) decoded."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    return decode_bytes(value.encode("utf-8", "surrogateescape"), None)


_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([BbQq])\?([^?\s]*)\?=")


FOLD = re.compile(r"\r?\n(?=[ \t])|\r?\n")


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
    value = eight_bit(FOLD.sub("", value))
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


class Headers:
    """The top-level header fields in raw form (lowercased names, first occurrence wins)."""

    def __init__(self, msg: Message | None, raw: bytes) -> None:
        self.items: list[tuple[str, str]] = []
        if msg is not None:
            self.items = safe(lambda: [(str(k).lower(), str(v)) for k, v in msg.raw_items()], [])
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


def message_ids(value: str | None) -> list[str]:
    if not value:
        return []
    text = eight_bit(FOLD.sub(" ", value))
    found = _ID.findall(text) or [t.strip("<>") for t in text.split() if "@" in t]
    ids: list[str] = []
    for item in found:
        item = clean_text(item).strip()
        if item and len(item) <= 998 and item not in ids:
            ids.append(item)
    return ids


def message_id_of(value: str | None) -> str | None:
    ids = message_ids(value)
    if ids:
        return ids[0]
    tokens = eight_bit(FOLD.sub(" ", value or "")).split()
    token = clean_text(tokens[0].strip("<>")) if tokens else ""
    return token[:998] or None


def addresses_of(value: str | None) -> list[tuple[str | None, str]]:
    if not value:
        return []
    result: list[tuple[str | None, str]] = []
    for name, addr in getaddresses([FOLD.sub(" ", value)]):
        addr = re.sub(r"[\s\x00-\x1f\x7f]", "", eight_bit(addr)).lower()[:320]
        if addr:
            name = " ".join(
                re.sub(r"[\x00-\x1f\x7f\u2028\u2029]", " ", decode_header(name)).split()
            )
            result.append((name.strip()[:256] or None, clean_text(addr)))
    return result


RECIPIENT_HEADERS = ("to", "cc", "delivered-to", "x-original-to")
MAX_RECIPIENTS = 100


def recipients_of(headers: Headers) -> tuple[str, ...]:
    """The addresses a mail was written or delivered to, lower-cased and each once: those of
    ``To``, then ``Cc``, ``Delivered-To`` and ``X-Original-To`` (every occurrence of each)."""
    found: dict[str, None] = {}
    for name in RECIPIENT_HEADERS:
        for key, value in headers.items[:200]:
            if key == name:
                found.update((address, None) for _, address in addresses_of(value))
    return tuple(found)[:MAX_RECIPIENTS]


def sender_of(headers: Headers) -> tuple[str, str | None]:
    for name in ("from", "sender", "reply-to", "return-path"):
        found = addresses_of(headers.get(name))
        if found:
            display, addr = found[0]
            return addr, display
    return "", None


def date_of(value: str | None) -> float | None:
    if not value:
        return None
    when = parsedate_to_datetime(FOLD.sub(" ", value).strip())
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


_AUTO_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})


def is_auto_submitted(headers: Headers) -> bool:
    auto = headers.get("auto-submitted")
    if auto is not None and auto.split(";")[0].strip().lower() != "no":
        return True
    precedence = (headers.get("precedence") or "").strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        return True
    return headers.has("x-autoreply") or headers.has("x-autorespond")


def envelope_is_empty(value: str | None) -> bool:
    return value is not None and re.sub(r"\s", "", value) == "<>"


_SUBJECT_PREFIX = re.compile(
    r"^(?:\s*(?:re|fwd?|aw|wg|sv|vs|antw|antwort|tr|rif|ref|odp|res|enc|rv|回复|回覆|答复|转发|轉寄)"
    r"\s*(?:\[\d{1,4}\]|\(\d{1,4}\))?\s*[:：])+",
    re.IGNORECASE,
)


FORWARD_PREFIX = re.compile(
    r"\s*(?:fwd?|wg|tr|enc|rv|转发|轉寄)\s*(?:\[\d{1,4}\]|\(\d{1,4}\))?\s*[:：]", re.IGNORECASE
)


"""A forward: what looks like quoted history is the content, so nothing is trimmed."""


def normalize_subject(subject: str) -> str:
    """``subject`` without Re:/Fwd:/AW:/WG:/Sv:... prefixes, whitespace collapsed."""
    return " ".join(_SUBJECT_PREFIX.sub("", subject).split())
