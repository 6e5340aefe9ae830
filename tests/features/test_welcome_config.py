"""The ``features`` section: each feature checks its own keys at start-up, naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from bridge import app
from bridge.config import parse
from bridge.connector import ConfigError
from tests.test_config import example


def _features(section: Any) -> list[Any]:
    def mutate(d: dict[str, Any]) -> None:
        d["features"] = section

    return app.features(parse(example(mutate)))


def test_welcome_is_off_without_its_section() -> None:
    assert _features({}) == []
    assert len(_features({"welcome": {"support-webhook": "Hello!"}})) == 1


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"welcome": {"no-such-account": "Hello"}}, "features.welcome.no-such-account"),
        ({"welcome": {"support-webhook": ""}}, "features.welcome.support-webhook"),
        ({"welcome": {"support-webhook": 5}}, "features.welcome.support-webhook"),
        ({"welcome": ["support-webhook"]}, "features.welcome"),
        ({"welcom": {}}, "features.welcom"),
    ],
)
def test_bad_feature_config_names_the_key(section: Any, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _features(section)
    assert caught.value.key == key
