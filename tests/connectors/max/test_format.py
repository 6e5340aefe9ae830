"""Text between Matrix and MAX: markup ranges to Matrix HTML, Matrix HTML to MAX's subset,
and long text in parts."""

from __future__ import annotations

import pytest

from bridge.connectors.max.format import markup_to_html, matrix_to_max, split_text


@pytest.mark.parametrize(
    ("text", "markup", "html"),
    [
        ("bold", [{"type": "strong", "from": 0, "length": 4}], "<strong>bold</strong>"),
        # UTF-16 offsets: the emoji counts twice.
        ("😀 x", [{"type": "emphasized", "from": 3, "length": 1}], "😀 <em>x</em>"),
        # Overlapping ranges are closed and reopened so that they nest.
        (
            "abcd",
            [
                {"type": "strong", "from": 0, "length": 3},
                {"type": "underline", "from": 2, "length": 2},
            ],
            "<strong>ab<u>c</u></strong><u>d</u>",
        ),  # fmt: skip
        ("a<b", [{"type": "monospaced", "from": 0, "length": 3}], "<code>a&lt;b</code>"),
        ("go", [{"type": "link", "from": 0, "length": 2, "url": "javascript:alert(1)"}], None),
        ("go", [{"type": "strong", "from": 1, "length": 5}], None),  # past the end
        ("😀", [{"type": "strong", "from": 1, "length": 1}], None),  # inside a character
        ("a\nb", [{"type": "strong", "from": 0, "length": 3}], "<strong>a<br>b</strong>"),
    ],
)
def test_markup_to_html(text: str, markup: list[dict[str, object]], html: str | None) -> None:
    assert markup_to_html(text, markup) == html


def test_matrix_html_to_max() -> None:
    plain, html = matrix_to_max(
        "fallback",
        "<mx-reply>quoted</mx-reply><h1>Title</h1><p><i>it</i> &amp; <s>old</s></p>"
        "<ol><li>one</li><li>two</li></ol><a href='https://matrix.to/#/@a:b'>Anna</a>",
    )
    assert plain == "Title\n\nit & old\n\n1. one\n2. two\nAnna"
    assert html == "<b>Title</b>\n\n<i>it</i> &amp; <s>old</s>\n\n1. one\n2. two\nAnna"


def test_plain_text_passes_unchanged() -> None:
    assert matrix_to_max("a <b> & c", None) == ("a <b> & c", None)


def test_split_prefers_line_breaks_and_spaces() -> None:
    text = "x" * 3500 + "\n" + "y" * 1000
    assert split_text(text, 4000) == ["x" * 3500, "y" * 1000]
    assert split_text("z" * 9000, 4000) == ["z" * 4000, "z" * 4000, "z" * 1000]
