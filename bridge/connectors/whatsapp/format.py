"""Text formatting between Matrix and WhatsApp, and splitting to WhatsApp's length limit.

WhatsApp marks text up inline: ``*bold*``, ``_italic_``, ``~strikethrough~``, ```` `code` ````
and ```` ```monospace``` ````, plus ``> `` quote lines and ``* ``, ``- `` and ``1. `` list lines.
A marker only counts when it opens at the start of a line or after a space or punctuation, closes
before a space, punctuation or the end, and touches text on its inner side; bold, italic and
strikethrough end at the line. There is no escape character.

Outbound, Matrix HTML (which may be hostile) becomes that markup. Markers are placed so that
WhatsApp honours them: surrounding spaces move outside, empty formatting and formatting inside a
word (which WhatsApp would show as literal asterisks) are dropped. Literal ``*``, ``_``, ``~`` and
backticks in the text are left as they are: WhatsApp cannot escape them, zero-width characters
would corrupt copied text, links and code, and its own rules already leave ``snake_case``,
``2*3`` and most URLs alone. Only where a literal marker would run into one of ours (``*`` at the
edge of bold text) is that formatting dropped rather than made ambiguous. Link addresses are
written outside any formatting, so an ``_`` in a URL cannot end it.

Inbound, WhatsApp text becomes Matrix HTML following the same rules, or None when it has no
markup, so the core can send plain text.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

MAX_MESSAGE_LENGTH = 4096

_BOLD, _ITALIC, _STRIKE, _CODE = "*", "_", "~", "`"
_STYLE_ORDER = (_BOLD, _ITALIC, _STRIKE, _CODE)
"""Which style goes outside when two cover the same text; code is always innermost."""

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")


def _valid_unicode(text: str) -> str:
    """``text`` with surrogate halves paired up and lone ones replaced by U+FFFD."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _is_boundary(ch: str | None) -> bool:
    """Whether a marker may sit next to ``ch`` on its outer side (None: the line's edge)."""
    return ch is None or not ch.isalnum()


# --------------------------------------------------------------------------- Matrix → WhatsApp

_INLINE = {
    "b": _BOLD,
    "strong": _BOLD,
    "i": _ITALIC,
    "em": _ITALIC,
    "s": _STRIKE,
    "del": _STRIKE,
    "strike": _STRIKE,
    "code": _CODE,
    "tt": _CODE,
    "kbd": _CODE,
    "samp": _CODE,
}
_SKIPPED = frozenset({"mx-reply", "script", "style", "head", "title", "template", "noscript"})
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param"}
    | {"source", "track", "wbr"}
)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCKS = frozenset(
    {"div", "table", "tr", "dl", "dt", "dd", "details", "summary", "section", "article"}
    | {"header", "footer", "nav", "aside", "figure", "figcaption", "caption", "address"}
    | {"center", "main", "form", "fieldset"}
)

Runs = list[tuple[str, frozenset[str]]]


@dataclass
class _Container:
    """A quote or a list item: what it puts before its first line and before the others."""

    first: str
    rest: str
    fresh: bool = True


@dataclass
class _Line:
    prefix: str
    cont: str
    """The prefix of the physical lines after the first (only code blocks have them)."""
    runs: Runs = field(default_factory=list)
    raw: str | None = None


@dataclass
class _Frame:
    """An open source element and what opening it did, so closing it can undo exactly that."""

    tag: str
    style: str | None = None
    breaks_after: int = 0
    container: bool = False
    is_list: bool = False
    is_pre: bool = False
    link: bool = False


@dataclass
class _Link:
    url: str | None
    text: list[str] = field(default_factory=list)


@dataclass(eq=False)
class _Mark:
    text: str
    opening: bool
    partner: _Mark | None = None
    alive: bool = True


Tokens = list[str | _Mark]


def _display_url(href: str) -> str | None:
    """How a link target is shown to the customer, or None when it means nothing outside
    Matrix (mentions and permalinks on matrix.to, relative or unknown links)."""
    href = href.strip()
    if not href or any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in href):
        return None
    match = _SCHEME.match(href)
    if match is None:
        return None
    scheme, rest = match.group(1).lower(), href[match.end() :]
    if scheme in ("http", "https"):
        try:
            host = urlsplit(href).hostname
        except ValueError:
            return None
        return href if host and host != "matrix.to" else None
    if scheme in ("mailto", "tel"):
        target = unquote(rest.split("?", 1)[0])
        if target and not any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in target):
            return target
    return None


def _bare_link(text: str) -> str:
    return re.sub(r"^(?:https?://|mailto:|tel:)", "", text.strip(), flags=re.I).rstrip("/")


class _MatrixToWhatsApp(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[_Line] = []
        self.current: _Line | None = None
        self.containers: list[_Container] = []
        self.frames: list[_Frame] = []
        self.open_frames: dict[str, int] = {}
        self.styles: dict[str, int] = {}
        self.skipping: list[str] = []
        self.lists: list[list[int]] = []  # per open list: [next number] or [] for bullets
        self.links: list[_Link] = []
        self.pre_depth = 0
        self.pre_text: list[str] = []
        self.pending_breaks = 0
        self.pending_space = False

    # -- output

    def _fresh(self) -> bool:
        return any(container.fresh for container in self.containers)

    def _breaks(self, count: int) -> None:
        if self.current is not None and not self._fresh():
            self.pending_breaks = max(self.pending_breaks, count)
        self.pending_space = False

    def _new_line(self) -> _Line:
        # A blank line would end a WhatsApp quote: paragraphs inside one stay line by line.
        if self.current is not None and not any(c.first == "> " for c in self.containers):
            self.lines.extend(_Line("", "") for _ in range(self.pending_breaks - 1))
        prefix = "".join(c.first if c.fresh else c.rest for c in self.containers)
        line = _Line(prefix, "".join(c.rest for c in self.containers))
        for container in self.containers:
            container.fresh = False
        self.lines.append(line)
        self.current = line
        self.pending_breaks = 0
        self.pending_space = False
        return line

    def _emit(self, text: str, styles: frozenset[str]) -> None:
        if self.pre_depth:
            self.pre_text.append(text)
            return
        line = self.current
        space = ""
        if line is None or line.raw is not None or self.pending_breaks:
            line = self._new_line()
        elif self.pending_space and line.runs:
            space = " "
            line.runs.append((space, styles))
        self.pending_space = False
        line.runs.append((text, styles))
        for link in self.links:
            link.text.append(space + text)

    def _emit_raw(self, raw: str) -> None:
        self._new_line().raw = raw

    # -- tags

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skipping or tag in _SKIPPED:
            if tag in _SKIPPED:
                self.skipping.append(tag)
            return
        values = {name: value or "" for name, value in attrs}
        if tag in _VOID:
            self._void(tag, values)
            return
        frame = _Frame(tag)
        self.frames.append(frame)
        self.open_frames[tag] = self.open_frames.get(tag, 0) + 1
        if tag == "a":
            frame.link = True
            self.links.append(_Link(_display_url(values.get("href", ""))))
        if self.pre_depth:
            if tag == "pre":
                frame.is_pre = True
                self.pre_depth += 1
            return
        if tag == "p":
            self._breaks(2)
            frame.breaks_after = 2
        elif tag in _HEADINGS:
            self._breaks(2)
            frame.breaks_after = 1
            self._push_style(frame, _BOLD)
        elif tag in ("ul", "ol"):
            self._breaks(1)
            frame.breaks_after = 1
            frame.is_list = True
            start = 1
            if tag == "ol":
                try:
                    start = max(0, min(int(values.get("start", "1")), 10**9))
                except ValueError:
                    start = 1
            self.lists.append([start] if tag == "ol" else [])
        elif tag == "li":
            self._list_item(frame)
        elif tag == "blockquote":
            self._breaks(1)
            frame.breaks_after = 1
            frame.container = True
            self.containers.append(_Container("> ", "> "))
        elif tag == "pre":
            self._breaks(1)
            frame.breaks_after = 1
            frame.is_pre = True
            self.pre_depth = 1
            self.pre_text = []
        elif tag in _BLOCKS:
            self._breaks(1)
            frame.breaks_after = 1
        elif tag in _INLINE:
            self._push_style(frame, _INLINE[tag])
        elif tag in ("td", "th"):
            self.pending_space = self.current is not None and not self.pending_breaks

    def _push_style(self, frame: _Frame, style: str) -> None:
        if style != _CODE and self.styles.get(_CODE):
            return  # WhatsApp formats nothing inside code
        frame.style = style
        self.styles[style] = self.styles.get(style, 0) + 1

    def _list_item(self, frame: _Frame) -> None:
        counter = self.lists[-1] if self.lists else []
        if counter:
            marker = f"{counter[0]}. "
            counter[0] += 1
        else:
            marker = "* "
        if self.current is not None:
            self.pending_breaks = 1
        self.pending_space = False
        frame.breaks_after = 1
        frame.container = True
        self.containers.append(_Container(marker, " " * len(marker)))

    def _void(self, tag: str, values: dict[str, str]) -> None:
        if tag == "br":
            if self.pre_depth:
                self.pre_text.append("\n")
            elif self.current is not None and not self._fresh():
                self.pending_breaks += 1
                self.pending_space = False
        elif tag == "hr":
            self._breaks(2)
        elif tag == "img":
            alt = _HTML_SPACE.sub(" ", values.get("alt", "")).strip()
            if alt:
                self.handle_data(alt)

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            if tag in self.skipping:
                while self.skipping.pop() != tag:
                    pass
            return
        if not self.open_frames.get(tag):
            return
        while True:
            frame = self.frames.pop()
            self._close(frame)
            if frame.tag == tag:
                return

    def _close(self, frame: _Frame) -> None:
        self.open_frames[frame.tag] -= 1
        if frame.style is not None:
            self.styles[frame.style] -= 1
        if frame.link:
            self._link_target(self.links.pop())
        if frame.is_list:
            self.lists.pop()
        if frame.container:
            self.containers.pop()
        if frame.is_pre:
            self.pre_depth -= 1
            if not self.pre_depth:
                self._code_block()
        if frame.breaks_after:
            self._breaks(frame.breaks_after)

    def _link_target(self, link: _Link) -> None:
        """``text (url)`` for a link, unless the text already says where it goes."""
        text = "".join(link.text).strip()
        if link.url is None or _bare_link(text) == _bare_link(link.url):
            return
        shown = f"({link.url})" if text else link.url
        if self.pre_depth:
            self.pre_text.append(f" {shown}" if text else shown)
            return
        self.pending_space = bool(text)
        self._emit(shown, frozenset())

    def _code_block(self) -> None:
        content = "".join(self.pre_text).lstrip("\n").rstrip()
        self.pre_text = []
        if content.strip():
            # WhatsApp cannot quote ``` inside a code block: such a block goes out unmarked.
            self._emit_raw(content if "```" in content else f"```{content}```")

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        data = data.replace("\x00", "")
        if self.pre_depth:
            data = data.replace("\r\n", "\n").replace("\r", "\n")
            self.pre_text.append(data)
            for link in self.links:
                link.text.append(data)
            return
        styles = frozenset(style for style, count in self.styles.items() if count)
        for index, word in enumerate(_HTML_SPACE.split(data)):
            if index > 0 and self.current is not None:
                self.pending_space = True
            if word:
                self._emit(word, styles)

    def finish(self) -> str:
        while self.frames:
            self._close(self.frames.pop())
        return "\n".join(_render_line(line) for line in self.lines)


def _render_line(line: _Line) -> str:
    if line.raw is not None:
        first, *others = line.raw.split("\n")
        physical = [line.prefix + first] + [line.cont + other for other in others]
        return "\n".join(text.rstrip() for text in physical)
    tokens = _group(line.runs, frozenset())
    _drop_unusable(tokens, line.prefix)
    body = "".join(t if isinstance(t, str) else t.text if t.alive else "" for t in tokens)
    return (line.prefix + body).rstrip()


def _group(runs: Runs, applied: frozenset[str]) -> Tokens:
    """Runs of text with their styles as text and markers. All runs have the ``applied``
    styles already; of the others, the one covering the most runs from the current one goes
    outside, so neighbouring formatting shares markers."""
    out: Tokens = []
    index = 0
    while index < len(runs):
        text, styles = runs[index]
        todo = styles - applied
        if not todo:
            out.append(text)
            index += 1
            continue
        candidates = todo - {_CODE} or todo
        best, best_end = _CODE, index
        for style in _STYLE_ORDER:
            if style in candidates:
                end = index
                while end < len(runs) and style in runs[end][1]:
                    if style == _CODE and runs[end][1] - applied != {_CODE}:
                        break  # code cannot hold the other styles of that run
                    end += 1
                if end > best_end:
                    best, best_end = style, end
        out.extend(_wrap(_group(runs[index:best_end], applied | {best}), best))
        index = best_end
    return out


def _merge(tokens: Tokens) -> Tokens:
    out: Tokens = []
    buffer: list[str] = []
    for token in tokens:
        if isinstance(token, str):
            buffer.append(token)
            continue
        if buffer:
            out.append("".join(buffer))
            buffer = []
        out.append(token)
    if buffer:
        out.append("".join(buffer))
    return [token for token in out if token != ""]


def _wrap(tokens: Tokens, style: str) -> Tokens:
    """``tokens`` between the markers of ``style``, whitespace moved outside; unchanged when
    there is nothing to format or the markers would run into the same literal character."""
    tokens = _merge(tokens)
    lead = trail = ""
    if tokens and isinstance(tokens[0], str):
        first = tokens[0]
        stripped = first.lstrip()
        lead = first[: len(first) - len(stripped)]
        tokens = [stripped, *tokens[1:]] if stripped else tokens[1:]
    if tokens and isinstance(tokens[-1], str):
        last = tokens[-1]
        stripped = last.rstrip()
        trail = last[len(stripped) :]
        tokens = [*tokens[:-1], stripped] if stripped else tokens[:-1]
    if not tokens:
        return [lead + trail] if lead + trail else []
    marker: str | None = style
    if style == _CODE:
        marker = _code_marker("".join(t for t in tokens if isinstance(t, str)))
    else:
        first_token, last_token = tokens[0], tokens[-1]
        if (isinstance(first_token, str) and first_token.startswith(style)) or (
            isinstance(last_token, str) and last_token.endswith(style)
        ):
            marker = None
    if marker is None:
        return [lead, *tokens, trail]
    opening, closing = _Mark(marker, True), _Mark(marker, False)
    opening.partner, closing.partner = closing, opening
    return [lead, opening, *tokens, closing, trail]


def _code_marker(content: str) -> str | None:
    if _CODE not in content:
        return _CODE
    if "```" not in content and not content.startswith(_CODE) and not content.endswith(_CODE):
        return "```"
    return None


def _neighbour(tokens: Tokens, index: int, step: int) -> str | None:
    index += step
    while 0 <= index < len(tokens):
        token = tokens[index]
        if isinstance(token, str):
            if token:
                return token[-1] if step < 0 else token[0]
        elif token.alive:
            return token.text[-1] if step < 0 else token.text[0]
        index += step
    return None


def _drop_unusable(tokens: Tokens, prefix: str) -> None:
    """Kill marker pairs WhatsApp would not honour (inside a word, or next to the same
    character), until every remaining pair is usable."""
    positions = {
        id(token): index for index, token in enumerate(tokens) if isinstance(token, _Mark)
    }
    changed = True
    while changed:
        changed = False
        for token in tokens:
            if not isinstance(token, _Mark) or not token.alive or not token.opening:
                continue
            closing = token.partner
            assert closing is not None
            before = _neighbour(tokens, positions[id(token)], -1)
            if before is None and prefix:
                before = prefix[-1]
            after = _neighbour(tokens, positions[id(closing)], 1)
            char = token.text[0]
            if not (_is_boundary(before) and _is_boundary(after)) or char in (before, after):
                token.alive = closing.alive = False
                changed = True


def matrix_to_whatsapp(text: str, html: str | None) -> str:
    """A staff message as WhatsApp text: ``html`` (Matrix ``formatted_body``) converted to
    WhatsApp markup, or ``text`` unchanged when there is no HTML or it shows nothing.

    Bold, italic, strikethrough and code become markers; headings bold lines; blockquotes
    ``> `` lines; lists ``* `` and ``1. `` lines (nested ones indented); code blocks
    ```` ```…``` ````; links ``text (url)`` unless the text is the address (mentions and
    matrix.to links keep only their text); images their alt text. Reply fallbacks, scripts and
    styles are dropped with their content; other tags are dropped with their text kept."""
    if html is None:
        return text
    parser = _MatrixToWhatsApp()
    parser.feed(_valid_unicode(html))
    parser.close()
    result = parser.finish()
    return result if result.strip() else text


# --------------------------------------------------------------------------- WhatsApp → Matrix

_URL = re.compile(r"(?:https?://|www\.)[^\s]+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?'\"*_~`"
_LINE_START = re.compile(r"(> )|([*-] )|(0|[1-9][0-9]{0,8})\. ")
_HTML_TAGS = {_BOLD: "strong", _ITALIC: "em", _STRIKE: "del"}


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
        if not _is_boundary(text[start - 1] if start else None):
            start = text.find("```", start + 1)
            continue
        end = text.find("```", start + 4)
        while end != -1 and not (
            _is_boundary(text[end + 3] if end + 3 < len(text) else None)
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
        self.closers: dict[str, list[int]] = {m: [] for m in (_BOLD, _ITALIC, _STRIKE, _CODE)}
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
        if self.units[index] == _CODE and _CODE in (before, after):
            return False  # a run of backticks is no code marker
        return _is_boundary(before) and after is not None and not after.isspace()

    def _can_close(self, index: int) -> bool:
        before, after = self._char(index - 1), self._char(index + 1)
        if self.units[index] == _CODE and _CODE in (before, after):
            return False
        return before is not None and not before.isspace() and _is_boundary(after)

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
                    f"<code>{_escape(unit.text)}</code>" if unit.code else _escape(unit.text)
                )
                index += 1
                continue
            if unit in self.closers and unit not in active and self._can_open(index):
                end = self._closer(unit, index + 2, stop)
                if end is not None:
                    self.formatted = True
                    if unit == _CODE:
                        content = "".join(
                            u if isinstance(u, str) else u.text
                            for u in self.units[index + 1 : end]
                        )
                        out.append(f"<code>{_escape(content)}</code>")
                    else:
                        tag = _HTML_TAGS[unit]
                        inner = self.render(index + 1, end, active | {unit})
                        out.append(f"<{tag}>{inner}</{tag}>")
                    index = end + 1
                    continue
            out.append(_escape(unit))
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
            out.append(f"<pre><code>{_escape(line.text)}</code></pre>")
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


# --------------------------------------------------------------------------- splitting


def _code_regions(text: str) -> list[tuple[int, int]]:
    """The spans of ```blocks```, pairing the fences in order."""
    fences: list[int] = []
    position = text.find("```")
    while position != -1:
        fences.append(position)
        position = text.find("```", position + 3)
    return [(fences[i], fences[i + 1] + 3) for i in range(0, len(fences) - 1, 2)]


def _inside(regions: list[tuple[int, int]], starts: list[int], position: int) -> bool:
    index = bisect_right(starts, position) - 1
    return index >= 0 and regions[index][0] < position < regions[index][1]


def _joins(text: str, position: int) -> bool:
    """Whether cutting before ``text[position]`` would split a character or an emoji."""
    before, after = text[position - 1], text[position]
    if "\ud800" <= before <= "\udbff" and "\udc00" <= after <= "\udfff":
        return True
    code = ord(after)
    return (
        unicodedata.combining(after) != 0
        or unicodedata.category(after) in ("Mn", "Mc", "Me")
        or after == "\u200d"
        or before == "\u200d"
        or 0xFE00 <= code <= 0xFE0F
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
        or (_regional(after) and _regional(before) and _regional_run(text, position) % 2 == 1)
    )


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _regional_run(text: str, position: int) -> int:
    """How many regional indicators (flag halves) come right before ``position``."""
    count = 0
    while position - count > 0 and _regional(text[position - count - 1]):
        count += 1
    return count


def _cut(
    text: str, start: int, end: int, regions: list[tuple[int, int]], starts: list[int]
) -> tuple[int, int]:
    """Where the chunk from ``start`` that may reach ``end`` (exclusive) ends, and where the
    next begins: at a paragraph, else line, else word break outside code blocks (preferring
    one that leaves the chunk a quarter full), else inside a code block too big to fit, else
    at ``end`` (moved back so as not to split a character)."""
    visible = start
    while visible < end and text[visible].isspace():
        visible += 1
    quarter = start + (end - start) // 4
    tests = (
        lambda p: text.startswith("\n\n", p),
        lambda p: text[p] == "\n",
        lambda p: text[p].isspace(),
    )
    for low, in_code in ((quarter, False), (start + 1, False), (quarter, True), (start + 1, True)):
        for test in tests:
            for position in range(end, max(low, visible + 1) - 1, -1):
                if test(position) and (in_code or not _inside(regions, starts, position)):
                    stop, resume = position, position
                    while stop > start and text[stop - 1].isspace():
                        stop -= 1
                    while resume < len(text) and text[resume].isspace():
                        resume += 1
                    return stop, resume
    position = end
    while position > start + 1 and end - position < 32 and _joins(text, position):
        position -= 1
    if not _joins(text, position):
        return position, position
    if (
        end - 1 > start
        and "\udc00" <= text[end] <= "\udfff"
        and "\ud800" <= text[end - 1] <= "\udbff"
    ):
        return end - 1, end - 1
    return end, end


def split_text(text: str, limit: int = MAX_MESSAGE_LENGTH) -> list[str]:
    """Split WhatsApp text into chunks of at most ``limit`` characters, at paragraph, line or
    word breaks and outside ```blocks``` where possible, never inside a surrogate pair;
    whitespace at the cuts is dropped. Blank text gives no chunks.

    A block longer than ``limit`` is cut like other text, so its pieces lose the monospace."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if not text.strip():
        return []
    regions = _code_regions(text)
    starts = [region[0] for region in regions]
    chunks: list[str] = []
    start = 0
    while len(text) - start > limit:
        stop, resume = _cut(text, start, start + limit, regions, starts)
        chunks.append(text[start:stop])
        start = resume
    chunks.append(text[start:])
    return [chunk for chunk in chunks if chunk.strip()]
