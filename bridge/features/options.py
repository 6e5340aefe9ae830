"""Checks shared by the features' config sections: each names the exact key of a bad value."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..config import Config
from ..connector import ConfigError


def check_keys(value: Any, key: str, allowed: tuple[str, ...]) -> None:
    """``value`` is a mapping with no keys but ``allowed``."""
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a mapping")
    for name in value:
        if name not in allowed:
            raise ConfigError(f"{key}.{name}", f"unknown key (allowed: {', '.join(allowed)})")


def secret_option(value: Any, key: str, config: Config, derive: Callable[[str], bytes]) -> bytes:
    """A configured secret of at least 32 characters, else one derived from the appservice
    token by ``derive`` (so that a restart keeps what it keys valid)."""
    if value is None:
        return derive(config.as_token)
    if not isinstance(value, str) or len(value) < 32:
        raise ConfigError(key, "must be a random text of at least 32 characters")
    return value.encode()
