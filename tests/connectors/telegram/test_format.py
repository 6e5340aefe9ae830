"""Formatting between Telegram entities, Matrix HTML and Telegram's HTML parse mode, and
splitting to Telegram's length limits."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from aiogram.types import MessageEntity, User
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.connectors.telegram.format import (
    TELEGRAM_TAGS,
    entities_to_html,
    matrix_html_to_telegram,
    safe_link,
    split_plain,
    split_telegram_html,
    telegram_length,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def entity(kind: str, offset: int, length: int, **extra: Any) -> MessageEntity:
    return MessageEntity(type=kind, offset=offset, length=length, **extra)


# --------------------------------------------------------------------------- checkers


class TelegramChecker(HTMLParser):
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

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise AssertionError(f"self-closing <{tag}/>")

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack}"
        self.stack.pop()
        self.rebuilt.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        self.rebuilt.append(data.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))

    def handle_comment(self, data: str) -> None:
        raise AssertionError("comment in output")

    def handle_decl(self, decl: str) -> None:
        raise AssertionError("declaration in output")

    def handle_pi(self, data: str) -> None:
        raise AssertionError("processing instruction in output")

    def unknown_decl(self, data: str) -> None:
        raise AssertionError("declaration in output")


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


# --------------------------------------------------------------------------- telegram_length


def test_telegram_length_counts_utf16_code_units() -> None:
    assert telegram_length("") == 0
    assert telegram_length("abc") == 3
    assert telegram_length("ä€") == 2
    assert telegram_length("😀") == 2
    assert telegram_length("a😀b👍🏽") == 1 + 2 + 1 + 4


# --------------------------------------------------------------------------- entities_to_html


@pytest.mark.parametrize(
    ("kind", "html"),
    [
        ("bold", "<strong>word</strong>"),
        ("italic", "<em>word</em>"),
        ("underline", "<u>word</u>"),
        ("strikethrough", "<del>word</del>"),
        ("spoiler", "<span data-mx-spoiler>word</span>"),
        ("code", "<code>word</code>"),
        ("blockquote", "<blockquote>word</blockquote>"),
        ("expandable_blockquote", "<blockquote>word</blockquote>"),
    ],
)
def test_styles(kind: str, html: str) -> None:
    assert entities_to_html("a word b", [entity(kind, 2, 4)]) == f"a {html} b"


def test_no_entities_is_plain() -> None:
    assert entities_to_html("hello", None) is None
    assert entities_to_html("hello", []) is None
    assert entities_to_html("", [entity("bold", 0, 3)]) is None


@pytest.mark.parametrize("kind", ["hashtag", "cashtag", "bot_command", "custom_emoji", "other"])
def test_plain_entities_need_no_html(kind: str) -> None:
    assert entities_to_html("#tag $USD /start 🙂", [entity(kind, 0, 4)]) is None


def test_autolinks_alone_need_no_html_but_are_linked_with_formatting() -> None:
    text = "see example.com or a@b.de or +49 30 1234"
    entities = [entity("url", 4, 11), entity("email", 19, 6), entity("phone_number", 29, 11)]
    assert entities_to_html(text, entities) is None
    html = entities_to_html(text, [*entities, entity("bold", 0, 3)])
    assert html == (
        '<strong>see</strong> <a href="http://example.com">example.com</a> or '
        '<a href="mailto:a@b.de">a@b.de</a> or <a href="tel:+49301234">+49 30 1234</a>'
    )


def test_url_with_scheme_is_kept() -> None:
    html = entities_to_html(
        "x https://e.org/a?b=1&c=<2>", [entity("url", 2, 25), entity("bold", 0, 1)]
    )
    assert html == (
        '<strong>x</strong> <a href="https://e.org/a?b=1&amp;c=&lt;2&gt;">'
        "https://e.org/a?b=1&amp;c=&lt;2&gt;</a>"
    )


def test_text_link_escapes_and_checks_the_scheme() -> None:
    html = entities_to_html("click", [entity("text_link", 0, 5, url='https://e.org/"x"&y')])
    assert html == '<a href="https://e.org/&quot;x&quot;&amp;y">click</a>'
    for url in ("javascript:alert(1)", "data:text/html,x", "file:///etc/passwd", "//e.org", ""):
        assert entities_to_html("click", [entity("text_link", 0, 5, url=url)]) is None
    assert entities_to_html("c", [entity("text_link", 0, 1, url="tg://resolve?domain=x")]) == (
        '<a href="tg://resolve?domain=x">c</a>'
    )
    assert entities_to_html("c", [entity("text_link", 0, 1, url="mailto:a@b.c")]) == (
        '<a href="mailto:a@b.c">c</a>'
    )


def test_mentions() -> None:
    assert entities_to_html("hi @ada_l!", [entity("mention", 3, 6)]) == (
        'hi <a href="https://t.me/ada_l">@ada_l</a>!'
    )
    user = User(id=42, is_bot=False, first_name="Ada")
    assert entities_to_html("hi Ada", [entity("text_mention", 3, 3, user=user)]) == (
        'hi <a href="tg://user?id=42">Ada</a>'
    )
    assert entities_to_html("hi Ada", [entity("text_mention", 3, 3)]) is None


def test_pre_with_and_without_language() -> None:
    text = "code:\nx = 1 < 2\ny\ndone"
    html = entities_to_html(text, [entity("pre", 6, 12, language="python")])
    assert html == ('code:<pre><code class="language-python">x = 1 &lt; 2\ny</code></pre>done')
    html = entities_to_html(text, [entity("pre", 6, 12)])
    assert html == "code:<pre><code>x = 1 &lt; 2\ny</code></pre>done"
    html = entities_to_html(text, [entity("pre", 6, 12, language='x" onclick="')])
    assert html == "code:<pre><code>x = 1 &lt; 2\ny</code></pre>done"


def test_escapes_and_newlines() -> None:
    html = entities_to_html('a <b> & "c"\nd', [entity("italic", 0, 1)])
    assert html == "<em>a</em> &lt;b&gt; &amp; &quot;c&quot;<br>d"


def test_blockquote_takes_its_own_line() -> None:
    html = entities_to_html("before\nquoted\nafter", [entity("blockquote", 7, 7)])
    assert html == "before<blockquote>quoted</blockquote>after"


def test_offsets_are_utf16() -> None:
    text = "😀😀 bold 👍🏽 it"
    entities = [entity("bold", 5, 4), entity("italic", 15, 2)]
    assert entities_to_html(text, entities) == "😀😀 <strong>bold</strong> 👍🏽 <em>it</em>"


def test_nested_entities() -> None:
    html = entities_to_html("bold italic", [entity("bold", 0, 11), entity("italic", 5, 6)])
    assert html == "<strong>bold <em>italic</em></strong>"
    # The same range: the order of the entities decides the nesting.
    html = entities_to_html("both", [entity("italic", 0, 4), entity("bold", 0, 4)])
    assert html == "<em><strong>both</strong></em>"


def test_overlapping_entities_are_closed_and_reopened() -> None:
    html = entities_to_html("abcdefgh", [entity("bold", 0, 5), entity("italic", 3, 5)])
    assert html == "<strong>abc<em>de</em></strong><em>fgh</em>"


def test_adjacent_links_stay_apart() -> None:
    entities = [
        entity("text_link", 0, 1, url="https://a.example/"),
        entity("text_link", 1, 1, url="https://b.example/"),
    ]
    assert entities_to_html("ab", entities) == (
        '<a href="https://a.example/">a</a><a href="https://b.example/">b</a>'
    )


def test_inconsistent_offsets_are_clipped() -> None:
    assert entities_to_html("abc", [entity("bold", 1, 100)]) == "a<strong>bc</strong>"
    assert entities_to_html("abc", [entity("bold", -2, 3)]) == "<strong>a</strong>bc"
    assert entities_to_html("abc", [entity("bold", 5, 3)]) is None
    assert entities_to_html("abc", [entity("bold", 1, 0)]) is None
    assert entities_to_html("abc", [entity("bold", 1, -1)]) is None
    # An offset inside a surrogate pair moves to the next character.
    assert entities_to_html("😀x", [entity("bold", 1, 2)]) == "😀<strong>x</strong>"


entity_kinds = st.sampled_from(
    [
        "bold", "italic", "underline", "strikethrough", "spoiler", "code", "pre", "blockquote",
        "expandable_blockquote", "text_link", "url", "mention", "text_mention", "email",
        "phone_number", "hashtag", "cashtag", "bot_command", "custom_emoji", "date_time", "new",
    ]
)  # fmt: skip
hostile_text = st.lists(
    st.one_of(
        st.characters(),
        st.sampled_from(
            ["<", ">", "&", '"', "'", "\n", "😀", "👍🏽", "&amp;", "<script>", "\ud800", "\x00"]
        ),
    ),
    max_size=40,
).map("".join)
urls = st.one_of(
    st.sampled_from(
        ["https://e.org/", "javascript:alert(1)", 'http://x/"><script>', "tg://user?id=1"]
    ),
    hostile_text,
)


@st.composite
def entity_lists(draw: st.DrawFn, text: str) -> list[MessageEntity]:
    size = telegram_length(text)
    result = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(entity_kinds)
        extra: dict[str, Any] = {}
        if kind == "text_link":
            extra["url"] = draw(urls)
        elif kind == "pre":
            extra["language"] = draw(st.one_of(st.none(), hostile_text))
        elif kind == "text_mention" and draw(st.booleans()):
            extra["user"] = User(id=draw(st.integers(1, 2**40)), is_bot=False, first_name="U")
        offset = draw(st.integers(-3, size + 3))
        length = draw(st.integers(-3, size + 3))
        result.append(entity(kind, offset, length, **extra))
    return result


@SETTINGS
@given(st.data())
def test_entities_to_html_never_raises_and_escapes(data: st.DataObject) -> None:
    text = data.draw(hostile_text)
    entities = data.draw(entity_lists(text))
    html = entities_to_html(text, entities)
    if html is None:
        return
    visible, hrefs = matrix_text(html)
    # Nothing but the tags we wrote: every "<" of the text came out escaped.
    assert squash(visible) == squash(text)
    assert "<script" not in html
    for href in hrefs:
        assert href.split(":", 1)[0].lower() in ("http", "https", "tg", "mailto", "tel")


# --------------------------------------------------------------------------- Matrix → Telegram


@pytest.mark.parametrize(
    ("matrix", "telegram"),
    [
        ("plain", "plain"),
        ("<b>b</b><strong>s</strong><i>i</i><em>e</em>", "<b>b</b><b>s</b><i>i</i><i>e</i>"),
        ("<u>u</u><ins>n</ins><s>s</s><del>d</del><strike>k</strike>",
         "<u>u</u><u>n</u><s>s</s><s>d</s><s>k</s>"),
        ("<code>x &lt; y</code>", "<code>x &lt; y</code>"),
        ("<span data-mx-spoiler>secret</span>", "<tg-spoiler>secret</tg-spoiler>"),
        ('<span data-mx-spoiler="why">s</span>', "<tg-spoiler>s</tg-spoiler>"),
        ('<span data-mx-color="#f00">red</span>', "red"),
        ('<font color="red">red</font>', "red"),
        ("a &amp; b &lt;c&gt; d > e", "a &amp; b &lt;c&gt; d &gt; e"),
        ('quote " and \' stay', 'quote " and \' stay'),
        ("<blockquote>q</blockquote>after", "<blockquote>q</blockquote>\nafter"),
        ("a<br>b<br/>c<br><br>d", "a\nb\nc\n\nd"),
        ("<p>one</p>\n<p>two</p>", "one\n\ntwo"),
        ("<div>one</div><div>two</div>", "one\ntwo"),
        ("<h1>Title</h1><p>text</p>", "<b>Title</b>\n\ntext"),
        ("<h3>A</h3>b", "<b>A</b>\nb"),
        ("<ul>\n<li>one</li>\n<li>two</li>\n</ul>", "• one\n• two"),
        ("<ol><li>one</li><li>two</li></ol>", "1. one\n2. two"),
        ('<ol start="7"><li>seven</li><li>eight</li></ol>', "7. seven\n8. eight"),
        ("<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>", "• a\n  • b\n• c"),
        ("<ol><li><p>loose</p></li><li><p>list</p></li></ol>", "1. loose\n2. list"),
        ("intro<ul><li>x</li></ul>outro", "intro\n• x\noutro"),
        ("  lots   of\n\n  space  ", "lots of space"),
        ("<b>a </b>b", "<b>a</b> b"),
        ("a<b> b</b>", "a <b>b</b>"),
        ('<img src="mxc://a/b" alt=":wave:"> hi', ":wave: hi"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"),
        ("x<hr>y", "x\n\ny"),
    ],
)  # fmt: skip
def test_matrix_html_to_telegram(matrix: str, telegram: str) -> None:
    assert matrix_html_to_telegram(matrix) == telegram
    check_telegram(telegram)


def test_reply_fallback_is_removed() -> None:
    html = (
        '<mx-reply><blockquote><a href="https://matrix.to/#/!r:x/$e">In reply to</a> '
        '<a href="https://matrix.to/#/@u:x">@u:x</a><br>original</blockquote></mx-reply>'
        "the <em>answer</em>"
    )
    assert matrix_html_to_telegram(html) == "the <i>answer</i>"


def test_scripts_styles_and_comments_are_dropped() -> None:
    html = (
        "<script>alert('<b>x</b>')</script><style>b { color: red }</style>"
        "<!-- hidden --><head><title>t</title></head>a<template>t</template>b"
    )
    assert matrix_html_to_telegram(html) == "ab"


def test_links() -> None:
    assert matrix_html_to_telegram('<a href="https://e.org/?a=1&amp;b=&quot;2">x</a>') == (
        '<a href="https://e.org/?a=1&amp;b=&quot;2">x</a>'
    )
    assert (
        matrix_html_to_telegram('<a href="mailto:a@b.c">m</a>') == '<a href="mailto:a@b.c">m</a>'
    )
    assert matrix_html_to_telegram('<a href="tg://user?id=1">u</a>') == (
        '<a href="tg://user?id=1">u</a>'
    )
    for href in (
        "javascript:alert(1)",
        " JaVaScRiPt:alert(1)",
        "java&#x09;script:alert(1)",
        "data:text/html;base64,xx",
        "/relative",
        "mxc://server/media",
        "https://",
        "http://exa mple.com",
    ):
        assert matrix_html_to_telegram(f'<a href="{href}">text</a>') == "text"
    assert matrix_html_to_telegram("<a>no href</a>") == "no href"
    # A link inside a link is dropped; its text stays in the outer link.
    assert matrix_html_to_telegram('<a href="https://a/"><a href="https://b/">x</a>y</a>') == (
        '<a href="https://a/">xy</a>'
    )


def test_pre_and_code() -> None:
    html = (
        '<pre><code class="language-python">def f():\n    return 1 &lt; 2\n</code></pre>\n'
        "<p>after</p>"
    )
    assert matrix_html_to_telegram(html) == (
        '<pre><code class="language-python">def f():\n    return 1 &lt; 2</code></pre>\n\nafter'
    )
    assert matrix_html_to_telegram("<pre><code>x\n  y</code></pre>") == "<pre>x\n  y</pre>"
    assert matrix_html_to_telegram("<pre>a<br>b</pre>") == "<pre>a\nb</pre>"
    bad = '<pre><code class="language-x&quot; onclick=&quot;">z</code></pre>'
    assert matrix_html_to_telegram(bad) == "<pre>z</pre>"
    # Nothing nests inside code; code and pre do not nest inside other entities.
    assert matrix_html_to_telegram("<code><b>x</b></code>") == "<code>x</code>"
    assert matrix_html_to_telegram("<pre><b>x</b><a href='https://e/'>y</a></pre>") == (
        "<pre>xy</pre>"
    )
    assert matrix_html_to_telegram("<b><code>y</code></b>") == "<b>y</b>"
    assert matrix_html_to_telegram("<blockquote><code>y</code></blockquote>") == (
        "<blockquote><code>y</code></blockquote>"
    )


def test_malformed_nesting_is_balanced() -> None:
    assert matrix_html_to_telegram("<b><i>x</b>y</i>z") == "<b><i>x</i></b>yz"
    assert matrix_html_to_telegram("<b>unclosed") == "<b>unclosed</b>"
    assert matrix_html_to_telegram("stray</b></i>end") == "strayend"
    assert matrix_html_to_telegram("<b><b>twice</b></b>") == "<b>twice</b>"
    assert matrix_html_to_telegram("<blockquote>a<blockquote>b</blockquote></blockquote>") == (
        "<blockquote>a\nb</blockquote>"
    )
    assert matrix_html_to_telegram("<b></b><i> </i>x") == "x"
    assert matrix_html_to_telegram("<b") == "&lt;b"


def test_lone_surrogates_are_replaced() -> None:
    assert matrix_html_to_telegram("a\ud800b <b>\udfff</b>") == "a\ufffdb <b>\ufffd</b>"
    assert matrix_html_to_telegram("\ud83d\ude00") == "😀"
    assert split_telegram_html("x\udc00") == ["x\ufffd"]
    assert split_plain("x\udc00") == ["x\ufffd"]


def test_empty_results() -> None:
    assert matrix_html_to_telegram("") == ""
    assert matrix_html_to_telegram("<mx-reply>quoted</mx-reply>") == ""
    assert matrix_html_to_telegram("<p></p><br><div> </div>") == ""


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
fragments = st.one_of(
    hostile_text,
    st.sampled_from(
        ["<", ">", "&", "&amp", "&#0;", "&#xD800;", "&#x1F600;", "<!--", "-->", "<!DOCTYPE x>",
         "<![CDATA[x]]>", "<?php ?>", "</", "<b", "<a href='", "\n", "  ", "\x00", "\r\n"]
    ),
    st.builds(lambda t, a: f"<{t}{a}>", tags, attributes),
    st.builds(lambda t: f"</{t}>", tags),
    st.builds(lambda t, a: f"<{t}{a}/>", tags, attributes),
)  # fmt: skip
structured_html = st.recursive(
    hostile_text,
    lambda inner: st.one_of(
        st.builds(lambda t, a, c: f"<{t}{a}>{c}</{t}>", tags, attributes, inner),
        st.lists(inner, max_size=4).map("".join),
    ),
    max_leaves=20,
)
matrix_html = st.one_of(st.lists(fragments, max_size=30).map("".join), structured_html)


@SETTINGS
@given(matrix_html)
def test_matrix_html_to_telegram_always_gives_valid_telegram_html(html: str) -> None:
    check_telegram(matrix_html_to_telegram(html))


@SETTINGS
@given(structured_html)
def test_matrix_html_to_telegram_is_stable(html: str) -> None:
    # Converting Telegram HTML again keeps its visible text (blocks were already lines).
    out = matrix_html_to_telegram(html)
    again = matrix_html_to_telegram(out)
    check_telegram(again)
    assert squash(check_telegram(again)) == squash(check_telegram(out))


# --------------------------------------------------------------------------- splitting


def test_split_plain() -> None:
    assert split_plain("short") == ["short"]
    assert split_plain("") == []
    assert split_plain(" \n ") == []
    assert split_plain("aaaa bbbb cccc", 9) == ["aaaa bbbb", "cccc"]
    assert split_plain("aaaabbbbcccc", 5) == ["aaaab", "bbbcc", "cc"]
    with pytest.raises(ValueError):
        split_plain("abc", 1)


def test_split_plain_prefers_paragraphs_then_lines_then_spaces() -> None:
    text = "para one\n\npara two line\nmore words here"
    assert split_plain(text, 30) == ["para one", "para two line\nmore words here"]
    assert split_plain(text, 20) == ["para one", "para two line", "more words here"]
    # A paragraph break early in the window loses to a line break late in it.
    assert split_plain("a\n\nbbbbbbbbbbbbbbb\nccccc", 20) == ["a\n\nbbbbbbbbbbbbbbb", "ccccc"]


def test_split_plain_counts_utf16() -> None:
    chunks = split_plain("😀" * 5000)
    assert [len(c) for c in chunks] == [2048, 2048, 904]
    assert all(telegram_length(c) <= 4096 for c in chunks)
    assert split_plain("a" * 4096) == ["a" * 4096]
    assert split_plain("a" * 4097) == ["a" * 4096, "a"]


def test_split_html_reopens_tags() -> None:
    html = '<b>bold words <i>and italic</i> here</b> <a href="https://e.org/">a link text</a>'
    assert split_telegram_html(html, 14) == [
        "<b>bold words <i>and</i></b>",
        '<b><i>italic</i> here</b> <a href="https://e.org/">a</a>',
        '<a href="https://e.org/">link text</a>',
    ]


def test_split_html_never_cuts_an_entity() -> None:
    html = "&amp;&amp;&amp;&amp; &lt;&lt;&gt;&gt;"
    assert split_telegram_html(html, 4) == ["&amp;&amp;&amp;&amp;", "&lt;&lt;&gt;&gt;"]
    assert split_telegram_html("a &amp; b", 3) == ["a &amp;", "b"]
    assert split_telegram_html("&lt;&gt;&amp;&quot;&#39;&#x1F600;", 3) == [
        "&lt;&gt;&amp;",
        "\"'",
        "😀",
    ]


def test_split_html_keeps_pre_language() -> None:
    html = '<pre><code class="language-python">line one\nline two</code></pre>'
    assert split_telegram_html(html, 10) == [
        '<pre><code class="language-python">line one</code></pre>',
        '<pre><code class="language-python">line two</code></pre>',
    ]


def test_split_html_short_and_blank() -> None:
    assert split_telegram_html("<b>x</b> &amp; y") == ["<b>x</b> &amp; y"]
    assert split_telegram_html("") == []
    assert split_telegram_html("<b> </b>") == []
    # Tags Telegram does not know and unsafe links are dropped, text kept.
    assert split_telegram_html('<p>a</p><a href="javascript:x">b</a><br>c') == ["abc"]
    assert split_telegram_html('<span class="tg-spoiler">s</span><span>t</span>') == [
        "<tg-spoiler>s</tg-spoiler>t"
    ]


def test_split_long_message_at_4096() -> None:
    paragraph = "<b>Heading</b>\n" + "word &amp; " * 60 + "end."
    html = "\n\n".join([paragraph] * 20)
    chunks = split_telegram_html(html)
    assert len(chunks) > 1
    for chunk in chunks:
        assert telegram_length(check_telegram(chunk)) <= 4096
        assert chunk.startswith("<b>Heading</b>")
        assert chunk.endswith("end.")


split_text = st.lists(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from([" ", " ", "\n", "\n\n", "&", "<", "😀", "👍🏽", "a"]),
    ),
    max_size=200,
).map("".join)
telegram_html = st.one_of(
    matrix_html.map(matrix_html_to_telegram),
    split_text.map(lambda t: t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")),
)


@SETTINGS
@given(telegram_html, st.integers(2, 60))
def test_split_telegram_html_properties(html: str, limit: int) -> None:
    visible = check_telegram(html)
    chunks = split_telegram_html(html, limit)
    texts = [check_telegram(chunk) for chunk in chunks]
    for text in texts:
        assert 0 < telegram_length(text) <= limit
        assert text.strip()
    assert squash("".join(texts)) == squash(visible)


@SETTINGS
@given(split_text, st.integers(2, 60))
def test_split_plain_properties(text: str, limit: int) -> None:
    chunks = split_plain(text, limit)
    assert all(0 < telegram_length(chunk) <= limit and chunk.strip() for chunk in chunks)
    assert squash("".join(chunks)) == squash(text)
    # Only whitespace is lost, and only at the cuts: the chunks appear in order in the text.
    position = 0
    for chunk in chunks:
        found = text.find(chunk, position)
        assert found >= 0
        assert not text[position:found].strip()
        position = found + len(chunk)


def tdlib_parse_html() -> Any:
    """The simulator's port of TDLib's ``parse_html`` (Telegram's own HTML parser)."""
    updates = pytest.importorskip("tests.connectors.telegram.updates")
    parse_html = getattr(updates, "parse_html", None)
    if parse_html is None:
        pytest.skip("the simulator has no parse_html")
    return parse_html


@SETTINGS
@given(matrix_html, st.integers(2, 60))
def test_telegram_accepts_the_output(html: str, limit: int) -> None:
    parse_html = tdlib_parse_html()
    out = matrix_html_to_telegram(html)
    text, _ = parse_html(out)
    assert text == check_telegram(out)
    for chunk in split_telegram_html(out, limit):
        text, _ = parse_html(chunk)
        assert 0 < telegram_length(text) <= limit
