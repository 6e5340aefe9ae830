"""Matrix HTML to WhatsApp markup; ``markup.py`` has the rules both directions share.

Outbound, Matrix HTML (which may be hostile) becomes that markup. Markers are placed so that
WhatsApp honours them: surrounding spaces move outside, empty formatting and formatting inside a
word (which WhatsApp would show as literal asterisks) are dropped. Literal ``*``, ``_``, ``~`` and
backticks in the text are left as they are: WhatsApp cannot escape them, zero-width characters
would corrupt copied text, links and code, and its own rules already leave ``snake_case``,
``2*3`` and most URLs alone. Only where a literal marker would run into one of ours (``*`` at the
edge of bold text) is that formatting dropped rather than made ambiguous. Link addresses are
written outside any formatting, so an ``_`` in a URL cannot end it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ..walker import Frame, MatrixWalker, valid_unicode
from .markup import BOLD, CODE, ITALIC, SCHEME, STRIKE, STYLE_ORDER, is_boundary

_MARKERS = {"bold": BOLD, "italic": ITALIC, "strike": STRIKE, "code": CODE}

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
    match = SCHEME.match(href)
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


class _MatrixToWhatsApp(MatrixWalker):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[_Line] = []
        self.current: _Line | None = None
        self.containers: list[_Container] = []
        self.styles: dict[str, int] = {}
        self.links: list[_Link] = []
        self.code: list[str] = []
        self.pending_breaks = 0
        self.pending_space = False

    # -- output

    def _fresh(self) -> bool:
        return any(container.fresh for container in self.containers)

    def breaks(self, count: int) -> None:
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
            self.code.append(text)
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

    def line_break(self) -> None:
        if self.pre_depth:
            self.code.append("\n")
        elif self.current is not None and not self._fresh():
            self.pending_breaks += 1
            self.pending_space = False

    def space(self) -> None:
        if self.current is not None:
            self.pending_space = True

    def word(self, word: str) -> None:
        self._emit(word, frozenset(style for style, count in self.styles.items() if count))

    def pre_text(self, text: str) -> None:
        self.code.append(text)
        for link in self.links:
            link.text.append(text)

    # -- tags

    def open(self, frame: Frame, attrs: dict[str, str]) -> None:
        if not self.pre_depth:
            super().open(frame, attrs)
        elif frame.tag == "a":  # nothing else is formatted inside a code block
            self.link(frame, attrs.get("href", ""))

    def style(self, frame: Frame, style: str) -> None:
        marker = _MARKERS.get(style)
        if marker is None or (marker != CODE and self.styles.get(CODE)):
            return  # WhatsApp formats nothing inside code
        self.styles[marker] = self.styles.get(marker, 0) + 1
        frame.on_close.append(lambda: self._end_style(marker))

    def _end_style(self, marker: str) -> None:
        self.styles[marker] -= 1

    def link(self, frame: Frame, href: str) -> None:
        self.links.append(_Link(_display_url(href)))
        frame.on_close.append(self._link_target)

    def quote(self, frame: Frame) -> None:
        self._contain(frame, _Container("> ", "> "))

    def item(self, frame: Frame, number: int | None) -> None:
        marker = "* " if number is None else f"{number}. "
        if self.current is not None:
            self.pending_breaks = 1
        self._contain(frame, _Container(marker, " " * len(marker)))

    def _contain(self, frame: Frame, container: _Container) -> None:
        self.containers.append(container)
        frame.on_close.append(self.containers.pop)

    def code_block(self, frame: Frame) -> None:
        self.code = []
        frame.on_close.append(self._code_block)

    def cell(self) -> None:
        self.pending_space = self.current is not None and not self.pending_breaks

    def _link_target(self) -> None:
        """``text (url)`` for a link, unless the text already says where it goes."""
        link = self.links.pop()
        text = "".join(link.text).strip()
        if link.url is None or _bare_link(text) == _bare_link(link.url):
            return
        shown = f"({link.url})" if text else link.url
        if self.pre_depth:
            self.code.append(f" {shown}" if text else shown)
            return
        self.pending_space = bool(text)
        self._emit(shown, frozenset())

    def _code_block(self) -> None:
        content = "".join(self.code).lstrip("\n").rstrip()
        self.code = []
        if content.strip():
            # WhatsApp cannot quote ``` inside a code block: such a block goes out unmarked.
            self._emit_raw(content if "```" in content else f"```{content}```")

    def finish(self) -> str:
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
        candidates = todo - {CODE} or todo
        best, best_end = CODE, index
        for style in STYLE_ORDER:
            if style in candidates:
                end = index
                while end < len(runs) and style in runs[end][1]:
                    if style == CODE and runs[end][1] - applied != {CODE}:
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
    if style == CODE:
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
    if CODE not in content:
        return CODE
    if "```" not in content and not content.startswith(CODE) and not content.endswith(CODE):
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
            if not (is_boundary(before) and is_boundary(after)) or char in (before, after):
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
    walker = _MatrixToWhatsApp()
    walker.walk(valid_unicode(html))
    result = walker.finish()
    return result if result.strip() else text
