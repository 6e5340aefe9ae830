"""Text between Matrix and MAX.

Inbound, a message's ``text`` comes with ``markup``: ranges (``from``, ``length``, counted in
UTF-16 code units as in the apps' own clients) of ``strong``, ``emphasized``, ``monospaced``,
``strikethrough``, ``underline``, ``link`` (with ``url``) and ``user_mention``; they become
Matrix HTML. Ranges that do not fit the text are dropped, so no payload can make the HTML
invalid.

Outbound, Matrix HTML becomes MAX's HTML subset (``b``, ``i``, ``u``, ``s``, ``code``, ``pre``,
``a``), sent with ``format: html``, together with its plain rendering, which is what MAX counts
against its 4000 characters. A message longer than that goes out as plain text in parts, cut at
line breaks or spaces where there are some.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from ..walker import Frame, MatrixWalker, valid_unicode

INBOUND_TAGS = {
    "strong": ("<strong>", "</strong>"),
    "emphasized": ("<em>", "</em>"),
    "monospaced": ("<code>", "</code>"),
    "strikethrough": ("<del>", "</del>"),
    "underline": ("<u>", "</u>"),
}
OUTBOUND_TAGS = {"bold": "b", "italic": "i", "underline": "u", "strike": "s", "code": "code"}
LINK_SCHEMES = ("http://", "https://", "mailto:", "tel:")


# --------------------------------------------------------------------------- MAX -> Matrix


def _utf16_offsets(text: str) -> list[int]:
    """For each UTF-16 offset into ``text`` at a character boundary, the index of that
    character (others map to -1); one past the end maps to ``len(text)``."""
    offsets: list[int] = []
    for index, char in enumerate(text):
        offsets.append(index)
        if ord(char) > 0xFFFF:
            offsets.append(-1)
    offsets.append(len(text))
    return offsets


def markup_to_html(text: str, markup: Sequence[Any]) -> str | None:
    """Matrix HTML for ``text`` with MAX ``markup``; None when nothing of it applies."""
    offsets = _utf16_offsets(text)
    opens: dict[int, list[str]] = {}
    closes: dict[int, list[str]] = {}
    for item in markup:
        if not isinstance(item, dict):
            continue
        start, length, kind = item.get("from"), item.get("length"), item.get("type")
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            continue
        if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
            continue
        end = start + length
        if end >= len(offsets) or offsets[start] < 0 or offsets[end] < 0:
            continue
        tags = INBOUND_TAGS.get(kind) if isinstance(kind, str) else None
        url = item.get("url")
        if kind == "link" and isinstance(url, str) and url.startswith(LINK_SCHEMES):
            tags = (f'<a href="{escape(url, quote=True)}">', "</a>")
        if tags is None:
            continue
        opens.setdefault(offsets[start], []).append(tags[0])
        closes.setdefault(offsets[end], []).insert(0, tags[1])
    if not opens:
        return None
    # Overlapping ranges are closed and reopened so that the tags nest.
    out: list[str] = []
    stack: list[tuple[str, str]] = []
    for index in range(len(text) + 1):
        for closing in closes.get(index, []):
            reopen: list[tuple[str, str]] = []
            while stack:
                opened = stack.pop()
                out.append(opened[1])
                if opened[1] == closing:
                    break
                reopen.append(opened)
            for opened in reversed(reopen):
                out.append(opened[0])
                stack.append(opened)
        for opening in opens.get(index, []):
            closing_tag = "</" + opening[1:].split(">")[0].split(" ")[0] + ">"
            out.append(opening)
            stack.append((opening, closing_tag))
        if index < len(text):
            out.append(escape(text[index], quote=False).replace("\n", "<br>"))
    while stack:
        out.append(stack.pop()[1])
    return "".join(out)


# --------------------------------------------------------------------------- Matrix -> MAX


class _MatrixToMax(MatrixWalker):
    """Renders Matrix HTML twice at once: MAX HTML and the plain text it shows."""

    def __init__(self) -> None:
        super().__init__()
        self.html: list[str] = []
        self.plain: list[str] = []
        self.pending_breaks = 0
        self.pending_space = False
        self.started = False

    def _put(self, html: str, plain: str) -> None:
        if self.started and self.pending_breaks:
            self.html.append("\n" * self.pending_breaks)
            self.plain.append("\n" * self.pending_breaks)
        elif self.started and self.pending_space:
            self.html.append(" ")
            self.plain.append(" ")
        self.pending_breaks = 0
        self.pending_space = False
        self.started = True
        self.html.append(html)
        self.plain.append(plain)

    def breaks(self, count: int) -> None:
        self.pending_breaks = max(self.pending_breaks, count)

    def line_break(self) -> None:
        if self.pre_depth:
            self._put("\n", "\n")
        else:
            self.pending_breaks = max(self.pending_breaks, 1)

    def space(self) -> None:
        self.pending_space = True

    def word(self, word: str) -> None:
        self._put(escape(word, quote=False), word)

    def pre_text(self, text: str) -> None:
        self._put(escape(text, quote=False), text)

    def _tag(self, frame: Frame, name: str, attrs: str = "") -> None:
        self.html.append(f"<{name}{attrs}>")
        frame.on_close.append(lambda: self.html.append(f"</{name}>"))

    def style(self, frame: Frame, style: str) -> None:
        if not self.pre_depth:
            self._flush_space()
            self._tag(frame, OUTBOUND_TAGS[style])

    def link(self, frame: Frame, href: str) -> None:
        href = href.strip()
        if href.startswith(LINK_SCHEMES) and "matrix.to/" not in href:
            self._flush_space()
            self._tag(frame, "a", f' href="{escape(href, quote=True)}"')

    def item(self, frame: Frame, number: int | None) -> None:
        marker = f"{number}. " if number is not None else "• "
        self._put(marker, marker)

    def code_block(self, frame: Frame) -> None:
        self._flush_space()
        self._tag(frame, "pre")

    def _flush_space(self) -> None:
        """Whitespace before an opening tag goes before it, not inside."""
        if self.started and (self.pending_breaks or self.pending_space):
            self._put("", "")


def matrix_to_max(text: str, html: str | None) -> tuple[str, str | None]:
    """The plain text and the MAX HTML (None without formatting) of a staff message."""
    text = valid_unicode(text)
    if not html:
        return text, None
    walker = _MatrixToMax()
    walker.walk(valid_unicode(html))
    return "".join(walker.plain).strip(), "".join(walker.html).strip()


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, cut at a line break or a space in
    the last quarter of a part where there is one."""
    parts: list[str] = []
    while len(text) > limit:
        cut = max(text.rfind("\n", 0, limit), text.rfind(" ", 0, limit))
        if cut < limit * 3 // 4:
            cut = limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip("\n ")
    parts.append(text)
    return [part for part in parts if part.strip()]
