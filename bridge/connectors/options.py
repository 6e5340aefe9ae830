"""Validation helpers for connector config sections: every error names the exact key."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from yarl import URL

from ..connector import ConfigError

CORE_KEYS = frozenset({"type", "staff"})
"""Keys of a channel section that belong to the core, not to the connector."""


class Options:
    """Typed access to one account's section, rejecting keys the connector does not know."""

    def __init__(self, raw: Any, key: str, known: Iterable[str], kind: str) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(key, "must be a mapping of settings")
        allowed = CORE_KEYS | set(known)
        for name in raw:
            if name not in allowed:
                raise ConfigError(f"{key}.{name}", f"unknown key for a {kind} account")
        self.raw = raw
        self.key = key

    def _get(self, name: str, default: Any) -> Any:
        value = self.raw.get(name)
        if value is None:
            if default is ...:
                raise ConfigError(f"{self.key}.{name}", "is required")
            return default
        return value

    def string(
        self, name: str, default: Any = ..., *, pattern: str | None = None, hint: str = ""
    ) -> str:
        value = self._get(name, default)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.key}.{name}", "must be a non-empty string")
        if pattern and not re.fullmatch(pattern, value):
            raise ConfigError(f"{self.key}.{name}", hint or f"must match {pattern}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self._get(name, default)
        if value not in choices:
            raise ConfigError(f"{self.key}.{name}", f"must be one of {', '.join(choices)}")
        return str(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key}.{name}", "must be true or false")
        return value

    def positive_int(self, name: str, default: int) -> int:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{self.key}.{name}", "must be a whole number greater than 0")
        return value

    def seconds(self, name: str, default: float) -> float:
        value = self._get(name, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not _finite(value)
            or value <= 0
        ):
            raise ConfigError(
                f"{self.key}.{name}", "must be a finite number of seconds greater than 0"
            )
        return float(value)

    def receiving(self, pattern: str) -> tuple[str, str | None, str | None]:
        """The bot connectors' way of receiving (Telegram, MAX): ``mode`` (``polling`` or
        ``webhook``), ``webhook_url`` (required for a webhook) and ``webhook_secret`` (matching
        ``pattern``, 32-256 characters; None: the connector generates one)."""
        mode = self.choice("mode", ("polling", "webhook"), "polling")
        url = self.url("webhook_url") if self.raw.get("webhook_url") is not None else None
        secret = None
        if self.raw.get("webhook_secret") is not None:
            secret = self.string(
                "webhook_secret",
                pattern=pattern,
                hint="must be 32-256 characters of A-Z, a-z, 0-9, '_' and '-' (or left out: the"
                " bridge then generates one)",
            )
        if mode == "webhook" and url is None:
            raise ConfigError(f"{self.key}.webhook_url", "is required in webhook mode")
        return mode, url, secret

    def url(
        self, name: str, default: Any = ..., schemes: tuple[str, ...] = ("http", "https")
    ) -> str:
        value = self.string(name, default)
        try:
            url = URL(value)
        except ValueError as e:
            raise ConfigError(f"{self.key}.{name}", f"is not a valid URL: {e}") from e
        if url.scheme not in schemes or not url.host:
            raise ConfigError(
                f"{self.key}.{name}", f"must be a {'/'.join(schemes)} URL with a host"
            )
        return value.rstrip("/")


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False
