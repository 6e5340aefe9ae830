"""The Telegram account's config section: parsing and validation, without network calls."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..options import Options

MIB = 1024 * 1024
TOKEN_PATTERN = r"[0-9]{1,20}:[A-Za-z0-9_-]{20,100}"
SECRET_PATTERN = r"[A-Za-z0-9_-]{32,256}"
"""Telegram takes 1-256 characters; a short secret can be guessed, so the bridge wants 32."""


@dataclass(frozen=True)
class TelegramConfig:
    token: str
    """The bot token from @BotFather."""
    mode: str = "polling"
    """``polling`` (getUpdates) or ``webhook`` (served on the bridge's listener)."""
    api_url: str = "https://api.telegram.org"
    """Bot API server; a local Bot API server or the test simulator."""
    webhook_url: str | None = None
    """Public base URL at which Telegram reaches the bridge's listener (webhook mode)."""
    webhook_secret: str | None = None
    """``secret_token`` Telegram sends back in X-Telegram-Bot-Api-Secret-Token; None in webhook
    mode: the connector generates one and keeps it with the account's data."""
    business: bool = False
    """Bridge Telegram Business chats (business_message and relatives)."""
    poll_timeout: float = 30.0
    delivery_deadline: float = 24 * 3600.0
    request_timeout: float = 60.0
    title: str = "Telegram"

    @property
    def bot_id(self) -> int:
        return int(self.token.split(":", 1)[0])


def parse_config(raw: Any, key: str) -> TelegramConfig:
    opts = Options(raw, key, (f.name for f in fields(TelegramConfig)), "telegram")
    d = TelegramConfig(token="0:x")
    mode, webhook_url, secret = opts.receiving(SECRET_PATTERN)
    return TelegramConfig(
        token=opts.string(
            "token", pattern=TOKEN_PATTERN, hint="is not a bot token (<digits>:<secret>)"
        ),
        mode=mode,
        api_url=opts.url("api_url", d.api_url),
        webhook_url=webhook_url,
        webhook_secret=secret,
        business=opts.boolean("business", d.business),
        poll_timeout=opts.seconds("poll_timeout", d.poll_timeout),
        delivery_deadline=opts.seconds("delivery_deadline", d.delivery_deadline),
        request_timeout=opts.seconds("request_timeout", d.request_timeout),
        title=opts.string("title", d.title),
    )
