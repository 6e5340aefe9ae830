"""Matrix HTML as WhatsApp markup, and the round trip back."""

from __future__ import annotations

import html as htmllib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.connectors.whatsapp.format import matrix_to_whatsapp
from bridge.connectors.whatsapp.markup import whatsapp_to_matrix

from ..html_support import html_strategies
from .format_support import MARKERS, SETTINGS, hostile_text, keep, matrix_text

# --------------------------------------------------------------------------- Matrix → WhatsApp


@pytest.mark.parametrize(
    ("html", "whatsapp"),
    [
        ("plain", "plain"),
        ("<b>b</b>, <strong>s</strong>, <i>i</i>, <em>e</em>", "*b*, *s*, _i_, _e_"),
        ("<s>s</s>, <del>d</del>, <strike>k</strike>", "~s~, ~d~, ~k~"),
        ("<code>x &lt; y</code>", "`x < y`"),
        ("<tt>t</tt>, <kbd>k</kbd>, <samp>s</samp>", "`t`, `k`, `s`"),
        ("<u>u</u> <ins>n</ins> <sup>2</sup>", "u n 2"),
        ("<b><i>x</i></b>", "*_x_*"),
        ("<i><b>x</b></i>", "*_x_*"),  # the same text: bold goes outside
        ("<b><i><s><code>x</code></s></i></b>", "*_~`x`~_*"),
        ("<b>bold <i>both</i></b>", "*bold _both_*"),
        ("a<b> x </b>b", "a *x* b"),
        ("<b> x </b>", "*x*"),
        ("<b>a </b>b", "*a* b"),
        ("a<b> b</b>", "a *b*"),
        ("<b>a</b><b>b</b>", "*ab*"),
        ("<b>a</b> <b>b</b>", "*a b*"),
        ("<b><i>a</i></b><i> b</i>", "_*a* b_"),
        ("<b>Price</b>: 5", "*Price*: 5"),
        ("(<i>aside</i>)", "(_aside_)"),
        ("<b></b>x<i> </i>y<s>  </s>", "x y"),
        ("<b><i></i></b>x", "x"),
        ("a &amp; b &lt;c&gt; d > e", "a & b <c> d > e"),
        ("  lots   of\n\n  space  ", "lots of space"),
        ("a<br>b<br/>c<br><br>d", "a\nb\nc\n\nd"),
        ("<p>one</p>\n<p>two</p>", "one\n\ntwo"),
        ("<div>one</div><div>two</div>", "one\ntwo"),
        ("<h1>Title</h1><p>text</p>", "*Title*\n\ntext"),
        ("<h3>A</h3>b", "*A*\nb"),
        ("<b>a<br>b</b>", "*a*\n*b*"),
        ("x<hr>y", "x\n\ny"),
        ('<img src="mxc://a/b" alt=":wave:"> hi', ":wave: hi"),
        ('<img src="mxc://a/b">hi', "hi"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"),
        ('<span data-mx-spoiler="why">secret</span>', "secret"),
        ('<span data-mx-color="#f00">red</span> <font color="red">too</font>', "red too"),
    ],
)
def test_matrix_to_whatsapp(html: str, whatsapp: str) -> None:
    assert matrix_to_whatsapp("fallback", html) == whatsapp


def test_plain_text_is_unchanged() -> None:
    for text in ("", "a *b* _c_", "  spaced\n\nlines  ", "<b>not html</b>"):
        assert matrix_to_whatsapp(text, None) == text


def test_empty_rendering_falls_back_to_the_text() -> None:
    assert matrix_to_whatsapp("body", "") == "body"
    assert matrix_to_whatsapp("body", "<mx-reply>only a fallback</mx-reply>") == "body"
    assert matrix_to_whatsapp("body", '<img src="mxc://a/b">') == "body"


def test_markers_stay_out_of_words() -> None:
    # WhatsApp would show the asterisks of "x*y*z": the formatting is dropped instead.
    assert matrix_to_whatsapp("", "x<b>y</b>z") == "xyz"
    assert matrix_to_whatsapp("", "x<b>y</b> z") == "xy z"
    assert matrix_to_whatsapp("", "un<i>believ</i>able") == "unbelievable"
    assert matrix_to_whatsapp("", "x<b><i>y</i></b>z") == "xyz"
    # Punctuation and emoji are fine neighbours.
    assert matrix_to_whatsapp("", "“<b>q</b>”, 😀<i>e</i>😀") == "“*q*”, 😀_e_😀"
    assert matrix_to_whatsapp("", "end <b>bold</b>.") == "end *bold*."


def test_literal_markers_are_left_alone() -> None:
    assert matrix_to_whatsapp("", "<p>use *args and snake_case, 2*3~4</p>") == (
        "use *args and snake_case, 2*3~4"
    )
    # Formatting that would run into the same literal character is dropped, not made ambiguous.
    assert matrix_to_whatsapp("", "<b>*x</b> <i>y_</i> <s>~z~</s>") == "*x y_ ~z~"
    assert matrix_to_whatsapp("", "a*<b>b</b>") == "a*b"
    # Other markers may touch.
    assert matrix_to_whatsapp("", "<b>_x_</b>") == "*_x_*"
    # Code is literal in WhatsApp.
    assert matrix_to_whatsapp("", "<code>*not bold*</code>") == "`*not bold*`"


def test_inline_code() -> None:
    assert matrix_to_whatsapp("", "run <code>ls -la</code> now") == "run `ls -la` now"
    assert matrix_to_whatsapp("", "a <code>x`y</code> b") == "a ```x`y``` b"
    assert matrix_to_whatsapp("", "a <code>`x</code> b") == "a `x b"
    assert matrix_to_whatsapp("", "a <code>x```y</code> b") == "a x```y b"
    # Nothing is formatted inside code, and code goes inside other formatting.
    assert matrix_to_whatsapp("", "<code>a <b>b</b></code>") == "`a b`"
    assert matrix_to_whatsapp("", "<b>see <code>x</code></b>") == "*see `x`*"
    assert matrix_to_whatsapp("", "<code>a</code><code>b</code>") == "`ab`"


def test_code_blocks() -> None:
    html = '<p>run:</p><pre><code class="language-sh">x = 1\n  y *= 2 &lt;3\n</code></pre>done'
    assert matrix_to_whatsapp("", html) == "run:\n\n```x = 1\n  y *= 2 <3```\ndone"
    assert matrix_to_whatsapp("", "<pre>\n\none\n\n</pre>") == "```one```"
    assert matrix_to_whatsapp("", "<pre>a<br>b<b>c</b></pre>") == "```a\nbc```"
    assert matrix_to_whatsapp("", "a<pre>   </pre>b") == "a\nb"
    # WhatsApp cannot quote ``` inside a block: it goes out without fences.
    assert matrix_to_whatsapp("", "<pre>a ``` b</pre>") == "a ``` b"
    assert matrix_to_whatsapp("", "<blockquote><pre>a\nb</pre></blockquote>") == "> ```a\n> b```"
    assert matrix_to_whatsapp("", "<ul><li><pre>a\nb</pre></li></ul>") == "* ```a\n  b```"


def test_blockquotes() -> None:
    assert matrix_to_whatsapp("", "<blockquote>q</blockquote>after") == "> q\nafter"
    assert matrix_to_whatsapp("", "before<blockquote>q</blockquote>") == "before\n> q"
    assert matrix_to_whatsapp("", "<blockquote>a<br>b</blockquote>") == "> a\n> b"
    # A blank line would end the quote: paragraphs inside one go line by line.
    html = "<blockquote><p>a</p><p><b>b</b></p></blockquote><p>after</p>"
    assert matrix_to_whatsapp("", html) == "> a\n> *b*\n\nafter"
    assert matrix_to_whatsapp("", "<blockquote><blockquote>x</blockquote></blockquote>") == (
        "> > x"
    )


def test_lists() -> None:
    assert matrix_to_whatsapp("", "<ul>\n<li>one</li>\n<li>two</li>\n</ul>") == "* one\n* two"
    assert matrix_to_whatsapp("", "<ol><li>one</li><li>two</li></ol>") == "1. one\n2. two"
    assert matrix_to_whatsapp("", '<ol start="7"><li>a</li><li>b</li></ol>') == "7. a\n8. b"
    assert matrix_to_whatsapp("", '<ol start="x"><li>a</li></ol>') == "1. a"
    assert matrix_to_whatsapp("", '<ol start="-4"><li>a</li></ol>') == "0. a"
    html = "<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>"
    assert matrix_to_whatsapp("", html) == "* a\n  * b\n* c"
    html = "<ol><li><p>loose</p></li><li><p>list</p></li></ol>"
    assert matrix_to_whatsapp("", html) == "1. loose\n2. list"
    assert matrix_to_whatsapp("", "intro<ul><li>x</li></ul>outro") == "intro\n* x\noutro"
    assert matrix_to_whatsapp("", "<ol><li>a<br>b</li></ol>") == "1. a\n   b"
    assert matrix_to_whatsapp("", "<ul><li><b>bold</b> item</li></ul>") == "* *bold* item"
    assert matrix_to_whatsapp("", "<ul><li></li><li>x</li></ul>") == "* x"
    assert matrix_to_whatsapp("", "<li>stray</li>") == "* stray"


def test_links() -> None:
    assert matrix_to_whatsapp("", '<a href="https://e.org/x">the site</a>') == (
        "the site (https://e.org/x)"
    )
    assert matrix_to_whatsapp("", '<a href="https://e.org/x">https://e.org/x</a>') == (
        "https://e.org/x"
    )
    assert matrix_to_whatsapp("", '<a href="https://e.org/">e.org</a>') == "e.org"
    assert matrix_to_whatsapp("", '<a href="http://e.org">see</a>.') == "see (http://e.org)."
    assert matrix_to_whatsapp("", '<a href="https://e.org/?a=1&amp;b=2">q</a>') == (
        "q (https://e.org/?a=1&b=2)"
    )
    assert matrix_to_whatsapp("", '<a href="mailto:a@b.c">a@b.c</a>') == "a@b.c"
    assert matrix_to_whatsapp("", '<a href="mailto:a@b.c?subject=x">mail</a>') == ("mail (a@b.c)")
    assert matrix_to_whatsapp("", '<a href="tel:+4930123">call</a>') == "call (+4930123)"
    assert matrix_to_whatsapp("", '<a href="https://e.org"></a>') == "https://e.org"
    # The address is not formatted with the text: markers in it could end the formatting.
    assert matrix_to_whatsapp("", '<b><a href="https://e.org/a_.html">see</a> more</b>') == (
        "*see* (https://e.org/a_.html) *more*"
    )


@pytest.mark.parametrize(
    "href",
    [
        "https://matrix.to/#/@alice:example.org",
        "https://matrix.to/#/!room:example.org/$event",
        "javascript:alert(1)",
        "data:text/html,x",
        "/relative",
        "//e.org",
        "https://",
        "http://exa mple.org",
        "mailto:",
        "",
    ],
)
def test_links_without_a_useful_address_keep_their_text(href: str) -> None:
    assert matrix_to_whatsapp("", f'<a href="{htmllib.escape(href)}">Alice</a>!') == "Alice!"


def test_reply_fallback_is_removed() -> None:
    html = (
        '<mx-reply><blockquote><a href="https://matrix.to/#/!r:x/$e">In reply to</a> '
        '<a href="https://matrix.to/#/@u:x">@u:x</a><br>original</blockquote></mx-reply>'
        "the <em>answer</em>"
    )
    assert matrix_to_whatsapp("> <@u:x> original\n\nthe answer", html) == "the _answer_"


def test_scripts_styles_and_comments_are_dropped() -> None:
    html = (
        "<script>alert('<b>x</b>')</script><style>b { color: red }</style>"
        "<!-- hidden --><head><title>t</title></head>a<template>t</template>b"
        "<noscript>n</noscript>"
    )
    assert matrix_to_whatsapp("", html) == "ab"


@pytest.mark.parametrize(
    ("html", "whatsapp"),
    [
        ("<b>unclosed <i>tags", "*unclosed _tags_*"),
        ("<b>a <i>b</b> c</i> d", "*a _b_* c d"),
        ("<b>a<i>b</b>c</i>d", "abcd"),  # inside a word: no formatting
        ("</b></i>stray</p></li></ul>", "stray"),
        ("<p><p><p>x", "x"),
        ("<b/>x<br/>y", "x\ny"),
        ("<pre>never closed", "```never closed```"),
        ("<a href='https://e.org'>never closed", "never closed (https://e.org)"),
        ("<ul><li>a<li>b", "* a\n  * b"),  # an unclosed item holds the next
        ("<mx-reply>never closed", "fallback"),
        ("<script>never closed", "fallback"),
        ("a<<b>b</b>", "a<*b*"),
        ("<!DOCTYPE html><html><body>x</body></html>", "x"),
        ("<![CDATA[x]]>y", "y"),
        ("&#0;&#x1F600;&bogus;&amp", "\ufffd😀&bogus;&"),
        ("a\x00b", "ab"),
        ("\ud83d\ude00 \ud800 x", "😀 \ufffd x"),
    ],
)
def test_hostile_html(html: str, whatsapp: str) -> None:
    assert matrix_to_whatsapp("fallback", html) == whatsapp


def test_deep_nesting_is_fast_and_flat() -> None:
    assert matrix_to_whatsapp("", "<b>" * 5000 + "x") == "*x*"
    assert matrix_to_whatsapp("", "<blockquote>" * 2000 + "x").endswith("> x")
    assert matrix_to_whatsapp("", "<i>a</i>x" * 5000) == "ax" * 5000


tags = st.sampled_from(
    [
        "b", "strong", "i", "em", "u", "s", "del", "strike", "code", "pre", "blockquote", "p",
        "div", "span", "ul", "ol", "li", "h1", "h4", "table", "tr", "td", "a", "font",
        "mx-reply", "script", "style", "x-unknown", "img", "br", "hr", "title", "kbd",
    ]
)  # fmt: skip
attributes = st.sampled_from(
    [
        "", ' href="https://e.org/?a=1&amp;b=2"', ' href="javascript:alert(1)"', " href=x",
        ' href="https://matrix.to/#/@u:x"', ' href="mailto:a@b.c"', " data-mx-spoiler",
        ' class="language-py"', ' onclick="evil()"', ' alt="<b>alt</b>"', ' start="3"',
        ' start="x"', ' start="99999999999999999999"',
    ]
)  # fmt: skip
structured_html, matrix_html = html_strategies(hostile_text, tags, attributes, ["<![if x]>"])


@SETTINGS
@given(hostile_text, matrix_html)
def test_matrix_to_whatsapp_never_raises(text: str, html: str) -> None:
    result = matrix_to_whatsapp(text, html)
    assert isinstance(result, str)
    if result != text:  # not the fallback
        assert result.strip()
        result.encode("utf-8")  # no lone surrogates: WhatsApp's JSON would reject them
        for line in result.split("\n"):
            assert line == line.rstrip()


# Text whose characters say where they came from, and trees of Matrix HTML built from it with
# every leaf escaped: whatever the tags, the leaves' text must come out in order, and the only
# "<" in the output are the leaves' own.
leaf_text = st.lists(
    st.one_of(
        st.characters(codec="utf-8", blacklist_characters="\x00"),
        st.sampled_from(["<", ">", "&", "<b>", "&amp;", "*", "_", "~", "`", " ", "\n"]),
    ),
    max_size=12,
).map("".join)
leaf_tags = st.sampled_from(
    ["b", "strong", "i", "em", "s", "del", "code", "u", "span", "p", "div", "br", "blockquote",
     "ul", "li", "h2", "pre", "td", "a"]
)  # fmt: skip


@st.composite
def escaped_tree(draw: st.DrawFn, depth: int = 0) -> tuple[str, str]:
    """(HTML, the text of its leaves)."""
    if depth >= 4 or draw(st.booleans()):
        leaf = draw(leaf_text)
        return htmllib.escape(leaf), leaf
    parts = [draw(escaped_tree(depth + 1)) for _ in range(draw(st.integers(0, 4)))]
    inner, text = "".join(p[0] for p in parts), "".join(p[1] for p in parts)
    tag = draw(leaf_tags)
    if tag == "br":
        return f"{inner}<br>", text
    if tag == "a":  # a mention: only its text is shown
        return f'<a href="https://matrix.to/#/@u:e.org">{inner}</a>', text
    return f"<{tag}>{inner}</{tag}>", text


@SETTINGS
@given(escaped_tree())
def test_matrix_to_whatsapp_keeps_the_text_and_drops_the_tags(tree: tuple[str, str]) -> None:
    html, text = tree
    result = matrix_to_whatsapp("", html)
    # Every visible character survives, in order; only markers, bullets and quote signs and
    # whitespace are added.
    assert keep(result, MARKERS + ">") == keep(text, MARKERS + ">")
    # No tag survives: every "<" is one of the text's own.
    assert result.count("<") == text.count("<")


# Round trip: HTML as Element writes it, with text WhatsApp markup cannot misread. Every marker
# matrix_to_whatsapp writes must be read back as formatting by whatsapp_to_matrix (which follows
# WhatsApp's rules), so no marker shows, and the text is unchanged.
safe_words = st.lists(
    st.sampled_from(list("abcXYZ019 ,!?()é😀") + ["  ", "\u00e4"]), min_size=1, max_size=8
).map("".join)
styles = st.sampled_from(["b", "i", "del", "code", "span"])


@st.composite
def inline_html(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        if depth < 3 and draw(st.booleans()):
            tag = draw(styles)
            parts.append(f"<{tag}>{draw(inline_html(depth + 1))}</{tag}>")
        else:
            parts.append(draw(safe_words))
    return "".join(parts)


@st.composite
def document_html(draw: st.DrawFn) -> str:
    blocks = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["p", "br", "blockquote", "ul", "h3"]))
        if kind == "ul":
            items = [f"<li>{draw(inline_html())}</li>" for _ in range(draw(st.integers(1, 3)))]
            blocks.append(f"<ul>{''.join(items)}</ul>")
        elif kind == "br":
            blocks.append(f"{draw(inline_html())}<br>{draw(inline_html())}")
        else:
            blocks.append(f"<{kind}>{draw(inline_html())}</{kind}>")
    return "".join(blocks)


@SETTINGS
@given(document_html())
def test_round_trip_every_marker_is_honoured(html: str) -> None:
    whatsapp = matrix_to_whatsapp("", html)
    back = whatsapp_to_matrix(whatsapp)
    visible = whatsapp if back is None else matrix_text(back)
    source = re.sub(r"<[^>]*>", " ", html)
    assert keep(visible) == keep(source), (html, whatsapp, back)
