"""Small helpers of the core: localpart escaping and deterministic transaction ids."""

from __future__ import annotations

import hashlib
import json
import re
import time

from ..db.keys import digest
from ..types import SAFE_LOCALPART_CHARS


def escape_localpart(value: str) -> str:
    """Map any string injectively onto Matrix localpart characters (``=`` + hex for others)."""
    out = []
    for ch in value:
        if ch in SAFE_LOCALPART_CHARS:
            out.append(ch)
        else:
            out.extend(f"={b:02x}" for b in ch.encode())
    return "".join(out)


MAX_ID_BYTES = 255
"""The longest user ID or room alias a homeserver accepts (Synapse; the spec's limit)."""
MAX_NAME_CHARS = 255
"""Display names and room names are cut to this (Synapse refuses display names over 256)."""
MAX_TOPIC_CHARS = 1000
SHORTENED = "=="
"""Between the kept prefix and the hash of a shortened localpart field. ``escape_localpart``
never writes it (its ``=`` is always followed by two hex digits), so a shortened field can not
equal any unshortened one."""
_DIGEST = 32


def fit_localpart(escaped: str, budget: int) -> str:
    """``escaped`` (an ``escape_localpart`` result) if it has at most ``budget`` characters,
    else its beginning, ``==`` and a hash of all of it: deterministic, and still distinct."""
    if len(escaped) <= budget:
        return escaped
    digest = hashlib.sha256(escaped.encode()).hexdigest()[:_DIGEST]
    prefix = escaped[: max(0, budget - len(SHORTENED) - _DIGEST)]
    escape = prefix.rfind("=")
    if escape >= 0 and escape > len(prefix) - 3:  # never cut an "=xx" escape apart
        prefix = prefix[:escape]
    return prefix + SHORTENED + digest


def cut_name(name: str, limit: int = MAX_NAME_CHARS) -> str:
    """``name`` with at most ``limit`` characters, ``…`` ending it when it was cut."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def template_regex(template: str, **fields: str) -> str:
    """A regex matching what ``template`` produces, with each field matching ``.+``."""
    parts = re.split(r"(\{\w+\})", template)
    return "".join(".+" if p[1:-1] in fields else re.escape(p) for p in parts if p)


def txn_id(*parts: str) -> str:
    """A Matrix transaction id that is equal for equal inputs (so a retry never doubles)."""
    return "br." + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


EVENT_CONTENT_LIMIT = 48_000
"""Bytes of JSON an event's content may take. Homeservers refuse events over 65,536 bytes
(M_TOO_LARGE), and the event around the content (ids, hashes, signatures, relations) takes a
few more kilobytes."""
TEXT_PART_LIMIT = 40_000
"""Bytes of JSON one part of a split text may take."""


def json_size(value: object) -> int:
    """Bytes ``value`` takes as JSON in an event (UTF-8, as homeservers measure it)."""
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def _json_cost(ch: str) -> int:
    if ch in '"\\\n\r\t\b\f':
        return 2
    code = ord(ch)
    if code < 0x20 or 0xD800 <= code < 0xE000:
        return 6
    return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4


def split_text(text: str, limit: int = TEXT_PART_LIMIT) -> list[str]:
    """``text`` in consecutive pieces that take at most ``limit`` bytes as JSON strings each,
    cut after a line break, else after a space, else anywhere. Joined they give ``text``
    again; equal input gives equal pieces (so parts already sent are known after a restart).
    """
    budget = limit - 2  # the quotes
    pieces: list[str] = []
    start = 0
    while start < len(text):
        cost = 0
        end = start
        while end < len(text) and cost + _json_cost(text[end]) <= budget:
            cost += _json_cost(text[end])
            end += 1
        if end < len(text):
            half = start + (end - start) // 2
            for sep in ("\n", " "):
                cut = text.rfind(sep, half, end)
                if cut >= 0:
                    end = cut + 1
                    break
        pieces.append(text[start:end])
        start = end
    return pieces


def shorten_text(text: str, limit: int, marker: str = "…") -> str:
    """``text`` cut so that it takes at most ``limit`` bytes as a JSON string, ``marker``
    appended when it was cut."""
    if json_size(text) <= limit:
        return text
    return split_text(text, limit - json_size(marker))[0] + marker


def now_ms() -> int:
    return int(time.time() * 1000)


def conversation_key(account: str, chat: str) -> str:
    """The queue key of a conversation: the one ordering domain of everything that concerns
    it, in both directions (remote events, its room's Matrix events, bridge-initiated
    messages). The ``rm:`` form is the one queued remote events always had."""
    key = f"rm:{account}/{chat}"
    # A fixed size for chat ids of any length: the queue key is indexed.
    return (
        key
        if len(key.encode("utf-8", "surrogatepass")) <= 200
        else f"rm:{account}/#{digest(chat)}"
    )
