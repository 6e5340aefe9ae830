"""The ``catch_up:`` config section: how the bridge reads back room timelines for events the
homeserver stored but never pushed (``core/catchup.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .connector import ConfigError

MAX_WINDOW = 30 * 24 * 3600
"""Seconds for which recorded event ids are kept (the bridge's dedup retention): a catch-up
never reads further back, so it cannot queue an event whose record was pruned."""


@dataclass(frozen=True)
class CatchUpConfig:
    active_window: float = 24 * 3600.0
    """Seconds: after an outage, the rooms the bridge saw or sent something in within this
    window are read back (a staff reply to a conversation quiet for longer is not looked for)."""
    interval: float = 300.0
    """Seconds between the periodic catch-ups, which read back only the rooms active since
    their last read (an outage the bridge did not notice)."""
    page_size: int = 50
    """Events per ``/messages`` request."""
    max_pages: int = 4
    """Requests per room and catch-up at most."""
    concurrency: int = 4
    """Rooms read back at once."""


def parse_catch_up(data: Mapping[str, Any]) -> CatchUpConfig:
    section = data.get("catch_up")
    if section is None:
        return CatchUpConfig()
    if not isinstance(section, Mapping):
        raise ConfigError("catch_up", f"must be a mapping, not {type(section).__name__}")
    known = set(CatchUpConfig.__dataclass_fields__)
    for key in section:
        if key not in known:
            raise ConfigError(f"catch_up.{key}", f"is not an option (options: {sorted(known)})")
    defaults = CatchUpConfig()
    window = _number(section, "active_window", defaults.active_window, 60, MAX_WINDOW)
    interval = _number(section, "interval", defaults.interval, 10, 7 * 24 * 3600)
    page_size = int(_number(section, "page_size", defaults.page_size, 1, 1000, whole=True))
    pages = int(_number(section, "max_pages", defaults.max_pages, 1, 100, whole=True))
    concurrency = int(_number(section, "concurrency", defaults.concurrency, 1, 64, whole=True))
    return CatchUpConfig(window, interval, page_size, pages, concurrency)


def _number(
    section: Mapping[str, Any],
    key: str,
    default: float,
    low: float,
    high: float,
    *,
    whole: bool = False,
) -> float:
    value = section.get(key, default)
    kind = int if whole else int | float
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        what = "a whole number" if whole else "seconds"
        span = f"from {low:g} to {high:g}"
        raise ConfigError(f"catch_up.{key}", f"must be {what} {span}, not {value!r}")
    return float(value)
