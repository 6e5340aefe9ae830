"""Small helpers of the core: localpart escaping and deterministic transaction ids."""

from __future__ import annotations

import hashlib
import re

SAFE_LOCALPART_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-/+")
"""Kept as they are by ``escape_localpart``; everything else is escaped."""


def escape_localpart(value: str) -> str:
    """Map any string injectively onto Matrix localpart characters (``=`` + hex for others)."""
    out = []
    for ch in value:
        if ch in SAFE_LOCALPART_CHARS:
            out.append(ch)
        else:
            out.extend(f"={b:02x}" for b in ch.encode())
    return "".join(out)


def template_regex(template: str, **fields: str) -> str:
    """A regex matching what ``template`` produces, with each field matching ``.+``."""
    parts = re.split(r"(\{\w+\})", template)
    return "".join(".+" if p[1:-1] in fields else re.escape(p) for p in parts if p)


def txn_id(*parts: str) -> str:
    """A Matrix transaction id that is equal for equal inputs (so a retry never doubles)."""
    return "br." + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]
