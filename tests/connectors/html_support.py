"""What the formatter tests of several connectors share: hypothesis strategies for hostile text
and Matrix HTML, and a strict base for checkers of what a formatter writes."""

from __future__ import annotations

from collections.abc import Sequence
from html.parser import HTMLParser

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def hostile_text(extra: Sequence[str] = ()) -> st.SearchStrategy[str]:
    """Short texts of any characters, markup-like pieces, lone surrogates and NULs (and
    ``extra`` pieces that matter to one network)."""
    pieces = ["<", ">", "&", '"', "'", "\n", "😀", "👍🏽", "&amp;", "<script>", "\ud800", "\x00"]
    return st.lists(
        st.one_of(st.characters(), st.sampled_from([*pieces, *extra])), max_size=40
    ).map("".join)


SPECIALS = (
    "<", ">", "&", "&amp", "&#0;", "&#xD800;", "&#x1F600;", "<!--", "-->", "<!DOCTYPE x>",
    "<![CDATA[x]]>", "<?php ?>", "</", "<b", "<a href='", "\n", "  ", "\x00",
)  # fmt: skip
"""Loose pieces of markup: half tags, comments, declarations, odd references."""


def html_strategies(
    text: st.SearchStrategy[str],
    tags: st.SearchStrategy[str],
    attributes: st.SearchStrategy[str],
    specials: Sequence[str] = (),
) -> tuple[st.SearchStrategy[str], st.SearchStrategy[str]]:
    """``(structured, any)``: balanced trees of ``tags`` over ``text``, and either those or
    runs of loose fragments (stray tags, ``SPECIALS`` and ``specials``)."""
    fragments = st.one_of(
        text,
        st.sampled_from([*SPECIALS, *specials]),
        st.builds(lambda t, a: f"<{t}{a}>", tags, attributes),
        st.builds(lambda t: f"</{t}>", tags),
        st.builds(lambda t, a: f"<{t}{a}/>", tags, attributes),
    )
    structured = st.recursive(
        text,
        lambda inner: st.one_of(
            st.builds(lambda t, a, c: f"<{t}{a}>{c}</{t}>", tags, attributes, inner),
            st.lists(inner, max_size=4).map("".join),
        ),
        max_leaves=20,
    )
    return structured, st.one_of(st.lists(fragments, max_size=30).map("".join), structured)


class StrictChecker(HTMLParser):
    """Fails on what no formatter writes: self-closing tags, comments, declarations and
    processing instructions."""

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise AssertionError(f"self-closing <{tag}/>")

    def handle_comment(self, data: str) -> None:
        raise AssertionError("comment in output")

    def handle_decl(self, decl: str) -> None:
        raise AssertionError("declaration in output")

    def handle_pi(self, data: str) -> None:
        raise AssertionError("processing instruction in output")

    def unknown_decl(self, data: str) -> None:
        raise AssertionError("declaration in output")
