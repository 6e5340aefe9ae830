"""The ``metrics:`` config section: where the metrics listener listens (off by default) and
how often the figures read from the database are refreshed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..connector import ConfigError

DEFAULT_REFRESH = 15.0


@dataclass(frozen=True)
class MetricsConfig:
    hostname: str
    port: int
    refresh: float = DEFAULT_REFRESH
    """Seconds between refreshes of the figures read from the database (a feature's open
    conversations, a broadcast's progress): a scrape only reads what was refreshed."""


def parse_metrics(
    data: Mapping[str, Any], taken: tuple[int | None, ...] = ()
) -> MetricsConfig | None:
    """The ``metrics`` section of ``data`` (None: the listener is off). ``taken``: ports of
    the bridge's other listeners, which the metrics one must not reuse."""
    section = data.get("metrics")
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise ConfigError("metrics", f"must be a mapping, not {type(section).__name__}")
    listen = section.get("listen")
    if listen is None:
        return None
    if not isinstance(listen, str) or ":" not in listen:
        raise ConfigError("metrics.listen", f"must be host:port (or null: off), not {listen!r}")
    host, _, port_text = listen.rpartition(":")
    host = host.strip("[]")  # [::1]:9350
    if not host:
        raise ConfigError("metrics.listen", f"has no host: {listen!r}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError("metrics.listen", f"port must be 1 to 65535, not {port_text!r}")
    port = int(port_text)
    if port in taken:
        raise ConfigError("metrics.listen", f"port {port} is taken by another listener")
    refresh = section.get("refresh", DEFAULT_REFRESH)
    if isinstance(refresh, bool) or not isinstance(refresh, int | float) or not 0 < refresh < 1e6:
        raise ConfigError("metrics.refresh", f"must be seconds greater than 0, not {refresh!r}")
    return MetricsConfig(host, port, float(refresh))
