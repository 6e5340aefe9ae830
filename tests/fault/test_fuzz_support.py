"""The fuzz helpers themselves: a hostile payload builder that fails is a flaky suite."""

from __future__ import annotations

from typing import Any

from tests.fault.fuzz_support import hostile_values, mutate


def _scripted_draw(changes: list[tuple[Any, ...]], replacement: Any) -> Any:
    """A ``draw`` that picks ``changes`` as the places to change, never removes a field and
    puts ``replacement`` in each place."""

    def draw(strategy: Any) -> Any:
        if strategy is hostile_values:
            return replacement
        if repr(strategy).startswith("lists("):
            return changes
        return False  # st.booleans(): keep the field, replace its value

    return draw


def test_a_place_inside_a_replaced_container_is_skipped() -> None:
    # The first change turns the list into a string; the second path goes through it. A
    # string can be indexed, so a check by indexing passes, but assigning into it raises.
    payload = {"content": {"user_ids": ["@a:x", "@b:x"]}}
    out = mutate(
        _scripted_draw([("content", "user_ids"), ("content", "user_ids", 1)], "text"), payload
    )
    assert out == {"content": {"user_ids": "text"}}
    assert payload == {"content": {"user_ids": ["@a:x", "@b:x"]}}


def test_places_still_there_are_changed() -> None:
    payload = {"a": [1, {"b": 2}], "c": 3}
    out = mutate(_scripted_draw([("a", 1, "b"), ("c",)], None), payload)
    assert out == {"a": [1, {"b": None}], "c": None}
