"""The webhook account's config section: parsing and validation, without network calls."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...connector import ConfigError
from ..options import Options

MIB = 1024 * 1024
MIN_SECRET_LENGTH = 16


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
    signature_tolerance: float = 300.0
    """Seconds a signature's timestamp may differ from our clock (replay window)."""
    fetch_allow_hosts: tuple[str, ...] = ()
    """Hosts (names, IP addresses, CIDR networks) that attachment and avatar URLs may point at
    although they are not public addresses; everything else non-public is refused."""

    @property
    def outbound_enabled(self) -> bool:
        return self.outbound_url is not None


def parse_config(raw: Any, key: str) -> WebhookConfig:
    opts = Options(raw, key, WebhookConfig.__dataclass_fields__, "webhook")
    defaults = WebhookConfig(secret="")
    return WebhookConfig(
        secret=_secret(raw, key),
        outbound_url=opts.url("outbound_url", None) if raw.get("outbound_url") else None,
        max_body_size=opts.positive_int("max_body_size", defaults.max_body_size),
        delivery_deadline=opts.seconds("delivery_deadline", defaults.delivery_deadline),
        request_timeout=opts.seconds("request_timeout", defaults.request_timeout),
        title=_title(raw, key, defaults.title),
        max_file_size=opts.positive_int("max_file_size", defaults.max_file_size),
        signature_tolerance=opts.seconds("signature_tolerance", defaults.signature_tolerance),
        fetch_allow_hosts=_hosts(raw, key, "fetch_allow_hosts"),
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


_HOST = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.?"
)


def _hosts(raw: Mapping[str, Any], key: str, name: str) -> tuple[str, ...]:
    value = raw.get(name)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(
            f"{key}.{name}", "must be a list of host names, IP addresses or networks"
        )
    hosts = []
    for index, entry in enumerate(value):
        where = f"{key}.{name}[{index}]"
        if not isinstance(entry, str) or not entry.strip():
            raise ConfigError(where, "must be a host name, an IP address or a network")
        entry = entry.strip()
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if not _HOST.fullmatch(entry):
                raise ConfigError(
                    where, f"{entry!r} is not a host name, an IP address or a network"
                ) from None
        hosts.append(entry)
    return tuple(hosts)


def _title(raw: Mapping[str, Any], key: str, default: str) -> str:
    value = raw.get("title")
    if value is None:
        return default
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}.title", "must be a non-empty string")
    return value
