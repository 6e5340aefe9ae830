"""Remote HTML is hostile (mail, webhook payloads): one allow-list sanitiser for Matrix, and
a plain-text rendering.

``sanitize_html`` keeps only what ``org.matrix.custom.html`` allows, with links limited to
http(s) and mailto and images limited to ``mxc:`` sources the bridge uploaded itself, so
remote images (tracking pixels) never reach a Matrix client. ``html_to_text`` renders a mail
that has only HTML as plain text.
``parse_html`` builds a small element tree (``HtmlNode``) that the quote trimmer in ``trim.py``
walks; ``html_to_text`` renders the same walk without keeping the tree. Both walk with the shared
``walker.HtmlWalker``: html5ever (through nh3) makes the input well formed first, and the nesting
depth is bounded, so the walk stays fast whatever the input.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass, field
from html import escape, unescape

import nh3

from .walker import MAX_NESTING as MAX_NESTING  # where the limit is documented for callers
from .walker import VOID_TAGS, Frame, HtmlWalker, bound_html

ALLOWED_TAGS = frozenset(
    {
        "font", "del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a", "ul", "ol",
        "sup", "sub", "li", "b", "i", "u", "strong", "em", "strike", "code", "hr", "br",
        "div", "table", "thead", "tbody", "tr", "th", "td", "caption", "pre", "span", "img",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "font": {"color", "data-mx-bg-color", "data-mx-color"},
    "span": {"data-mx-bg-color", "data-mx-color", "data-mx-spoiler"},
    "a": {"href", "name", "target"},
    "img": {"src", "alt", "title", "width", "height"},
    "ol": {"start"},
    "code": {"class"},
}
LINK_SCHEMES = ("http://", "https://", "mailto:")
# Removed together with their content; everything else not allowed keeps its text.
_DROP_WITH_CONTENT = {"script", "style", "head", "title", "template", "noscript", "object"}

_COLOR = re.compile(r"#[0-9A-Fa-f]{6}")
_DIGITS = re.compile(r"[0-9]{1,5}")
_LANGUAGE_CLASS = re.compile(r"language-[A-Za-z0-9_+#.-]{1,64}")
# nh3 serialises every attribute as name="value" with '"' escaped, so this matches any <img>.
_IMG = re.compile(r'<img((?:\s+[^\s=>]+(?:="[^"]*")?)*)\s*/?>')
_EMPTY_ELEMENT = re.compile(r"<(\w+)>\s*</\1>")


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    if attr == "rel":
        return value
    if tag == "a" and attr == "href":
        url = value.strip()
        return url if url.lower().startswith(LINK_SCHEMES) and len(url) > 7 else None
    if tag == "a" and attr == "target":
        return "_blank" if value.strip() == "_blank" else None
    if tag == "img" and attr == "src":
        url = value.strip()
        return url if url.startswith("mxc://") else None
    if attr in ("color", "data-mx-color", "data-mx-bg-color"):
        return value if _COLOR.fullmatch(value.strip()) else None
    if attr in ("width", "height", "start"):
        return value.strip() if _DIGITS.fullmatch(value.strip()) else None
    if tag == "code" and attr == "class":
        kept = [c for c in value.split() if _LANGUAGE_CLASS.fullmatch(c)]
        return kept[0] if kept else None
    if attr == "data-mx-spoiler":
        return value[:200]
    return value


_CLEANER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags=_DROP_WITH_CONTENT,
    attributes=ALLOWED_ATTRIBUTES,
    attribute_filter=_attribute_filter,
    strip_comments=True,
    link_rel="noopener",
    url_schemes={"http", "https", "mailto", "mxc"},
)


def _drop_foreign_images(html: str, media: Container[str]) -> str:
    def keep(match: re.Match[str]) -> str:
        src = re.search(r'\ssrc="(mxc://[^"]*)"', match.group(1))
        return match.group(0) if src and unescape(src.group(1)) in media else ""

    return _IMG.sub(keep, html)


def sanitize_html(html: str, *, media: Container[str] = frozenset()) -> str:
    """``html`` reduced to what Matrix clients render: the allowed tags and attributes only,
    links to http(s)/mailto only (``rel="noopener"``), images only with ``mxc:`` sources the
    bridge itself uploaded (``media``): any other server's media would be fetched by every
    client through federation, a read-tracking pixel. Scripts, styles, comments, event
    handlers and ``javascript:`` URLs are gone."""
    cleaned = _CLEANER.clean(bound_html(clean_text(html))[0])
    cleaned = _drop_foreign_images(cleaned, media)
    return _strip_blank_edges(cleaned)


def _strip_blank_edges(html: str) -> str:
    """``html`` without leading/trailing whitespace, ``<br>``, ``&nbsp;`` and empty elements."""
    start, end = 0, len(html)
    while True:
        before = (start, end)
        while start < end and html[start].isspace():
            start += 1
        while end > start and html[end - 1].isspace():
            end -= 1
        for junk in ("<br>", "&nbsp;"):
            if html.startswith(junk, start, end):
                start += len(junk)
            if end - start >= len(junk) and html.endswith(junk, start, end):
                end -= len(junk)
        if end > start and html[end - 1] == ">":
            close = html.rfind("</", max(start, end - 100), end)
            opening = html.rfind("<", max(start, close - 100), close) if close > start else -1
            if opening >= start and _EMPTY_ELEMENT.fullmatch(html, opening, end):
                end = opening
        if (start, end) == before:
            return html[start:end]


def clean_text(text: str) -> str:
    """``text`` without NUL characters and lone surrogates (JSON and SQL reject them)."""
    text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


# --------------------------------------------------------------------------- element tree

_ATTR_NAME = re.compile(r"[A-Za-z_:][-A-Za-z0-9_:.]*")
MAX_TREE_HTML = 1_000_000
"""Larger HTML is rendered as text by stripping tags (the tree would be slow to build)."""
MAX_DEPTH = 120
"""Elements nested deeper than this become siblings: walking the tree stays shallow."""


@dataclass(eq=False)
class HtmlNode:
    """An element (``tag`` set) or a text node (``tag`` None, ``text`` set)."""

    tag: str | None
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[HtmlNode] = field(default_factory=list)
    parent: HtmlNode | None = field(default=None, repr=False)
    text: str = ""

    def classes(self) -> list[str]:
        return self.attrs.get("class", "").lower().split()

    def iter(self) -> list[HtmlNode]:
        """This node and all below it, in document order."""
        out: list[HtmlNode] = []
        stack = [self]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.children))
        return out


class _TreeBuilder(HtmlWalker):
    max_depth = MAX_DEPTH - 1  # the root is the first level

    def __init__(self) -> None:
        super().__init__()
        self.root = HtmlNode("#root")
        self.stack = [self.root]

    def start_element(self, frame: Frame, attrs: dict[str, str]) -> None:
        node = HtmlNode(frame.tag, attrs, parent=self.stack[-1])
        self.stack[-1].children.append(node)
        self.stack.append(node)

    def end_element(self, frame: Frame) -> None:
        self.stack.pop()

    def void_element(self, tag: str, attrs: dict[str, str]) -> None:
        self.stack[-1].children.append(HtmlNode(tag, attrs, parent=self.stack[-1]))

    def text(self, data: str) -> None:
        self.stack[-1].children.append(HtmlNode(None, parent=self.stack[-1], text=data))


# Makes any HTML well formed (and drops scripts, styles, comments) before the stdlib parser sees
# it: html.parser is slow, even quadratic, on some malformed input, never on well-formed HTML.
# Keeps what the quote trimmer looks at (class, id, type, style) and what sanitising may keep.
_NORMALIZER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS | nh3.ALLOWED_TAGS | {"font", "section", "main", "address"}),
    clean_content_tags=_DROP_WITH_CONTENT,
    attributes={**ALLOWED_ATTRIBUTES, "*": {"class", "id", "type", "style", "dir"}},
    strip_comments=True,
    link_rel=None,
    url_schemes={"http", "https", "mailto", "mxc", "cid"},
)


def _walk_normalised(walker: HtmlWalker, html: str) -> None:
    """Walk ``html`` normalised by html5ever. Raises ``ValueError`` if the stdlib parser gives
    up."""
    try:
        # Bounded before normalising: the walker's own depth limit takes what html5ever adds.
        walker.walk(_NORMALIZER.clean(bound_html(clean_text(html))[0]), bound=False)
    except Exception as e:  # html.parser raises AssertionError on some broken markup
        raise ValueError(f"unparsable HTML: {e}") from e


def parse_html(html: str) -> HtmlNode:
    """An element tree of ``html`` (normalised by html5ever first) under a ``#root`` node.
    Raises ``ValueError`` if the stdlib parser gives up."""
    builder = _TreeBuilder()
    _walk_normalised(builder, html)
    return builder.root


def serialize(root: HtmlNode) -> str:
    """HTML for the children of ``root`` (not sanitised: pass it through ``sanitize_html``)."""
    out: list[str] = []
    # Work items: a node to open, or a closing tag (str) to emit.
    stack: list[HtmlNode | str] = list(reversed(root.children))
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif item.tag is None:
            out.append(escape(item.text, quote=False))
        else:
            attrs = "".join(
                f' {k}="{escape(v)}"' for k, v in item.attrs.items() if _ATTR_NAME.fullmatch(k)
            )
            out.append(f"<{item.tag}{attrs}>")
            if item.tag not in VOID_TAGS:
                stack.append(f"</{item.tag}>")
                stack.extend(reversed(item.children))
    return "".join(out)


# --------------------------------------------------------------------------- HTML → text

_BLOCK_TAGS = frozenset(
    {"address", "article", "aside", "blockquote", "center", "dd", "details", "div", "dl",
     "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
     "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary",
     "table", "tbody", "thead", "tfoot", "tr", "ul", "caption"}
)  # fmt: skip
_PARAGRAPH_TAGS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol"})
_SKIP_TAGS = frozenset(_DROP_WITH_CONTENT | {"iframe", "svg", "math", "select", "button"})
_INVISIBLE = re.compile("[\u00ad\u034f\u200b-\u200d\u2060\ufeff\ue000-\ue003]")
_SPACE = re.compile(r"[ \t\r\n\f\v\u00a0]+")
# Private-use markers while rendering: kept spaces/newlines of <pre>, block and paragraph breaks.
_PRE_SPACE, _PRE_NEWLINE, _BLOCK, _PARAGRAPH = "\ue000", "\ue001", "\ue002", "\ue003"
_BREAKS = re.compile("[\n\ue002\ue003]+")


def html_to_text(html: str) -> str:
    """Plain text for ``html``: block elements on their own lines, list items with "- ",
    quotes with "> ", links as ``text (url)``. Never raises."""
    html = _INVISIBLE.sub("", clean_text(html))
    try:
        if len(html) > MAX_TREE_HTML:
            raise ValueError("too large to render structurally")
        renderer = _PlainText()
        _walk_normalised(renderer, html)
    except ValueError:
        return _flat_text(html)
    return _finish("".join(renderer.open[0].parts))


_BLOCKS_ONLY = nh3.Cleaner(
    tags={"br", "hr", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"},
    clean_content_tags=_DROP_WITH_CONTENT,
    attributes={},
    link_rel=None,
)


def _flat_text(html: str) -> str:
    """A quick rendering for huge HTML: line breaks at block ends, no other structure."""
    cleaned = re.sub(r"<(?:br|hr|/\w+)>", "\n", _BLOCKS_ONLY.clean(bound_html(html)[0]))
    text = unescape(re.sub(r"<\w+>", "", cleaned))
    lines = (_SPACE.sub(" ", line).strip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


@dataclass(eq=False)
class _Element:
    """An open element while rendering text: its children's text so far."""

    tag: str
    attrs: dict[str, str]
    pre: bool
    skip: bool
    parts: list[str] = field(default_factory=list)
    counter: int = 0
    cells: int = 0


class _PlainText(HtmlWalker):
    """Renders each element from its children's text when it closes (the tree ``parse_html``
    builds, without building it)."""

    max_depth = MAX_DEPTH - 1  # the root is the first level

    def __init__(self) -> None:
        super().__init__()
        self.open = [_Element("#root", {}, pre=False, skip=False)]

    def _element(self, tag: str, attrs: dict[str, str]) -> _Element:
        parent = self.open[-1]
        skip = parent.skip or tag in _SKIP_TAGS or tag == "img"
        element = _Element(tag, attrs, pre=parent.pre or tag == "pre", skip=skip)
        element.counter = _int(attrs.get("start"), 1) if tag == "ol" else 0
        return element

    def start_element(self, frame: Frame, attrs: dict[str, str]) -> None:
        self.open.append(self._element(frame.tag, attrs))

    def end_element(self, frame: Frame) -> None:
        self._add(self.open.pop())

    def void_element(self, tag: str, attrs: dict[str, str]) -> None:
        self._add(self._element(tag, attrs))

    def text(self, data: str) -> None:
        parent = self.open[-1]
        if parent.skip:
            return
        if parent.pre:
            parent.parts.append(data.replace(" ", _PRE_SPACE).replace("\n", _PRE_NEWLINE))
        else:
            parent.parts.append(_SPACE.sub(" ", data))

    def _add(self, element: _Element) -> None:
        """Add a closed ``element`` to its parent's text."""
        if element.skip:
            return
        parent = self.open[-1]
        text = _element_text(element)
        if element.tag == "li" and parent.tag in ("ol", "ul"):
            bullet = f"{parent.counter}. " if parent.tag == "ol" else "- "
            parent.counter += 1
            text = _BLOCK + bullet + _finish(text, final=False) + _BLOCK
        elif element.tag in ("td", "th"):
            # Data cells side by side; layout cells holding blocks on lines of their own.
            cell = _finish(text, final=False)
            text = _BLOCK + cell + _BLOCK if "\n" in cell else (" " if parent.cells else "") + cell
            parent.cells += bool(cell)
        parent.parts.append(text)


def _element_text(element: _Element) -> str:
    tag = element.tag
    if tag == "br":
        return "\n"
    if tag == "hr":
        return _PARAGRAPH
    inner = "".join(element.parts)
    if tag == "a":
        href = element.attrs.get("href", "").strip()
        if href.lower().startswith(LINK_SCHEMES):
            shown = href[7:] if href.lower().startswith("mailto:") else href
            label = inner.strip()
            if not label:
                inner = shown
            elif label != shown and label != href:
                inner = f"{inner} ({shown})"
        return inner
    if tag == "blockquote":
        lines = _finish(inner, final=False).split("\n")
        return _BLOCK + "\n".join(("> " + line).rstrip() for line in lines) + _BLOCK
    if tag in _PARAGRAPH_TAGS:
        return _PARAGRAPH + inner + _PARAGRAPH
    if tag in _BLOCK_TAGS:
        return _BLOCK + inner + _BLOCK
    return inner


def _int(value: str | None, default: int) -> int:
    return int(value) if value and _DIGITS.fullmatch(value.strip()) else default


def _breaks(match: re.Match[str]) -> str:
    run = match.group(0)
    hard = run.count("\n")
    return "\n" * max(hard, 2 if _PARAGRAPH in run else 1)


def _finish(text: str, final: bool = True) -> str:
    """Rendered text with breaks resolved, spaces trimmed per line, at most one blank line;
    ``<pre>`` whitespace is restored only in the ``final`` pass."""
    text = _BREAKS.sub(_breaks, text)
    text = "\n".join(line.strip(" ") for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    text = text.strip("\n")
    return text.replace(_PRE_SPACE, " ").replace(_PRE_NEWLINE, "\n") if final else text
