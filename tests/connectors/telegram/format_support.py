"""What the Telegram formatting tests share: checkers of Telegram and Matrix HTML, and
hypothesis strategies for hostile text and Matrix HTML."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from aiogram.types import MessageEntity
from hypothesis import strategies as st

from bridge.connectors.telegram.format import TELEGRAM_TAGS, safe_link

from ..html_support import SETTINGS as SETTINGS
from ..html_support import StrictChecker, html_strategies
from ..html_support import hostile_text as hostile_text_with


def entity(kind: str, offset: int, length: int, **extra: Any) -> MessageEntity:
    return MessageEntity(type=kind, offset=offset, length=length, **extra)


# --------------------------------------------------------------------------- checkers


class TelegramChecker(StrictChecker):
    """Parses Telegram parse-mode HTML and fails on anything Telegram would not accept: unknown
    tags or attributes, unbalanced tags, unsafe links, nestings Telegram forbids, and text that
    is not escaped (checked by re-serialising what was parsed)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.rebuilt: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in TELEGRAM_TAGS, tag
        names = set(self.stack)
        assert not names & {"code"}, f"<{tag}> inside <code>"
        if "pre" in self.stack:
            assert tag == "code" and self.stack[-1] == "pre" and attrs, f"<{tag}> inside <pre>"
        if tag == "a":
            assert len(attrs) == 1 and attrs[0][0] == "href"
            assert safe_link(attrs[0][1] or "") is not None
            assert "a" not in names
        elif tag == "code" and attrs:
            assert self.stack and self.stack[-1] == "pre"
            assert len(attrs) == 1 and attrs[0][0] == "class"
            assert (attrs[0][1] or "").startswith("language-")
        elif tag == "blockquote":
            assert not names & {"blockquote", "a", "pre", "code"}
            assert attrs in ([], [("expandable", None)])
        else:
            assert not attrs, (tag, attrs)
        if tag in ("b", "i", "u", "s", "tg-spoiler"):
            assert tag not in names
        if tag in ("pre", "code") and not attrs:
            assert not names - {"blockquote"}, f"<{tag}> inside {self.stack}"
        self.stack.append(tag)
        self.rebuilt.append(self.get_starttag_text() or "")

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack}"
        self.stack.pop()
        self.rebuilt.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        self.rebuilt.append(data.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def check_telegram(html: str) -> str:
    """Assert that ``html`` is valid Telegram HTML; return its visible text."""
    checker = TelegramChecker()
    checker.feed(html)
    checker.close()
    assert not checker.stack, f"unclosed {checker.stack} in {html!r}"
    assert "".join(checker.rebuilt) == html, "text not escaped"
    # An empty element means the builder emitted a tag pair with nothing inside.
    for tag in TELEGRAM_TAGS:
        assert f"<{tag}></{tag}>" not in html
    return "".join(checker.text)


class MatrixChecker(HTMLParser):
    """Visible text of Matrix HTML from ``entities_to_html`` (``<br>`` as a newline), with the
    tags it used."""

    ALLOWED = {"strong", "em", "u", "del", "span", "code", "pre", "blockquote", "a", "br"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in self.ALLOWED, tag
        if tag == "br":
            self.text.append("\n")
            return
        if tag == "a":
            self.hrefs.append(dict(attrs)["href"] or "")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def matrix_text(html: str) -> tuple[str, list[str]]:
    checker = MatrixChecker()
    checker.feed(html)
    checker.close()
    assert not checker.stack
    return "".join(checker.text), checker.hrefs


def squash(text: str) -> str:
    return "".join(text.split())


hostile_text = hostile_text_with()
tags = st.sampled_from(
    [
        "b", "strong", "i", "em", "u", "ins", "s", "del", "strike", "code", "pre", "blockquote",
        "p", "div", "span", "ul", "ol", "li", "h1", "h4", "table", "tr", "td", "a", "font",
        "mx-reply", "script", "style", "tg-spoiler", "x-unknown", "img", "br", "hr", "title",
    ]
)  # fmt: skip
attributes = st.sampled_from(
    [
        "", ' href="https://e.org/?a=1&amp;b=2"', ' href="javascript:alert(1)"', " href=x",
        ' href="tg://user?id=1"', " data-mx-spoiler", ' class="language-py"',
        ' class="language-a&quot;b"', ' onclick="evil()"', ' style="color:red"',
        ' alt="<b>alt</b>"', ' start="3"', ' start="x"', " expandable",
    ]
)  # fmt: skip
structured_html, matrix_html = html_strategies(hostile_text, tags, attributes, ["\r\n"])
