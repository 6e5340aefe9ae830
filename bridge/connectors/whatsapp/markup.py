"""What WhatsApp's inline markup shares in both directions: its markers and when one counts.

WhatsApp marks text up inline: ``*bold*``, ``_italic_``, ``~strikethrough~``, ```` `code` ````
and ```` ```monospace``` ````, plus ``> `` quote lines and ``* ``, ``- `` and ``1. `` list lines.
A marker only counts when it opens at the start of a line or after a space or punctuation, closes
before a space, punctuation or the end, and touches text on its inner side; bold, italic and
strikethrough end at the line. There is no escape character.
"""

from __future__ import annotations

import re

MAX_MESSAGE_LENGTH = 4096

BOLD, ITALIC, STRIKE, CODE = "*", "_", "~", "`"
STYLE_ORDER = (BOLD, ITALIC, STRIKE, CODE)
"""Which style goes outside when two cover the same text; code is always innermost."""

SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
HTML_SPACE = re.compile(r"[ \t\n\r\f]+")


def valid_unicode(text: str) -> str:
    """``text`` with surrogate halves paired up and lone ones replaced by U+FFFD."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def escape_html(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def is_boundary(ch: str | None) -> bool:
    """Whether a marker may sit next to ``ch`` on its outer side (None: the line's edge)."""
    return ch is None or not ch.isalnum()
