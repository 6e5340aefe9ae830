"""Shared pieces of the fuzz tests: hypothesis strategies for hostile values, a way to put them
anywhere in a valid payload, and a log watcher that fails a test on any logged exception."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st

REQUEST_TIMEOUT = 10.0
"""Seconds one answer may take: a hang fails the test instead of stalling the suite."""


def fuzz_settings(max_examples: int) -> settings:
    """No deadline (the first example pays for warm-up), a fixed number of examples. The
    fixtures (a running bridge, a simulator) are built once per test function and shared by
    its examples on purpose: each example cleans up after itself, and building them anew per
    example would cost seconds each."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


# --------------------------------------------------------------------------- values

SPECIAL_CHARS = ["\x00", "\ud800", "\udfff", "😀", "\u202e", "\ufeff", "\n", "<", "&", "%", "/"]


def awkward_text_of(specials: list[str]) -> st.SearchStrategy[str]:
    """Short text with what breaks naive code: NUL, lone surrogates, astral planes, bidi
    overrides, and the channel's own ``specials`` (markup characters)."""
    return st.text(st.one_of(st.characters(codec=None), st.sampled_from(specials)), max_size=30)


def json_scalars_of(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """JSON scalars, also NaN, infinities and integers too big for 64 bits, and ``text``."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        text,
    )


def json_values_of(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Any JSON value built of ``json_scalars_of(text)``, with ``text`` as keys."""
    return st.recursive(
        json_scalars_of(text),
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(text, children, max_size=4)
        ),
        max_leaves=20,
    )


def huge_strings_of(pieces: list[str], counts: list[int]) -> st.SearchStrategy[str]:
    """One of ``pieces`` repeated one of ``counts`` times."""
    return st.builds(
        lambda piece, count: piece * count, st.sampled_from(pieces), st.sampled_from(counts)
    )


awkward_text = awkward_text_of(SPECIAL_CHARS)
json_scalars = json_scalars_of(awkward_text)
json_values = json_values_of(awkward_text)
huge_strings = huge_strings_of(
    ["x", "é", "😀", "\ud800", "<b>", "> quote\n", "\x00"], [5_000, 60_000, 300_000]
)
huge_numbers = st.sampled_from(
    [10**400, -(10**400), 2**63, -(2**63) - 1, 2**53 + 1, 1e308, -1e308, 5e-324, 0, -1]
)
number_strings = st.sampled_from(["NaN", "inf", "-Infinity", "1e999", "", " ", "0", "0x10"])


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


deep_values = st.builds(nested, st.integers(min_value=20, max_value=600), json_scalars)
"""Deep, but not so deep that the test itself cannot encode (or hypothesis print) them; deeper
nesting is sent as raw text where it matters."""
hostile_values = st.one_of(
    json_values,
    huge_strings,
    huge_numbers,
    number_strings,
    deep_values,
    st.lists(json_values, max_size=3),
)


# --------------------------------------------------------------------------- mutation


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in ``value`` a value can be put (dict keys and list indexes)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from paths(item, (*prefix, index))


def mutate(draw: st.DrawFn, payload: Any, *, max_changes: int = 3) -> Any:
    """A copy of ``payload`` with up to ``max_changes`` places replaced by a hostile value or
    removed, so every field meets every wrong type."""
    payload = copy.deepcopy(payload)
    places = list(paths(payload))
    if not places:
        return payload
    for path in draw(st.lists(st.sampled_from(places), max_size=max_changes)):
        parent = _container_at(payload, path)
        if parent is None:
            continue  # an earlier change replaced or removed a container on the way
        if isinstance(parent, dict) and draw(st.booleans()):
            event("field removed")
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(hostile_values)
    return payload


def _container_at(payload: Any, path: tuple[Any, ...]) -> Any:
    """The dict or list that holds the place ``path`` in ``payload``, or None when the place
    is gone. Only real containers count: a string put in place of an object by an earlier
    change can be indexed too, but not assigned to."""
    node: Any = payload
    for key in path[:-1]:
        if not _holds(node, key):
            return None
        node = node[key]
    return node if path and _holds(node, path[-1]) else None


def _holds(node: Any, key: Any) -> bool:
    if isinstance(node, dict):
        return key in node
    return isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node)


# --------------------------------------------------------------------------- logs


class ExceptionLog(logging.Handler):
    """Collects every record logged with an exception (``log.exception``, aiohttp's "Error
    handling request") or at ERROR and above: a fuzz example must produce none of them."""

    def __init__(self, ignore_loggers: tuple[str, ...] = ()) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.ignore_loggers = ignore_loggers

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            if not record.name.startswith(self.ignore_loggers):
                self.records.append(record)

    def take(self) -> list[str]:
        """The collected records, formatted, and forget them."""
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        out = [formatter.format(r) for r in self.records]
        self.records.clear()
        return out

    def __enter__(self) -> ExceptionLog:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)


# --------------------------------------------------------------------------- identifiers

NON_ASCII_IDS = [
    "例え.テスト",
    "Ωμέγα",
    "😀👍🏽",
    "\u202eevil\u202c",
    "e\u0301\u0301\u0301",
    "\ufeffbom",
    "\ud800",
    "a\x00b",
    "ا ب/ج:د",
    "\u200b",
]


def long_ids_of(alphabet: str) -> st.SearchStrategy[str]:
    """Ids far beyond what the remote side issues: 300 to 70,000 characters of ``alphabet``
    (database keys, Matrix ids and log lines must stay bounded)."""
    return st.builds(
        lambda piece, count: (piece * count)[:count],
        st.text(alphabet, min_size=1, max_size=8),
        st.sampled_from([300, 5_000, 70_000]),
    )


def non_ascii_ids_of(base: str) -> st.SearchStrategy[str]:
    """``base`` with non-ASCII characters (scripts, emoji, bidi overrides, combining marks,
    lone surrogates, NUL) in front, inside or instead of it."""
    return st.builds(
        lambda odd, where: {"instead": odd, "front": odd + base, "inside": base[:3] + odd}[where],
        st.sampled_from(NON_ASCII_IDS) | st.text(st.characters(), min_size=1, max_size=20),
        st.sampled_from(["instead", "front", "inside"]),
    )


def odd_string_ids(base: str = "ID1") -> st.SearchStrategy[str]:
    """Long and non-ASCII variants of the string id ``base``, also both at once."""
    return st.one_of(
        long_ids_of("AZaz09_-"),
        non_ascii_ids_of(base),
        st.builds(lambda odd, count: odd * count, st.sampled_from(NON_ASCII_IDS), st.just(2_000)),
    )


odd_integer_ids = st.one_of(
    st.sampled_from(
        [2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 2**64 + 1, -(2**63), -(2**63) - 1, -(2**64)]
        + [10**30, -(10**30), 10**400, -(10**400), 0, -1, -1001234567890123]
    ),
    st.integers(min_value=-(2**80), max_value=2**80),
)
"""Integer ids at and beyond 64 bits, negative, zero (JSON can carry any of them; Python's
limit of 4,300 digits for int-to-text conversion is left to the number tests)."""
