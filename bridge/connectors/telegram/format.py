"""Text formatting between Telegram and Matrix, and splitting to Telegram's length limits.

Inbound, Telegram text plus ``MessageEntity`` offsets (UTF-16 code units) becomes Matrix HTML.
Outbound, Matrix HTML (which may be hostile) becomes the subset of HTML that Telegram's HTML
parse mode accepts, always well formed, so Telegram never answers "can't parse entities".
Telegram counts lengths in UTF-16 code units of the visible text; ``split_telegram_html`` and
``split_plain`` cut long texts into chunks that fit.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from ..walker import Frame, MatrixWalker, bound_html, valid_unicode
from .capabilities import TEXT_LIMIT

if TYPE_CHECKING:
    from aiogram.types import MessageEntity

LINK_SCHEMES = frozenset({"http", "https", "tg", "mailto"})

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_USERNAME = re.compile(r"@?([A-Za-z0-9_]{1,64})")
_LANGUAGE = re.compile(r"[A-Za-z0-9_+#.-]{1,64}")


def telegram_length(text: str) -> int:
    """The length of ``text`` as Telegram counts it: UTF-16 code units."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_attr(text: str) -> str:
    return _escape(text).replace('"', "&quot;")


def safe_link(url: str) -> str | None:
    """``url`` if it is an absolute link Telegram and Matrix clients may open, else None."""
    url = url.strip()
    if not url or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return None
    match = _SCHEME.match(url)
    if match is None:
        return None
    scheme = match.group(1).lower()
    if scheme not in LINK_SCHEMES or len(url) == len(match.group(0)):
        return None
    if scheme in ("http", "https"):
        try:
            if not urlsplit(url).hostname:
                return None
        except ValueError:
            return None
    return url


# --------------------------------------------------------------------------- Telegram → Matrix

_STYLE_TAGS = {
    "bold": ("<strong>", "</strong>"),
    "italic": ("<em>", "</em>"),
    "underline": ("<u>", "</u>"),
    "strikethrough": ("<del>", "</del>"),
    "spoiler": ("<span data-mx-spoiler>", "</span>"),
    "code": ("<code>", "</code>"),
    "blockquote": ("<blockquote>", "</blockquote>"),
    "expandable_blockquote": ("<blockquote>", "</blockquote>"),
}
_AUTOLINKS = frozenset({"url", "email", "phone_number"})
"""Entities that clients linkify by themselves: rendered as links, but not worth HTML alone."""


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    order: int
    open: str
    close: str
    block: bool = False
    pre: bool = False


def _entity_link(entity: MessageEntity, content: str) -> str | None:
    kind = entity.type
    if kind == "text_link":
        return safe_link(entity.url or "")
    if kind == "url":
        content = content.strip()
        if _SCHEME.match(content) and "://" in content:
            return safe_link(content)
        return safe_link(f"http://{content}")
    if kind == "mention":
        match = _USERNAME.fullmatch(content)
        return f"https://t.me/{match.group(1)}" if match else None
    if kind == "text_mention":
        return f"tg://user?id={entity.user.id}" if entity.user is not None else None
    if kind == "email":
        address = content.strip()
        if "@" not in address or any(ch.isspace() or ch in "<>\"'" for ch in address):
            return None
        return f"mailto:{quote(address, safe='@.+-_!#$%&*=?^`{|}~')}"
    if kind == "phone_number":
        digits = "".join(ch for ch in content if ch.isascii() and ch.isdigit())
        if not digits:
            return None
        return f"tel:{'+' if content.strip().startswith('+') else ''}{digits}"
    return None


def _entity_span(
    entity: MessageEntity, order: int, start: int, end: int, text: str
) -> _Span | None:
    kind = entity.type
    if kind in _STYLE_TAGS:
        open_tag, close_tag = _STYLE_TAGS[kind]
        return _Span(start, end, order, open_tag, close_tag, block="blockquote" in kind)
    if kind == "pre":
        language = entity.language or ""
        if _LANGUAGE.fullmatch(language):
            open_tag = f'<pre><code class="language-{_escape_attr(language)}">'
        else:
            open_tag = "<pre><code>"
        return _Span(start, end, order, open_tag, "</code></pre>", block=True, pre=True)
    href = _entity_link(entity, text[start:end])
    if href is None:
        return None
    return _Span(start, end, order, f'<a href="{_escape_attr(href)}">', "</a>")


def _utf16_starts(text: str) -> list[int]:
    """The UTF-16 offset at which each character of ``text`` starts, plus the total length."""
    starts = [0] * (len(text) + 1)
    offset = 0
    for index, ch in enumerate(text):
        starts[index] = offset
        offset += 2 if ord(ch) > 0xFFFF else 1
    starts[len(text)] = offset
    return starts


def entities_to_html(text: str, entities: Sequence[MessageEntity] | None) -> str | None:
    """Telegram ``text`` with ``entities`` as Matrix HTML, or None when plain text will do.

    Overlapping entities are closed and reopened so the HTML nests properly. Offsets that do
    not fit the text are clipped; an offset inside a surrogate pair moves to the next
    character. Bare URLs, e-mail addresses and phone numbers are linked, but alone they do not
    make a message worth HTML (clients link those by themselves)."""
    if not text or not entities:
        return None
    starts = _utf16_starts(text)
    total = starts[-1]
    spans: list[_Span] = []
    worth = False
    for order, entity in enumerate(entities):
        first = min(max(entity.offset, 0), total)
        last = min(max(entity.offset + max(entity.length, 0), first), total)
        start, end = bisect_left(starts, first), bisect_left(starts, last)
        if start >= end:
            continue
        span = _entity_span(entity, order, start, end, text)
        if span is not None:
            spans.append(span)
            worth = worth or entity.type not in _AUTOLINKS
    if not worth:
        return None
    spans.sort(key=lambda s: (s.start, -s.end, s.order))
    bounds = sorted({0, len(text)} | {s.start for s in spans} | {s.end for s in spans})
    # Tokens: ("open"/"close", tag, block) or ("text", text, in_pre).
    tokens: list[tuple[str, str, bool]] = []
    stack: list[_Span] = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        active = [s for s in spans if s.start <= a and s.end >= b]
        keep = 0
        while keep < len(stack) and keep < len(active) and stack[keep] is active[keep]:
            keep += 1
        while len(stack) > keep:
            span = stack.pop()
            tokens.append(("close", span.close, span.block))
        for span in active[keep:]:
            stack.append(span)
            tokens.append(("open", span.open, span.block))
        tokens.append(("text", text[a:b], any(s.pre for s in stack)))
    while stack:
        span = stack.pop()
        tokens.append(("close", span.close, span.block))
    return _render_entity_tokens(tokens)


def _render_entity_tokens(tokens: list[tuple[str, str, bool]]) -> str:
    out: list[str] = []
    for index, (kind, value, flag) in enumerate(tokens):
        if kind != "text":
            out.append(value)
            continue
        # A block element is a line of its own: drop the newline that separates it in the text.
        if index > 0 and tokens[index - 1][2] and tokens[index - 1][0] != "text":
            value = value.removeprefix("\n")
        if index + 1 < len(tokens) and tokens[index + 1][2] and tokens[index + 1][0] != "text":
            value = value.removesuffix("\n")
        value = _escape(value).replace('"', "&quot;")
        out.append(value if flag else value.replace("\n", "<br>"))
    return "".join(out)


# --------------------------------------------------------------------------- Matrix → Telegram

TELEGRAM_TAGS = frozenset({"b", "i", "u", "s", "a", "code", "pre", "blockquote", "tg-spoiler"})
_STYLE_NAMES = {"bold": "b", "italic": "i", "underline": "u", "strike": "s", "code": "code"}
_STYLES = frozenset({"b", "i", "u", "s", "tg-spoiler"})


@dataclass
class _Open:
    name: str
    start_tag: str
    emitted: bool = False


class _Builder:
    """Telegram HTML with a stack of open tags. A tag is written only when text follows it, so
    empty elements vanish, and ``finish`` closes whatever is still open."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.stack: list[_Open] = []
        self.open_count: dict[str, int] = {}

    def names(self) -> list[str]:
        return [entry.name for entry in self.stack]

    def open(self, name: str, start_tag: str) -> None:
        self.stack.append(_Open(name, start_tag))
        self.open_count[name] = self.open_count.get(name, 0) + 1

    def close(self) -> None:
        entry = self.stack.pop()
        self.open_count[entry.name] -= 1
        if entry.emitted:
            self.out.append(f"</{entry.name}>")

    def close_name(self, name: str) -> None:
        """Close ``name`` and everything opened inside it; a stray end tag is ignored."""
        if self.open_count.get(name):
            while self.stack[-1].name != name:
                self.close()
            self.close()

    def text(self, text: str, *, materialize: bool = True) -> None:
        """Append visible text; without ``materialize`` it stays outside tags not yet written
        (for whitespace that belongs before them)."""
        if not text:
            return
        if materialize:
            for entry in self.stack:
                if not entry.emitted:
                    self.out.append(entry.start_tag)
                    entry.emitted = True
        self.out.append(_escape(text))

    def finish(self) -> str:
        while self.stack:
            self.close()
        return "".join(self.out)


@dataclass
class _Frame:
    """An open source element and what opening it did, so closing it can undo exactly that."""

    tag: str
    pushed: int = 0
    breaks_after: int = 0
    is_list: bool = False
    is_pre: bool = False


class _MatrixToTelegram(MatrixWalker):
    def __init__(self) -> None:
        super().__init__()
        self.builder = _Builder()
        self.started = False
        self.pending_breaks = 0
        self.pending_space = False
        self.item_start = False
        self.pre_started = False
        self.pre_newlines = 0

    # -- whitespace

    def breaks(self, count: int) -> None:
        if self.started and not self.item_start:
            self.pending_breaks = max(self.pending_breaks, count)
        self.pending_space = False

    def _flush_whitespace(self) -> None:
        if not self.started:
            self.pending_breaks = 0
            self.pending_space = False
        elif self.pending_breaks:
            self.builder.text("\n" * self.pending_breaks, materialize=False)
        elif self.pending_space:
            self.builder.text(" ", materialize=False)
        self.pending_breaks = 0
        self.pending_space = False

    def line_break(self) -> None:
        if self.pre_depth:
            self.pre_text("\n")
            return
        self._flush_whitespace()
        if self.started:
            self.pending_breaks = 1

    def space(self) -> None:
        if self.started and not self.item_start:
            self.pending_space = True

    def word(self, word: str) -> None:
        self._flush_whitespace()
        self.builder.text(word)
        self.started = True
        self.item_start = False

    def pre_text(self, text: str) -> None:
        body = text.rstrip("\n")
        if not body:
            self.pre_newlines += len(text)
            return
        body = "\n" * self.pre_newlines + body if self.pre_started else body.lstrip("\n")
        self.pre_newlines = len(text) - len(text.rstrip("\n"))
        if body:
            self.word(body)
            self.pre_started = True

    # -- tags

    def _push(self, frame: Frame, name: str, start_tag: str, *, language: bool = False) -> None:
        """Open a Telegram tag until ``frame`` closes, if Telegram allows it here."""
        names = self.builder.names()
        inside_code = "pre" in names or "code" in names
        if name in _STYLES:
            allowed = not inside_code and name not in names
        elif name == "a":
            allowed = not inside_code and "a" not in names
        elif name == "blockquote":
            allowed = not ({"a", "pre", "code", "blockquote"} & set(names))
        elif name == "code" and language:
            allowed = bool(names) and names[-1] == "pre" and "code" not in names
        else:  # pre, code: no entity may contain them but a blockquote
            allowed = not (set(names) - {"blockquote"})
        if allowed:
            self.builder.open(name, start_tag)
            frame.on_close.append(self.builder.close)

    def open(self, frame: Frame, attrs: dict[str, str]) -> None:
        if frame.tag == "tg-spoiler":
            self.spoiler(frame)
        else:
            super().open(frame, attrs)

    def style(self, frame: Frame, style: str) -> None:
        name = _STYLE_NAMES[style]
        self._push(frame, name, f"<{name}>")

    def spoiler(self, frame: Frame) -> None:
        self._push(frame, "tg-spoiler", "<tg-spoiler>")

    def link(self, frame: Frame, href: str) -> None:
        url = safe_link(href)
        if url is not None:
            self._push(frame, "a", f'<a href="{_escape_attr(url)}">')

    def quote(self, frame: Frame) -> None:
        self._push(frame, "blockquote", "<blockquote>")

    def code_block(self, frame: Frame) -> None:
        self._push(frame, "pre", "<pre>")
        frame.on_close.append(self._end_code_block)
        self.pre_started = False
        self.pre_newlines = 0

    def _end_code_block(self) -> None:
        self.pre_newlines = 0

    def code_language(self, frame: Frame, attrs: dict[str, str]) -> None:
        language = attrs.get("class", "").removeprefix("language-")
        if "class" in attrs and _LANGUAGE.fullmatch(language):
            start_tag = f'<code class="language-{_escape_attr(language)}">'
            self._push(frame, "code", start_tag, language=True)

    def cell(self) -> None:
        self.pending_space = self.started and not self.pending_breaks

    def item(self, frame: Frame, number: int | None) -> None:
        indent = "  " * max(len(self.lists) - 1, 0)
        prefix = f"{indent}• " if number is None else f"{indent}{number}. "
        if self.started:
            self.pending_breaks = 1
        self._flush_whitespace()
        self.builder.text(prefix)
        self.started = True
        self.item_start = True


def matrix_html_to_telegram(html: str) -> str:
    """Matrix ``formatted_body`` as Telegram parse-mode HTML: only b, i, u, s, a (http, https,
    tg and mailto links), code, pre (with an optional language), blockquote and tg-spoiler, in
    nestings Telegram accepts, balanced and escaped. Reply fallbacks, scripts and styles are
    dropped; other tags are dropped with their text kept; blocks become line breaks."""
    walker = _MatrixToTelegram()
    walker.walk(valid_unicode(html))
    return walker.builder.finish()


# --------------------------------------------------------------------------- splitting


def _cut(text: str, start: int, end: int) -> tuple[int, int]:
    """Where to end the chunk that begins at ``start`` and may reach ``end`` (exclusive), and
    where the next chunk begins: at the last paragraph, else line, else word boundary that
    leaves the chunk at least a quarter full, else at the last whitespace, else at ``end``."""
    quarter = start + (end - start) // 4
    cut = -1
    for separator in ("\n\n", "\n", " "):
        found = text.rfind(separator, quarter, min(len(text), end + len(separator)))
        if found > start:
            cut = found
            break
    if cut < 0:
        if text[end].isspace():
            cut = end
        else:
            cut = next((i for i in range(end - 1, start, -1) if text[i].isspace()), end)
    stop, resume = cut, cut
    while stop > start and text[stop - 1].isspace():
        stop -= 1
    while resume < len(text) and text[resume].isspace():
        resume += 1
    return stop, resume


def _ranges(text: str, limit: int) -> list[tuple[int, int]]:
    if limit < 2:
        raise ValueError("limit must be at least 2 UTF-16 code units")
    ranges: list[tuple[int, int]] = []
    start = 0
    while start < len(text):
        end, width = start, 0
        while end < len(text):
            width += 2 if ord(text[end]) > 0xFFFF else 1
            if width > limit:
                break
            end += 1
        if end >= len(text):
            ranges.append((start, len(text)))
            break
        stop, resume = _cut(text, start, end)
        ranges.append((start, stop))
        start = resume
    return [(a, b) for a, b in ranges if text[a:b].strip()]


def split_plain(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split plain text into chunks of at most ``limit`` UTF-16 code units, at paragraph, line
    or word boundaries where possible; whitespace at the cuts is dropped. Empty or blank text
    gives no chunks."""
    text = valid_unicode(text)
    return [text[a:b] for a, b in _ranges(text, limit)]


_TELEGRAM_ALIASES = {"strong": "b", "em": "i", "ins": "u", "strike": "s", "del": "s"}


class _TelegramTokens(HTMLParser):
    """Telegram HTML as tokens: ("text", text), ("start", name, start tag), ("end", name).
    Tags Telegram does not know are dropped (their text kept), and so are unsafe links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tokens: list[tuple[str, ...]] = []
        self.spans: list[bool] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        name = _TELEGRAM_ALIASES.get(tag, tag)
        if tag == "span":
            self.spans.append(values.get("class") == "tg-spoiler")
            if not self.spans[-1]:
                return
            name = "tg-spoiler"
        elif name not in TELEGRAM_TAGS:
            return
        start_tag = f"<{name}>"
        if name == "a":
            href = safe_link(values.get("href", ""))
            if href is None:
                return
            start_tag = f'<a href="{_escape_attr(href)}">'
        elif name == "code":
            language = values.get("class", "").removeprefix("language-")
            if values.get("class", "").startswith("language-") and _LANGUAGE.fullmatch(language):
                start_tag = f'<code class="language-{language}">'
        elif name == "blockquote" and "expandable" in values:
            start_tag = "<blockquote expandable>"
        self.tokens.append(("start", name, start_tag))

    def handle_endtag(self, tag: str) -> None:
        name = _TELEGRAM_ALIASES.get(tag, tag)
        if tag == "span":
            if not self.spans or not self.spans.pop():
                return
            name = "tg-spoiler"
        if name in TELEGRAM_TAGS:
            self.tokens.append(("end", name))

    def handle_data(self, data: str) -> None:
        self.tokens.append(("text", data))


def split_telegram_html(html: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split Telegram HTML into chunks whose visible text is at most ``limit`` UTF-16 code
    units, cutting at paragraph, line or word boundaries where possible (never inside a
    character reference) and closing and reopening tags across each cut, so every chunk is
    well-formed on its own. Whitespace at the cuts is dropped; blank input gives no chunks."""
    parser = _TelegramTokens()
    parser.feed(bound_html(valid_unicode(html))[0])
    parser.close()
    tokens = parser.tokens
    visible = "".join(token[1] for token in tokens if token[0] == "text")
    chunks: list[str] = []
    for a, b in _ranges(visible, limit):
        builder = _Builder()
        position = 0
        for token in tokens:
            if position >= b:
                break
            if token[0] == "start":
                builder.open(token[1], token[2])
            elif token[0] == "end":
                builder.close_name(token[1])
            else:
                text = token[1]
                builder.text(text[max(a - position, 0) : b - position])
                position += len(text)
        chunks.append(builder.finish())
    return chunks
