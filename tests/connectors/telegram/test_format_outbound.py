"""Matrix HTML as Telegram's HTML parse mode."""

from __future__ import annotations

import pytest
from hypothesis import given

from bridge.connectors.telegram.format import (
    matrix_html_to_telegram,
    split_plain,
    split_telegram_html,
)

from .format_support import SETTINGS, check_telegram, matrix_html, squash, structured_html

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
