"""Splitting WhatsApp text to its length limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.connectors.whatsapp.capabilities import TEXT_LIMIT as MAX_MESSAGE_LENGTH
from bridge.connectors.whatsapp.split import split_text

from .format_support import SETTINGS, keep

# --------------------------------------------------------------------------- split_text


def test_split_short_and_blank() -> None:
    assert split_text("hello") == ["hello"]
    assert split_text("  hello\n") == ["  hello\n"]
    assert split_text("") == []
    assert split_text(" \n\t ") == []
    assert split_text("x" * MAX_MESSAGE_LENGTH) == ["x" * MAX_MESSAGE_LENGTH]
    with pytest.raises(ValueError):
        split_text("abc", 0)


def test_split_prefers_paragraphs_then_lines_then_spaces() -> None:
    assert split_text("aaaa bbbb\n\ncccc dddd", 14) == ["aaaa bbbb", "cccc dddd"]
    assert split_text("aaaa\nbbbb cccc", 12) == ["aaaa", "bbbb cccc"]
    assert split_text("aaa bbb ccc ddd", 9) == ["aaa bbb", "ccc ddd"]
    assert split_text("aaaa bbbb cccc", 5) == ["aaaa", "bbbb", "cccc"]
    assert split_text("abcdefghij", 4) == ["abcd", "efgh", "ij"]
    # A paragraph break that leaves the chunk almost empty loses to a later line break.
    assert split_text("a\n\nbbbbbbbbbb\ncccccc", 16) == ["a\n\nbbbbbbbbbb", "cccccc"]


def test_split_long_message_at_4096() -> None:
    paragraph = ("word " * 150).strip()
    text = "\n\n".join([paragraph] * 20)
    chunks = split_text(text)
    assert all(len(chunk) <= 4096 for chunk in chunks)
    assert all(part == paragraph for chunk in chunks for part in chunk.split("\n\n"))
    assert "\n\n".join(chunks) == text


def test_split_keeps_code_blocks_whole() -> None:
    block = "```" + "\n".join(f"line {n}" for n in range(5)) + "```"
    text = "intro words here\n" + block + "\nafter"
    for limit in range(len(block), len(text)):
        chunks = split_text(text, limit)
        assert any(block in chunk for chunk in chunks), (limit, chunks)
    # Inside a block only when the block cannot fit.
    chunks = split_text("```aaaa bbbb cccc```", 10)
    assert chunks == ["```aaaa", "bbbb", "cccc```"]


def test_split_never_cuts_a_character() -> None:
    assert split_text("😀" * 5, 2) == ["😀😀", "😀😀", "😀"]
    pair = "\ud83d\ude00"
    assert split_text("a" + pair * 3, 2) == ["a", pair, pair, pair]
    assert split_text("ab👍🏽cd", 3) == ["ab", "👍🏽c", "d"]
    assert split_text("abe\u0301e\u0301", 3) == ["ab", "e\u0301", "e\u0301"]
    family = "👨\u200d👩\u200d👧"
    assert split_text("a" + family, 5) == ["a", family]
    assert split_text("🇩🇪🇫🇷", 3) == ["🇩🇪", "🇫🇷"]
    assert split_text("x🇩🇪🇫🇷", 4) == ["x🇩🇪", "🇫🇷"]


split_input = st.lists(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(
            [" ", " ", "\n", "\n\n", "a", "bb", "ccc", "```", "😀", "👍🏽", "e\u0301",
             "\ud83d\ude00", "\u00a0"]
        ),
    ),
    max_size=60,
).map("".join)  # fmt: skip


def is_pair(text: str, position: int) -> bool:
    return (
        0 < position < len(text)
        and "\ud800" <= text[position - 1] <= "\udbff"
        and "\udc00" <= text[position] <= "\udfff"
    )


@SETTINGS
@given(split_input, st.integers(1, 30))
def test_split_text_properties(text: str, limit: int) -> None:
    chunks = split_text(text, limit)
    assert all(0 < len(chunk) <= limit and chunk.strip() for chunk in chunks)
    if len(text) <= limit:
        assert chunks == ([text] if text.strip() else [])
    # The chunks are the text in order; only whitespace is dropped, and only at the cuts.
    position = 0
    for chunk in chunks:
        found = text.find(chunk, position)
        assert found >= 0 and not text[position:found].strip(), (text, chunks)
        if limit > 1:
            assert not is_pair(text, found) and not is_pair(text, found + len(chunk))
        position = found + len(chunk)
    assert not text[position:].strip()
    assert "".join(keep(chunk) for chunk in chunks) == keep(text)
