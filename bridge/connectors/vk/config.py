"""The VK community account's config section: parsing and validation, without network calls."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from ...connector import ConfigError
from ..options import Options

API_VERSION = r"5\.[0-9]{1,3}"
MODES = ("callback", "longpoll")


@dataclass(frozen=True)
class VKConfig:
    group_id: int
    """The community's numeric id (without the minus sign VK puts before community ids)."""
    access_token: str
    """A community access token with the ``messages`` (and ``photos``, ``docs``) rights."""
    mode: str = "callback"
    """``callback``: VK posts events to the bridge (Callback API); ``longpoll``: the bridge
    asks for them (Bots Long Poll API)."""
    confirmation_code: str = ""
    """The string VK shows in the Callback API settings: the answer to its ``confirmation``."""
    secret: str = ""
    """The secret key set in the Callback API settings: every request carries it."""
    api_version: str = "5.199"
    base_url: str = "https://api.vk.com"
    poll_wait: float = 25.0
    """Seconds one Bots Long Poll request waits for events (VK takes up to 90)."""
    delivery_deadline: float = 24 * 3600.0
    request_timeout: float = 30.0
    title: str = "VK"
    screen_name: str | None = None
    """The community's short name (``vk.me/<screen_name>`` opens a chat with it); optional."""


def parse_config(raw: Any, key: str) -> VKConfig:
    opts = Options(raw, key, (f.name for f in fields(VKConfig)), "vk")
    d = VKConfig(1, "x")
    mode = opts.choice("mode", MODES, d.mode)
    callback = mode == "callback"
    return VKConfig(
        group_id=_group_id(opts),
        access_token=opts.string("access_token"),
        mode=mode,
        confirmation_code=opts.string("confirmation_code", ... if callback else ""),
        secret=opts.string(
            "secret",
            ... if callback else "",
            pattern=r"[A-Za-z0-9]{1,50}",
            hint="must be 1-50 Latin letters and digits, as VK takes it",
        ),
        api_version=opts.string(
            "api_version", d.api_version, pattern=API_VERSION, hint="must look like 5.199"
        ),
        base_url=opts.url("base_url", d.base_url),
        poll_wait=_wait(opts),
        delivery_deadline=opts.seconds("delivery_deadline", d.delivery_deadline),
        request_timeout=opts.seconds("request_timeout", d.request_timeout),
        title=opts.string("title", d.title),
        screen_name=_screen_name(opts),
    )


def _group_id(opts: Options) -> int:
    value = opts.raw.get("group_id")
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 10**12:
        raise ConfigError(
            f"{opts.key}.group_id", "must be the community's numeric id (without a minus sign)"
        )
    return value


def _wait(opts: Options) -> float:
    wait = opts.seconds("poll_wait", 25.0)
    if wait > 90:
        raise ConfigError(f"{opts.key}.poll_wait", "VK waits at most 90 seconds")
    return wait


def _screen_name(opts: Options) -> str | None:
    value = opts.raw.get("screen_name")
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.]{2,64}", value):
        raise ConfigError(f"{opts.key}.screen_name", "must be the community's short name")
    return value
