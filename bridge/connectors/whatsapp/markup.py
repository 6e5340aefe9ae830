"""What WhatsApp's inline markup shares in both directions: its markers and when one counts.

WhatsApp marks text up inline: ``*bold*``, ``_italic_``, ``~strikethrough~``, ```` `code` ````
and ```` ```monospace``` ````, plus ``> `` quote lines and ``* ``, ``- `` and ``1. `` list lines.
A marker only counts when it opens at the start of a line or after a space or punctuation, closes
before a space, punctuation or the end, and touches text on its inner side; bold, italic and
strikethrough end at the line. There is no escape character.

``whatsapp_to_matrix`` reads that markup as Matrix HTML (``format.py`` writes it from Matrix HTML).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass

BOLD, ITALIC, STRIKE, CODE = "*", "_", "~", "`"
STYLE_ORDER = (BOLD, ITALIC, STRIKE, CODE)
"""Which style goes outside when two cover the same text; code is always innermost."""

SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def escape_html(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def is_boundary(ch: str | None) -> bool:
    """Whether a marker may sit next to ``ch`` on its outer side (None: the line's edge)."""
    return ch is None or not ch.isalnum()


# --------------------------------------------------------------------------- WhatsApp → Matrix

_URL = re.compile(r"(?:https?://|www\.)[^\s]+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?'\"*_~`"
_LINE_START = re.compile(r"(> )|([*-] )|(0|[1-9][0-9]{0,8})\. ")
_HTML_TAGS = {BOLD: "strong", ITALIC: "em", STRIKE: "del"}


@dataclass(frozen=True)
class _Atom:
    """Text the inline markers cannot reach into: a one-line ```code``` span or a URL."""

    text: str
    code: bool


@dataclass(frozen=True)
class _Pre:
    text: str


Segments = list[str | _Atom]


def _monospace(text: str) -> list[str | _Atom | _Pre]:
    """``text`` with its ```monospace``` spans cut out: one-line ones as code atoms, others
    as blocks."""
    out: list[str | _Atom | _Pre] = []
    position = 0
    start = text.find("```")
    while start != -1:
        if not is_boundary(text[start - 1] if start else None):
            start = text.find("```", start + 1)
            continue
        end = text.find("```", start + 4)
        while end != -1 and not (
            is_boundary(text[end + 3] if end + 3 < len(text) else None)
            and text[start + 3 : end].strip()
        ):
            end = text.find("```", end + 1)
        if end == -1:
            break  # no later opener has a closer either
        out.append(text[position:start])
        content = text[start + 3 : end]
        if "\n" in content.strip("\n"):
            out.append(_Pre(content.removeprefix("\n").removesuffix("\n")))
        else:
            out.append(_Atom(content.strip("\n"), code=True))
        position = end + 3
        start = text.find("```", position)
    out.append(text[position:])
    return [piece for piece in out if piece != ""]


def _lines(pieces: list[str | _Atom | _Pre]) -> list[Segments | _Pre]:
    """Pieces as lines of segments, with code blocks on lines of their own; the line break on
    either side of a block belongs to the block."""
    lines: list[Segments | _Pre] = []
    current: Segments = []
    after_block = False
    for piece in pieces:
        if isinstance(piece, _Pre):
            if current:
                lines.append(current)
            lines.append(piece)
            current, after_block = [], True
        elif isinstance(piece, _Atom):
            current.append(piece)
            after_block = False
        else:
            parts = piece.split("\n")
            for index, part in enumerate(parts):
                if index > 0:
                    if current or not after_block:
                        lines.append(current)
                    current, after_block = [], False
                if part:
                    current.append(part)
                    after_block = False
    if current or not after_block:
        lines.append(current)
    return lines


def _units(segments: Segments) -> list[str | _Atom]:
    """Segments as single characters, with code spans and URLs as opaque atoms."""
    units: list[str | _Atom] = []
    for segment in segments:
        if isinstance(segment, _Atom):
            units.append(segment)
            continue
        position = 0
        for match in _URL.finditer(segment):
            url = match.group(0)
            while url and (
                url[-1] in _URL_TRAILING or (url[-1] == ")" and url.count("(") < url.count(")"))
            ):
                url = url[:-1]
            if "://" not in url and "." not in url[4:]:
                continue
            units.extend(segment[position : match.start()])
            units.append(_Atom(url, code=False))
            position = match.start() + len(url)
        units.extend(segment[position:])
    return units


class _Inline:
    """One line of WhatsApp text as Matrix HTML."""

    def __init__(self, segments: Segments) -> None:
        self.units = _units(segments)
        self.formatted = any(isinstance(s, _Atom) and s.code for s in segments)
        self.closers: dict[str, list[int]] = {m: [] for m in (BOLD, ITALIC, STRIKE, CODE)}
        for index, unit in enumerate(self.units):
            if isinstance(unit, str) and unit in self.closers and self._can_close(index):
                self.closers[unit].append(index)

    def _char(self, index: int) -> str | None:
        if 0 <= index < len(self.units):
            unit = self.units[index]
            return unit if isinstance(unit, str) else "a"  # atoms count as word characters
        return None

    def _can_open(self, index: int) -> bool:
        before, after = self._char(index - 1), self._char(index + 1)
        if self.units[index] == CODE and CODE in (before, after):
            return False  # a run of backticks is no code marker
        return is_boundary(before) and after is not None and not after.isspace()

    def _can_close(self, index: int) -> bool:
        before, after = self._char(index - 1), self._char(index + 1)
        if self.units[index] == CODE and CODE in (before, after):
            return False
        return before is not None and not before.isspace() and is_boundary(after)

    def _closer(self, marker: str, start: int, stop: int) -> int | None:
        closers = self.closers[marker]
        found = bisect_left(closers, start)
        return closers[found] if found < len(closers) and closers[found] < stop else None

    def render(
        self, start: int = 0, stop: int | None = None, active: frozenset[str] = frozenset()
    ) -> str:
        stop = len(self.units) if stop is None else stop
        out: list[str] = []
        index = start
        while index < stop:
            unit = self.units[index]
            if isinstance(unit, _Atom):
                out.append(
                    f"<code>{escape_html(unit.text)}</code>"
                    if unit.code
                    else escape_html(unit.text)
                )
                index += 1
                continue
            if unit in self.closers and unit not in active and self._can_open(index):
                end = self._closer(unit, index + 2, stop)
                if end is not None:
                    self.formatted = True
                    if unit == CODE:
                        content = "".join(
                            u if isinstance(u, str) else u.text
                            for u in self.units[index + 1 : end]
                        )
                        out.append(f"<code>{escape_html(content)}</code>")
                    else:
                        tag = _HTML_TAGS[unit]
                        inner = self.render(index + 1, end, active | {unit})
                        out.append(f"<{tag}>{inner}</{tag}>")
                    index = end + 1
                    continue
            out.append(escape_html(unit))
            index += 1
        return "".join(out)


def whatsapp_to_matrix(text: str) -> str | None:
    """A customer's WhatsApp text as Matrix HTML, or None when it has no markup.

    ``*bold*``, ``_italic_``, ``~strikethrough~`` (within a line), ```` `code` ```` and
    ```` ```monospace``` ```` (a code block when it spans lines) follow WhatsApp's rules for
    where markers count; nothing is formatted inside code or URLs. ``> `` lines become
    blockquotes, ``* ``/``- `` and ``1. `` lines lists. Everything else is escaped, line
    breaks become ``<br>``."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = _lines(_monospace(text))
    out: list[str] = []
    formatted = False
    inline_before = False
    index = 0
    while index < len(lines):
        line = lines[index]
        if isinstance(line, _Pre):
            out.append(f"<pre><code>{escape_html(line.text)}</code></pre>")
            formatted, inline_before = True, False
            index += 1
            continue
        kind, rest, number = _line_kind(line)
        if kind is None:
            inline = _Inline(line)
            if inline_before:
                out.append("<br>")
            out.append(inline.render())
            formatted = formatted or inline.formatted
            inline_before = True
            index += 1
            continue
        items: list[str] = []
        while True:
            items.append(_Inline(rest).render())
            index += 1
            following = lines[index] if index < len(lines) else None
            if not isinstance(following, list):
                break
            next_kind, next_rest, next_number = _line_kind(following)
            if next_kind != kind or (kind == "ol" and next_number != number + len(items)):
                break
            rest = next_rest
        if kind == "quote":
            out.append(f"<blockquote>{'<br>'.join(items)}</blockquote>")
        else:
            start = f' start="{number}"' if kind == "ol" and number != 1 else ""
            body = "".join(f"<li>{item}</li>" for item in items)
            out.append(f"<{kind}{start}>{body}</{kind}>")
        formatted, inline_before = True, False
    return "".join(out) if formatted else None


def _line_kind(line: Segments) -> tuple[str | None, Segments, int]:
    """Whether ``line`` is a quote, bullet or numbered line, and its text after the marker."""
    if not line or not isinstance(line[0], str):
        return None, line, 0
    head = line[0]
    match = _LINE_START.match(head)
    if match is None:
        return None, line, 0
    rest = [head[match.end() :], *line[1:]] if head[match.end() :] else line[1:]
    if match.group(1):
        return "quote", rest, 0
    first = rest[0] if rest else None
    if first is None or (isinstance(first, str) and first[0].isspace()):
        return None, line, 0  # a list item needs text right after its marker
    if match.group(2):
        return "ul", rest, 0
    return "ol", rest, int(match.group(3))
