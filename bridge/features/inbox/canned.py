"""Canned replies: short codes that staff expand into prepared texts.

A staff member sends a canned reply by writing, as the whole message in a portal room, an
exclamation mark and the code: ``!thanks``. The customer gets the expanded text and the room
shows exactly what was sent. Anything else (``!thanks a lot``, ``!!``) is an ordinary message.
Codes are case-insensitive: letters, digits, ``-`` and ``_``, starting with a letter or a
digit, at most 32 characters. The bot's command prefix (``!bridge``) cannot be a code.

Texts may name three placeholders, ``{customer}``, ``{agent}`` and ``{team}``; ``{{`` and ``}}``
stand for literal braces. Nothing else in braces is allowed (no format specs, no attribute
access), so expanding a text can neither fail nor grow without bound."""

from __future__ import annotations

import re
from string import Formatter

PREFIX = "!"
PLACEHOLDERS = ("customer", "agent", "team")
CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def placeholder_error(text: str) -> str | None:
    """Why ``text`` is not a valid canned text (bad braces, an unknown placeholder), or None."""
    try:
        parts = list(Formatter().parse(text))
    except ValueError as e:
        return f"bad braces in {text!r}: {e} (write {{{{ and }}}} for literal braces)"
    allowed = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            return f"unknown placeholder {{{shown}}} in {text!r} (use {allowed})"
    return None


def expand(text: str, *, customer: str, agent: str, team: str) -> str:
    """``text`` (checked with ``placeholder_error``) with its placeholders filled in; the
    values are inserted as they are."""
    values = {"customer": customer, "agent": agent, "team": team}
    out: list[str] = []
    for literal, name, _, _ in Formatter().parse(text):
        out.append(literal)
        if name is not None:
            out.append(values.get(name, "{" + name + "}"))
    return "".join(out)


def short_code(body: str) -> str | None:
    """The canned reply code a staff message asks for (``!thanks`` -> ``thanks``), or None
    when the message is not a short form."""
    body = body.strip()
    if not body.startswith(PREFIX):
        return None
    code = body[len(PREFIX) :].lower()
    return code if CODE.match(code) else None
