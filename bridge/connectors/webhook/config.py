"""The webhook account's config section: parsing and validation, without network calls."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yarl import URL

from ...connector import ConfigError

MIB = 1024 * 1024
MIN_SECRET_LENGTH = 16
CORE_KEYS = frozenset({"type", "staff"})
"""Keys of a channel section that belong to the core, not to this connector."""


@dataclass(frozen=True)
class WebhookConfig:
    secret: str
    """Shared HMAC-SHA256 secret; signs requests in both directions."""
    outbound_url: str | None = None
    """Where staff messages are POSTed; None disables outbound delivery."""
    max_body_size: int = MIB
    delivery_deadline: float = 3600.0
    request_timeout: float = 10.0
    title: str = "Webhook"
    max_file_size: int = 20 * MIB

    @property
    def outbound_enabled(self) -> bool:
        return self.outbound_url is not None


def parse_config(raw: Any, key: str) -> WebhookConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError(key, "must be a mapping of settings")
    known = CORE_KEYS | set(WebhookConfig.__dataclass_fields__)
    for name in raw:
        if name not in known:
            raise ConfigError(f"{key}.{name}", "unknown key for a webhook account")
    defaults = WebhookConfig(secret="")
    return WebhookConfig(
        secret=_secret(raw, key),
        outbound_url=_outbound_url(raw, key),
        max_body_size=_positive_int(raw, key, "max_body_size", defaults.max_body_size),
        delivery_deadline=_positive_seconds(
            raw, key, "delivery_deadline", defaults.delivery_deadline
        ),
        request_timeout=_positive_seconds(raw, key, "request_timeout", defaults.request_timeout),
        title=_title(raw, key, defaults.title),
        max_file_size=_positive_int(raw, key, "max_file_size", defaults.max_file_size),
    )


def _secret(raw: Mapping[str, Any], key: str) -> str:
    if "secret" not in raw or raw["secret"] is None:
        raise ConfigError(f"{key}.secret", "is required (the shared HMAC secret)")
    secret = raw["secret"]
    if not isinstance(secret, str):
        raise ConfigError(f"{key}.secret", "must be a string")
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{key}.secret", f"must be at least {MIN_SECRET_LENGTH} characters long")
    return secret


def _outbound_url(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get("outbound_url")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{key}.outbound_url", "must be an http(s) URL or empty")
    try:
        url = URL(value)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{key}.outbound_url", f"is not a valid URL: {e}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"{key}.outbound_url", "must be an http:// or https:// URL")
    return value


def _positive_int(raw: Mapping[str, Any], key: str, name: str, default: int) -> int:
    value = raw.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}.{name}", "must be a whole number of bytes")
    if value <= 0:
        raise ConfigError(f"{key}.{name}", "must be greater than 0")
    return value


def _positive_seconds(raw: Mapping[str, Any], key: str, name: str, default: float) -> float:
    value = raw.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}.{name}", "must be a number of seconds")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{key}.{name}", "must be a finite number greater than 0")
    return float(value)


def _title(raw: Mapping[str, Any], key: str, default: str) -> str:
    value = raw.get("title")
    if value is None:
        return default
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}.title", "must be a non-empty string")
    return value
