"""The MAX account's config section: parsing and validation, without network calls."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ...connector import ConfigError
from ..options import Options

TOKEN_PATTERN = r"[A-Za-z0-9_.:=+/-]{16,512}"
SECRET_PATTERN = r"[A-Za-z0-9_-]{32,256}"
"""MAX takes 5-256 characters of A-Z, a-z, 0-9, ``_`` and ``-``; a short secret can be guessed,
so the bridge wants 32."""
MAX_POLL_TIMEOUT = 90.0
"""The longest ``timeout`` ``GET /updates`` takes."""


@dataclass(frozen=True)
class MaxConfig:
    token: str
    """The bot's access token from the MAX business platform (sent in ``Authorization``)."""
    mode: str = "polling"
    """``polling`` (GET /updates, for development) or ``webhook`` (POST /subscriptions)."""
    api_url: str = "https://platform-api2.max.ru"
    """The Bot API base: it has moved hosts before; the test simulator's in tests."""
    webhook_url: str | None = None
    """Public base URL at which MAX reaches the bridge's listener (webhook mode); MAX takes
    only HTTPS with a publicly trusted certificate (a TLS proxy in front of the listener)."""
    webhook_secret: str | None = None
    """The subscription's ``secret``, sent back in X-Max-Bot-Api-Secret; None in webhook
    mode: the connector generates one and keeps it with the account's data."""
    poll_timeout: float = 30.0
    chat_burst: int = 1
    """Messages to one chat sent back to back before they are spaced out to the chat rate."""
    delivery_deadline: float = 24 * 3600.0
    request_timeout: float = 30.0
    title: str = "MAX"


def parse_config(raw: Any, key: str) -> MaxConfig:
    opts = Options(raw, key, (f.name for f in fields(MaxConfig)), "max")
    d = MaxConfig(token="x")
    mode, webhook_url, secret = opts.receiving(SECRET_PATTERN)
    poll_timeout = opts.seconds("poll_timeout", d.poll_timeout)
    if poll_timeout > MAX_POLL_TIMEOUT:
        raise ConfigError(f"{key}.poll_timeout", "MAX waits at most 90 seconds for updates")
    return MaxConfig(
        token=opts.string(
            "token", pattern=TOKEN_PATTERN, hint="is not a MAX bot token (no spaces, 16+ long)"
        ),
        mode=mode,
        api_url=opts.url("api_url", d.api_url),
        webhook_url=webhook_url,
        webhook_secret=secret,
        poll_timeout=poll_timeout,
        chat_burst=opts.positive_int("chat_burst", d.chat_burst),
        delivery_deadline=opts.seconds("delivery_deadline", d.delivery_deadline),
        request_timeout=opts.seconds("request_timeout", d.request_timeout),
        title=opts.string("title", d.title),
    )
