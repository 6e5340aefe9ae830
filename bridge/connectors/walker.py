"""One walk over HTML for every connector that reads it, in the manner of mautrix-python's
``mautrix.util.formatter``: a base parses and keeps the structure, each network subclasses it.

``HtmlWalker`` parses bounded input (``bound_html``: no nesting or element count makes parsing
slow), keeps the stack of open elements (an end tag closes everything opened inside its element;
a stray one is ignored), drops the elements in ``skipped`` with their content and calls a hook
per element and per text. The e-mail element tree (``sanitize.parse_html``) and the plain-text
rendering of mail (``sanitize.html_to_text``) are built on it.

``MatrixWalker`` adds what Matrix ``formatted_body`` means: paragraphs and blocks as line
breaks, lists and their numbering, quotes, code blocks, inline styles, spoilers, links, table
cells, images by their alt text, words and the spaces between them. A network's formatter
(Telegram HTML, WhatsApp markup) overrides the hooks it renders; the others do nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID_TAGS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
     "source", "track", "wbr"}
)  # fmt: skip
MAX_NESTING = 100
"""Tags opened deeper than this (counting opening minus closing tags) are dropped before
any parser sees the input: html5ever's cost grows with the square of the nesting depth."""
MAX_ELEMENTS = 20_000
"""Tags beyond this many are dropped (their text stays)."""
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]{0,40})(?:\s[^<>]*)?/?>|<!--|<!\[CDATA\[|<\?")
_COMMENT_END = {"<!--": "-->", "<![CDATA[": "]]>", "<?": ">"}


def bound_html(html: str) -> tuple[str, bool]:
    """``html`` with tags beyond ``MAX_NESTING`` levels or ``MAX_ELEMENTS`` tags removed (text
    is kept), in one linear pass, and whether anything was removed. Everything that parses
    HTML here calls it first, so no input makes parsing slow."""
    out: list[str] = []
    opened: list[bool] = []  # per open element (counted naively): whether its tag was kept
    elements = 0
    position = 0
    cut = False
    for match in _TAG.finditer(html):
        if match.start() < position:
            continue  # inside a comment skipped below
        token = match.group(0)
        if token in _COMMENT_END:
            end = html.find(_COMMENT_END[token], match.end())
            position = len(html) if end < 0 else end + len(_COMMENT_END[token])
            out.append(html[match.start() : position])
            continue
        closing, tag = match.group(1), match.group(2).lower()
        if closing:
            keep = opened.pop() if opened else True
        else:
            keep = len(opened) < MAX_NESTING and elements < MAX_ELEMENTS
            elements += keep
            if tag not in VOID_TAGS and not token.endswith("/>"):
                opened.append(keep)
        if keep:
            out.append(html[position : match.end()])
        else:
            out.append(html[position : match.start()])
            cut = True
        position = match.end()
    if not cut:
        return html, False
    out.append(html[position:])
    return "".join(out), True


def valid_unicode(text: str) -> str:
    """``text`` with surrogate halves paired up and lone ones replaced by U+FFFD: Matrix JSON
    may carry them, the networks reject them."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


@dataclass(eq=False)
class Frame:
    """An open element and what opening it did, so closing it undoes exactly that."""

    tag: str
    breaks_after: int = 0
    is_list: bool = False
    is_pre: bool = False
    on_close: list[Callable[[], object]] = field(default_factory=list)
    """Run when the element closes, last registered first."""


class HtmlWalker(HTMLParser):
    """The parse itself; subclasses implement the hooks ``start_element``, ``end_element``,
    ``void_element`` and ``text``."""

    skipped: frozenset[str] = frozenset()
    """Elements dropped with everything inside them."""
    max_depth: int | None = None
    """Elements opened deeper than this are passed to ``void_element``: they hold nothing."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.frames: list[Frame] = []
        self._open: dict[str, int] = {}
        self._skipping: list[str] = []

    def walk(self, html: str, *, bound: bool = True) -> None:
        """Parse ``html`` (bounded first unless the caller did) and close what stays open."""
        self.feed(bound_html(html)[0] if bound else html)
        self.close()
        while self.frames:
            self._close(self.frames.pop())

    # -- hooks

    def start_element(self, frame: Frame, attrs: dict[str, str]) -> None:
        """An element opened; ``frame`` is already on the stack."""

    def end_element(self, frame: Frame) -> None:
        """An element closed (explicitly, by an outer end tag, or at the end of the input)."""

    def void_element(self, tag: str, attrs: dict[str, str]) -> None:
        """An element that holds nothing (``br``, ``img``... or one nested too deep)."""

    def text(self, data: str) -> None:
        """Text, with character references resolved."""

    # -- HTMLParser

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skipping or tag in self.skipped:
            if tag in self.skipped:
                self._skipping.append(tag)
            return
        values = {name: value or "" for name, value in attrs}
        if tag in VOID_TAGS or (self.max_depth is not None and len(self.frames) >= self.max_depth):
            self.void_element(tag, values)
            return
        frame = Frame(tag)
        self.frames.append(frame)
        self._open[tag] = self._open.get(tag, 0) + 1
        self.start_element(frame, values)

    def handle_endtag(self, tag: str) -> None:
        if self._skipping:
            if tag in self._skipping:
                while self._skipping.pop() != tag:
                    pass
            return
        if not self._open.get(tag):
            return
        while True:
            frame = self.frames.pop()
            self._close(frame)
            if frame.tag == tag:
                return

    def _close(self, frame: Frame) -> None:
        self._open[frame.tag] -= 1
        self.end_element(frame)

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.text(data)


# --------------------------------------------------------------------------- Matrix HTML

SKIPPED = frozenset({"mx-reply", "script", "style", "head", "title", "template", "noscript"})
"""Reply fallbacks and what no client shows: dropped with their content."""
HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
BLOCKS = frozenset(
    {"div", "table", "tr", "dl", "dt", "dd", "details", "summary", "section", "article"}
    | {"header", "footer", "nav", "aside", "figure", "figcaption", "caption", "address"}
    | {"center", "main", "form", "fieldset"}
)
"""Blocks that are only a line of their own (lists, quotes and code blocks have hooks)."""
STYLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strike",
    "del": "strike",
    "strike": "strike",
    "code": "code",
    "tt": "code",
    "kbd": "code",
    "samp": "code",
}
HTML_SPACE = re.compile(r"[ \t\n\r\f]+")


class MatrixWalker(HtmlWalker):
    """Matrix HTML by meaning. ``breaks``, ``line_break``, ``space``, ``word`` and ``pre_text``
    must be implemented; the other hooks render nothing unless overridden."""

    skipped = SKIPPED

    def __init__(self) -> None:
        super().__init__()
        self.lists: list[list[int]] = []  # per open list: [next number] or [] for bullets
        self.pre_depth = 0

    def start_element(self, frame: Frame, attrs: dict[str, str]) -> None:
        if frame.tag in ("ul", "ol"):
            self.lists.append([_list_start(attrs)] if frame.tag == "ol" else [])
            frame.is_list = True
        self.open(frame, attrs)
        if frame.tag == "pre":
            frame.is_pre = True
            self.pre_depth += 1

    def open(self, frame: Frame, attrs: dict[str, str]) -> None:
        """Calls the hook for what the element means."""
        tag = frame.tag
        if tag == "p":
            self.block(frame, 2, 2)
        elif tag in HEADINGS:
            self.block(frame, 2, 1)
            self.style(frame, "bold")
        elif tag in ("ul", "ol"):
            self.block(frame, 1, 1)
        elif tag == "li":
            self.block(frame, 1, 1)
            self.item(frame, self._next_number())
        elif tag == "blockquote":
            self.block(frame, 1, 1)
            self.quote(frame)
        elif tag == "pre":
            self.block(frame, 1, 1)
            self.code_block(frame)
        elif tag in BLOCKS:
            self.block(frame, 1, 1)
        elif tag == "code" and self.pre_depth:
            self.code_language(frame, attrs)
        elif tag in STYLE_TAGS:
            self.style(frame, STYLE_TAGS[tag])
        elif tag == "span" and "data-mx-spoiler" in attrs:
            self.spoiler(frame)
        elif tag == "a":
            self.link(frame, attrs.get("href", ""))
        elif tag in ("td", "th"):
            self.cell()

    def block(self, frame: Frame, before: int, after: int) -> None:
        self.breaks(before)
        frame.breaks_after = after

    def _next_number(self) -> int | None:
        """The number of a new item of the innermost list, or None in a bullet list."""
        counter = self.lists[-1] if self.lists else []
        if not counter:
            return None
        counter[0] += 1
        return counter[0] - 1

    def end_element(self, frame: Frame) -> None:
        if frame.is_list:
            self.lists.pop()
        if frame.is_pre:
            self.pre_depth -= 1
        for undo in reversed(frame.on_close):
            undo()
        if frame.breaks_after:
            self.breaks(frame.breaks_after)

    def void_element(self, tag: str, attrs: dict[str, str]) -> None:
        if tag == "br":
            self.line_break()
        elif tag == "hr":
            self.breaks(2)
        elif tag == "img":
            alt = HTML_SPACE.sub(" ", attrs.get("alt", "")).strip()
            if alt:
                self.text(alt)

    def text(self, data: str) -> None:
        data = data.replace("\x00", "")
        if self.pre_depth:
            self.pre_text(data.replace("\r\n", "\n").replace("\r", "\n"))
            return
        for index, word in enumerate(HTML_SPACE.split(data)):
            if index > 0:
                self.space()
            if word:
                self.word(word)

    # -- hooks a formatter must implement

    def breaks(self, count: int) -> None:
        """A block starts or ends here: ``count`` line breaks (2: a blank line) unless at the
        start of the output."""
        raise NotImplementedError

    def line_break(self) -> None:
        """A ``<br>`` (inside a code block too)."""
        raise NotImplementedError

    def space(self) -> None:
        """Whitespace between words outside code blocks."""
        raise NotImplementedError

    def word(self, word: str) -> None:
        """A word outside code blocks."""
        raise NotImplementedError

    def pre_text(self, text: str) -> None:
        """Text inside a code block, newlines normalised."""
        raise NotImplementedError

    # -- hooks a formatter may implement

    def style(self, frame: Frame, style: str) -> None:
        """Bold, italic, underline, strike or code until ``frame`` closes."""

    def spoiler(self, frame: Frame) -> None:
        """A spoiler until ``frame`` closes."""

    def link(self, frame: Frame, href: str) -> None:
        """A link to ``href`` (not yet checked) until ``frame`` closes."""

    def item(self, frame: Frame, number: int | None) -> None:
        """A list item: its ``number`` in an ordered list, None in a bullet list."""

    def quote(self, frame: Frame) -> None:
        """A blockquote until ``frame`` closes."""

    def code_block(self, frame: Frame) -> None:
        """A ``<pre>``; ``pre_depth`` counts it once this returns."""

    def code_language(self, frame: Frame, attrs: dict[str, str]) -> None:
        """A ``<code>`` inside a code block, which may name its language."""

    def cell(self) -> None:
        """A table cell starts."""


def _list_start(attrs: dict[str, str]) -> int:
    try:
        return max(0, min(int(attrs.get("start", "1")), 10**9))
    except ValueError:
        return 1
