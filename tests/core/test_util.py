"""Core helpers: localpart escaping, template regexes, deterministic transaction ids."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from ruamel.yaml import YAML

from bridge.config import parse
from bridge.core.ghosts import GhostManager
from bridge.core.util import escape_localpart, template_regex, txn_id

LOCALPART_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._=-/+")
"""What the Matrix spec allows in a user ID's localpart."""

EXAMPLE = Path(__file__).resolve().parents[2] / "example-config.yaml"


def unescape(value: str) -> str:
    """The inverse of ``escape_localpart``, written from its documented scheme."""
    out = bytearray()
    i = 0
    while i < len(value):
        if value[i] == "=":
            out.append(int(value[i + 1 : i + 3], 16))
            i += 3
        else:
            out.extend(value[i].encode())
            i += 1
    return out.decode()


@given(st.text())
@example("")
@example("=")
@example("=3d")
@example("_")
@example("ABC")
@example("Jürgen Müller 👩‍👩‍👧")
def test_escape_localpart_is_reversible_and_only_uses_allowed_characters(value: str) -> None:
    escaped = escape_localpart(value)
    assert set(escaped) <= LOCALPART_CHARS
    assert unescape(escaped) == value


@given(st.text(), st.text())
@example("=", "=3d")
@example("A", "a")
@example("_", "=5f")
def test_escape_localpart_is_injective(a: str, b: str) -> None:
    if a != b:
        assert escape_localpart(a) != escape_localpart(b)


def test_escape_localpart_known_values() -> None:
    assert escape_localpart("alice.smith-1/+") == "alice.smith-1/+"
    assert escape_localpart("Bob") == "=42ob"
    assert escape_localpart("a_b") == "a=5fb"
    assert escape_localpart("=") == "=3d"
    assert escape_localpart("ü") == "=c3=bc"
    assert escape_localpart("") == ""


def _config(template: str | None = None) -> Any:
    data: dict[str, Any] = YAML(typ="safe").load(EXAMPLE.read_text())
    data["appservice"]["as_token"] = data["appservice"]["hs_token"] = "t"
    if template is not None:
        data["ghosts"]["username_template"] = template
    return parse(data)


ACCOUNT_IDS = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


@pytest.mark.parametrize("template", ["bridge_{account}_{user}", "{user}_{account}_x"])
def test_ghost_mxids_are_distinct_and_claimed_by_the_registration(template: str) -> None:
    ghosts = GhostManager(_config(template), None)  # type: ignore[arg-type]
    regex = re.compile(ghosts.user_regex())

    @given(ACCOUNT_IDS, st.text(min_size=1), ACCOUNT_IDS, st.text(min_size=1))
    @example("a-b", "c", "a", "b-c")
    @example("a_b", "c", "a", "b_c")
    def check(acc1: str, user1: str, acc2: str, user2: str) -> None:
        m1, m2 = ghosts.mxid(acc1, user1), ghosts.mxid(acc2, user2)
        assert regex.fullmatch(m1) and regex.fullmatch(m2)
        if (acc1, user1) != (acc2, user2):
            assert m1 != m2

    check()


def test_template_regex() -> None:
    pattern = template_regex("bridge_{account}_{user}", account="", user="")
    assert pattern == "bridge_.+_.+"
    assert re.fullmatch(pattern, "bridge_acc_user")
    assert not re.fullmatch(pattern, "bridge_acc")
    assert not re.fullmatch(pattern, "bridgeXacc_user")

    # Characters special to regexes are literal; only the named fields become wildcards.
    pattern = template_regex("a.b+{user}(x)", user="")
    assert re.fullmatch(pattern, "a.b+anything(x)")
    assert not re.fullmatch(pattern, "aXb+anything(x)")
    assert not re.fullmatch(pattern, "a.b+(x)")

    # A field not given is kept as literal text.
    pattern = template_regex("{user}-{other}", user="")
    assert re.fullmatch(pattern, "u-{other}")
    assert not re.fullmatch(pattern, "u-v")


def test_txn_id_is_deterministic_and_distinguishes_inputs() -> None:
    a = txn_id("send", "!room:example.com", "42")
    assert a == txn_id("send", "!room:example.com", "42")
    assert a.startswith("br.")
    assert re.fullmatch(r"br\.[0-9a-f]{40}", a)
    others = {
        txn_id("send", "!room:example.com", "43"),
        txn_id("send", "!room:example.com42"),
        txn_id("send!room:example.com", "42"),
        txn_id("send", "!room:example.com", "42", ""),
    }
    assert a not in others and len(others) == 4


SAME_ARITY = st.integers(0, 4).flatmap(
    lambda n: st.tuples(*[st.lists(st.text(), min_size=n, max_size=n)] * 2)
)


@given(SAME_ARITY)
def test_txn_id_differs_for_different_parts(pair: tuple[list[str], list[str]]) -> None:
    # Callers pass a fixed number of parts per kind of id; ids never contain NUL.
    a, b = pair
    if a != b and not any("\x00" in p for p in a + b):
        assert txn_id(*a) != txn_id(*b)
    assert txn_id(*a) == txn_id(*a)


def test_split_text_keeps_every_character_and_the_size_limit() -> None:
    from bridge.core.util import json_size, shorten_text, split_text

    text = ('line "quoted" \\ with ä, 😀 and \x01\n' * 4000) + "x" * 70_000
    pieces = split_text(text, 10_000)
    assert "".join(pieces) == text
    assert all(json_size(p) <= 10_000 for p in pieces)
    assert all(p.endswith("\n") for p in pieces[:-9])  # cut at line ends where there are some
    assert split_text(text, 10_000) == pieces  # the same every time (parts after a restart)
    assert split_text("short") == ["short"] and split_text("") == []
    cut = shorten_text("ü" * 1000, 100)
    assert cut.endswith("…") and json_size(cut) <= 100
    assert shorten_text("fits", 100) == "fits"


@pytest.mark.parametrize("template", ["bridge_{account}_{user}", "{user}_{account}_x"])
def test_long_remote_ids_give_ghost_mxids_within_the_limit(template: str) -> None:
    ghosts = GhostManager(_config(template), None)  # type: ignore[arg-type]
    regex = re.compile(ghosts.user_regex())

    @given(ACCOUNT_IDS, st.text(min_size=60, max_size=3000))
    @example("hooks", "Ä" * 85)
    @example("hooks", "a" * 300)
    @example("hooks", "a" * 190 + "=")
    def check(account: str, user: str) -> None:
        mxid = ghosts.mxid(account, user)
        assert len(mxid.encode()) <= 255 and regex.fullmatch(mxid)
        assert set(mxid[1:].split(":")[0]) <= LOCALPART_CHARS
        assert ghosts.mxid(account, user) == mxid
        assert ghosts.mxid(account, user + "x") != mxid

    check()
    short = ghosts.mxid("hooks", "jane")  # ids that fit are unchanged
    assert short == "@" + template.format(account="hooks", user="jane") + ":example.com"


def test_fit_localpart_and_cut_name() -> None:
    from bridge.core.util import cut_name, fit_localpart

    assert fit_localpart("abc", 10) == "abc"
    long = escape_localpart("Ä" * 50)
    fitted = fit_localpart(long, 60)
    assert len(fitted) <= 60 and "==" in fitted and "==" not in long
    assert re.fullmatch(r"(=[0-9a-f]{2})*==[0-9a-f]{32}", fitted)  # no escape cut apart
    assert cut_name("x" * 300) == "x" * 254 + "…" and cut_name("short") == "short"
