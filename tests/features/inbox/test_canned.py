"""Canned replies: expanding placeholders and recognising a staff message's short form."""

from __future__ import annotations

import pytest

from bridge.features.inbox.canned import expand, placeholder_error, short_code


def test_expand_fills_the_placeholders() -> None:
    text = "Thank you, {customer}! {agent} from {team} {{not a placeholder}}"
    assert expand(text, customer="Eve", agent="Ann", team="support") == (
        "Thank you, Eve! Ann from support {not a placeholder}"
    )


def test_expand_inserts_values_as_they_are() -> None:
    assert expand("Hi {customer}", customer="{agent}", agent="Ann", team="t") == "Hi {agent}"
    assert expand("No placeholders", customer="", agent="", team="") == "No placeholders"


@pytest.mark.parametrize(
    "text", ["Hi {customer}", "{agent}{team}", "plain", "{{customer}}", "{customer} {customer}"]
)
def test_valid_texts(text: str) -> None:
    assert placeholder_error(text) is None


@pytest.mark.parametrize(
    "text",
    ["Hi {name}", "Hi {}", "Hi {0}", "{customer.name}", "{customer[0]}", "{customer!r}",
     "{customer:>999}", "Hi {", "Hi }"],
)  # fmt: skip
def test_invalid_texts(text: str) -> None:
    assert placeholder_error(text) is not None


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("!thanks", "thanks"),
        ("  !Thanks\n", "thanks"),
        ("!refund-2", "refund-2"),
        ("!thanks a lot", None),
        ("thanks", None),
        ("!", None),
        ("!!", None),
        ("!-x", None),
        ("/c thanks", None),
        ("!" + "x" * 33, None),
    ],
)
def test_short_code(body: str, code: str | None) -> None:
    assert short_code(body) == code
