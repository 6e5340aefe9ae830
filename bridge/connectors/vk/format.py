"""Text between Matrix and VK. Community messages are plain text: what goes out is the plain
body (split at VK's length limit, by characters, at a line or word break where there is one);
what comes in is plain text too, except VK's mentions, ``[id123|Name]`` and
``[club45|Name]``, which become links to the profile in Matrix's HTML and the bare name in
the plain body."""

from __future__ import annotations

import html
import re

MENTION = re.compile(r"\[(id|club|public)([0-9]{1,12})\|([^\]\[|]{1,200})\]")


def vk_to_matrix(text: str) -> str | None:
    """The HTML of a VK text with mentions, or None when it has none (plain text only)."""
    if not MENTION.search(text):
        return None
    out, last = [], 0
    for match in MENTION.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        kind, ident, name = match.groups()
        link = f"https://vk.com/{kind}{ident}"
        out.append(f'<a href="{link}">{html.escape(name)}</a>')
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out).replace("\n", "<br>")


def plain_mentions(text: str) -> str:
    """``text`` with each mention shown as its name."""
    return MENTION.sub(lambda m: m.group(3), text)


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, broken after a newline or a space
    where one is in the second half of a part, else hard."""
    parts = []
    while len(text) > limit:
        cut = text.rfind("\n", limit // 2, limit)
        if cut < 0:
            cut = text.rfind(" ", limit // 2, limit)
        cut = limit if cut < 0 else cut + 1
        parts.append(text[:cut].rstrip())
        text = text[cut:]
    parts.append(text)
    return [p for p in parts if p.strip()]
