"""Telegram text with entities as Matrix HTML, and Telegram's UTF-16 lengths."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.types import MessageEntity, User
from hypothesis import given
from hypothesis import strategies as st

from bridge.connectors.telegram.format import (
    entities_to_html,
    telegram_length,
)

from .format_support import SETTINGS, entity, hostile_text, matrix_text, squash

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
