"""WhatsApp markup as Matrix HTML."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.connectors.whatsapp.markup import whatsapp_to_matrix

from .format_support import MARKERS, SETTINGS, keep, matrix_text

# --------------------------------------------------------------------------- WhatsApp → Matrix


@pytest.mark.parametrize(
    ("whatsapp", "html"),
    [
        ("*bold*", "<strong>bold</strong>"),
        ("_italic_", "<em>italic</em>"),
        ("~strike~", "<del>strike</del>"),
        ("`code`", "<code>code</code>"),
        ("```mono```", "<code>mono</code>"),
        ("a *b c* d", "a <strong>b c</strong> d"),
        ("*_both_*", "<strong><em>both</em></strong>"),
        ("_*both*_", "<em><strong>both</strong></em>"),
        ("*bold _it_ ~st~*", "<strong>bold <em>it</em> <del>st</del></strong>"),
        ("(*a*), [_b_]! ~c~.", "(<strong>a</strong>), [<em>b</em>]! <del>c</del>."),
        ("“*q*” 😀_e_😀", "“<strong>q</strong>” 😀<em>e</em>😀"),
        ('*a* & <b> "q"', "<strong>a</strong> &amp; &lt;b&gt; &quot;q&quot;"),
        ("*a*\nb\n\nc", "<strong>a</strong><br>b<br><br>c"),
        ("*a *b* c*", "<strong>a *b</strong> c*"),
        ("*a* *b*", "<strong>a</strong> <strong>b</strong>"),
        ("`*not bold*` *bold*", "<code>*not bold*</code> <strong>bold</strong>"),
        ("```*x* _y_```", "<code>*x* _y_</code>"),
        ("*see `x`*", "<strong>see <code>x</code></strong>"),
        ("x ```a``` y", "x <code>a</code> y"),
        ("```\none line\n```", "<code>one line</code>"),
        ("_see https://e.org/a_b now_", "<em>see https://e.org/a_b now</em>"),
        ("*https://e.org*", "<strong>https://e.org</strong>"),
        ("_www.e.org/_x_", "<em>www.e.org/_x</em>"),
    ],
)
def test_whatsapp_to_matrix(whatsapp: str, html: str) -> None:
    assert whatsapp_to_matrix(whatsapp) == html
    matrix_text(html)


@pytest.mark.parametrize(
    "whatsapp",
    [
        "",
        "plain text",
        'two\nlines & <tags> "quoted"',
        "a*b*c",  # markers inside a word
        "*a*b",
        "a_b_ c",
        "snake_case_name and 2*3*4",
        "*a *",  # closes after a space
        "**",
        "__ ~~ `` ``````",
        "*bold\nnext*",  # no formatting across lines
        "_a\nb_ ~c\nd~ `e\nf`",
        "```unclosed",
        "a```b```c",
        "```   ```",
        "https://e.org/_x_ and https://e.org/*y*",
        ">no space",
        "-no space",
        "1.no space",
        "01. leading zero",
        "*",
        "`",
    ],
)
def test_no_markup_gives_none(whatsapp: str) -> None:
    assert whatsapp_to_matrix(whatsapp) is None


def test_code_blocks_inbound() -> None:
    assert whatsapp_to_matrix("```line 1\n  <line> 2```") == (
        "<pre><code>line 1\n  &lt;line&gt; 2</code></pre>"
    )
    assert whatsapp_to_matrix("```\nx = 1\ny = 2\n```") == "<pre><code>x = 1\ny = 2</code></pre>"
    # The line break on either side belongs to the block.
    assert whatsapp_to_matrix("see:\n```a\nb```\nthanks") == (
        "see:<pre><code>a\nb</code></pre>thanks"
    )
    assert whatsapp_to_matrix("see:\n\n```a\nb```\n\nthanks") == (
        "see:<br><pre><code>a\nb</code></pre><br>thanks"
    )
    assert whatsapp_to_matrix("x ```a\nb``` y") == "x <pre><code>a\nb</code></pre> y"
    # Nothing inside is formatted, not even across lines.
    assert whatsapp_to_matrix("```*a\n_b_*```") == "<pre><code>*a\n_b_*</code></pre>"


def test_quotes_and_lists_inbound() -> None:
    assert whatsapp_to_matrix("> quoted *text*\n> more\nafter") == (
        "<blockquote>quoted <strong>text</strong><br>more</blockquote>after"
    )
    assert whatsapp_to_matrix("before\n> q") == "before<blockquote>q</blockquote>"
    assert whatsapp_to_matrix("> q\n\nafter") == "<blockquote>q</blockquote><br>after"
    assert whatsapp_to_matrix("> a\n>\n> b") == (
        "<blockquote>a</blockquote>&gt;<blockquote>b</blockquote>"
    )
    assert whatsapp_to_matrix("* one\n- _two_") == "<ul><li>one</li><li><em>two</em></li></ul>"
    assert whatsapp_to_matrix("1. one\n2. two") == "<ol><li>one</li><li>two</li></ol>"
    assert whatsapp_to_matrix("3. three\n4. four\n7. seven") == (
        '<ol start="3"><li>three</li><li>four</li></ol><ol start="7"><li>seven</li></ol>'
    )
    assert whatsapp_to_matrix("0. zero") == '<ol start="0"><li>zero</li></ol>'
    assert whatsapp_to_matrix("* a\n1. b\n> c\nd") == (
        "<ul><li>a</li></ul><ol><li>b</li></ol><blockquote>c</blockquote>d"
    )
    assert whatsapp_to_matrix("* *bold* item") == "<ul><li><strong>bold</strong> item</li></ul>"
    assert whatsapp_to_matrix("* `code`") == "<ul><li><code>code</code></li></ul>"
    assert whatsapp_to_matrix("- ```code```") == "<ul><li><code>code</code></li></ul>"


def test_inbound_is_fast_on_hostile_text() -> None:
    for text in ("*a" * 2000, "```,```a" * 500, "*_~`" * 1000, "_a " * 1300 + "_", "*" * 4096):
        result = whatsapp_to_matrix(text)
        if result is not None:
            matrix_text(result)


whatsapp_text = st.lists(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(
            ["*", "_", "~", "`", "```", "> ", "* ", "- ", "1. ", "2. ", "7. ", " ", "\n", "\n",
             "a", "b", "<", "&", '"', ".", ",", "😀", "https://e.org/", "www.e.org", "\r\n"]
        ),
    ),
    max_size=50,
).map("".join)  # fmt: skip


@SETTINGS
@given(whatsapp_text)
def test_whatsapp_to_matrix_is_well_formed_and_keeps_the_text(text: str) -> None:
    html = whatsapp_to_matrix(text)
    if html is None:
        return
    visible = matrix_text(html)
    # Everything but markers and whitespace comes through in order, nothing is invented.
    assert keep(visible, MARKERS + ">-") == keep(text, MARKERS + ">-")
    for marker in MARKERS + ">-":
        assert visible.count(marker) <= text.count(marker)


@SETTINGS
@given(st.text(st.characters(codec="utf-8", blacklist_characters=MARKERS + ">-")))
def test_text_without_markers_needs_no_html(text: str) -> None:
    if not re.search(r"^\s*[0-9]+\. ", text.replace("\r", "\n"), re.M):
        assert whatsapp_to_matrix(text) is None
