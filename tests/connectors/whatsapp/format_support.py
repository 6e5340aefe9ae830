"""What the WhatsApp formatting tests share: text helpers, a checker of Matrix HTML and
hostile text."""

from __future__ import annotations

import html as htmllib

from ..html_support import SETTINGS as SETTINGS
from ..html_support import StrictChecker
from ..html_support import hostile_text as hostile_text_with

MARKERS = "*_~`"


def keep(text: str, drop: str = "") -> str:
    """``text`` without whitespace and without the characters in ``drop``."""
    return "".join(ch for ch in "".join(text.split()) if ch not in drop)


def is_subsequence(needle: str, haystack: str) -> bool:
    it = iter(haystack)
    return all(ch in it for ch in needle)


# --------------------------------------------------------------------------- checkers


class MatrixChecker(StrictChecker):
    """Parses the Matrix HTML of ``whatsapp_to_matrix`` and fails on anything it should not
    write: unknown tags or attributes, unbalanced tags, unescaped text. The visible text has
    ``<br>`` and blocks as newlines and ordered items numbered, as a client shows them."""

    ALLOWED = {"strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li", "br"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.rebuilt: list[str] = []
        self.numbers: list[int | None] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in self.ALLOWED, tag
        self.tags.append(tag)
        self.rebuilt.append(self.get_starttag_text() or "")
        if tag == "ol":
            assert attrs == [] or (len(attrs) == 1 and attrs[0][0] == "start"), attrs
            self.numbers.append(int(attrs[0][1] or "") if attrs else 1)
        else:
            assert not attrs, (tag, attrs)
        if tag == "br":
            self.text.append("\n")
            return
        if tag == "ul":
            self.numbers.append(None)
        if tag == "li":
            assert self.stack and self.stack[-1] in ("ul", "ol"), self.stack
            number = self.numbers[-1]
            if number is not None:
                self.text.append(f"{number}. ")
                self.numbers[-1] = number + 1
        if tag in ("strong", "em", "del"):
            assert tag not in self.stack, f"<{tag}> inside {self.stack}"
        if tag in ("code", "pre"):
            assert not {"code"} & set(self.stack), f"<{tag}> inside {self.stack}"
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert tag != "br"
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack}"
        self.stack.pop()
        if tag in ("ul", "ol"):
            self.numbers.pop()
        if tag in ("li", "pre", "blockquote"):
            self.text.append("\n")
        self.rebuilt.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        self.rebuilt.append(htmllib.escape(data, quote=True).replace("&#x27;", "'"))


def matrix_text(html: str) -> str:
    """Assert ``html`` is well formed, balanced and escaped; return its visible text."""
    checker = MatrixChecker()
    checker.feed(html)
    checker.close()
    assert not checker.stack, f"unclosed {checker.stack} in {html!r}"
    assert "".join(checker.rebuilt) == html, f"text not escaped in {html!r}"
    for tag in ("strong", "em", "del", "code"):
        assert f"<{tag}></{tag}>" not in html
    return "".join(checker.text)


hostile_text = hostile_text_with(["*", "_", "~", "`", "```", "> ", "* ", "1. ", " ", "\r\n"])
