"""Splitting plain text and Telegram HTML to Telegram's length limits."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.connectors.telegram.format import (
    matrix_html_to_telegram,
    split_plain,
    split_telegram_html,
    telegram_length,
)

from .format_support import SETTINGS, check_telegram, matrix_html, squash

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
