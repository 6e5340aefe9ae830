"""The WhatsApp account's config section: parsing and validation, without network calls."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from ...connector import ConfigError
from ..options import Options

DIGITS = r"[0-9]{5,20}"
VERSION = r"v[0-9]{1,3}\.[0-9]{1,2}"


@dataclass(frozen=True)
class WhatsAppConfig:
    phone_number_id: str
    """The business phone number's id in the Cloud API (not the number itself)."""
    business_account_id: str
    """The WhatsApp Business Account (WABA) id, for the template list."""
    access_token: str
    """A system-user access token with whatsapp_business_messaging permission."""
    app_secret: str
    """The Meta app's secret: webhooks are signed with it (X-Hub-Signature-256)."""
    verify_token: str
    """The token Meta sends in the webhook verification request."""
    api_version: str = "v21.0"
    base_url: str = "https://graph.facebook.com"
    reorder_window: float = 1.0
    """Seconds to hold inbound deliveries so that they are bridged in timestamp order."""
    template_cache: float = 300.0
    pair_burst: int = 5
    """Messages to one customer allowed back to back before spacing them 6 s apart."""
    delivery_deadline: float = 24 * 3600.0
    request_timeout: float = 30.0
    title: str = "WhatsApp"
    display_number: str | None = None
    """The business number customers write to, as ``+<country><number>`` (for click-to-chat
    links); None when not configured (the Cloud API ids do not give it away)."""


def parse_config(raw: Any, key: str) -> WhatsAppConfig:
    opts = Options(raw, key, (f.name for f in fields(WhatsAppConfig)), "whatsapp")
    d = WhatsAppConfig("0", "0", "x", "x", "x")
    return WhatsAppConfig(
        phone_number_id=_id(opts, "phone_number_id"),
        business_account_id=_id(opts, "business_account_id"),
        access_token=opts.string("access_token"),
        app_secret=opts.string("app_secret"),
        verify_token=opts.string("verify_token"),
        api_version=opts.string(
            "api_version", d.api_version, pattern=VERSION, hint="must look like v21.0"
        ),
        base_url=opts.url("base_url", d.base_url),
        reorder_window=opts.seconds("reorder_window", d.reorder_window),
        template_cache=opts.seconds("template_cache", d.template_cache),
        pair_burst=opts.positive_int("pair_burst", d.pair_burst),
        delivery_deadline=opts.seconds("delivery_deadline", d.delivery_deadline),
        request_timeout=opts.seconds("request_timeout", d.request_timeout),
        title=opts.string("title", d.title),
        display_number=_number(opts, "display_number"),
    )


def _number(opts: Options, name: str) -> str | None:
    """An optional phone number in international form (``+49 170 1234567``, ``0049…``), kept
    as ``+`` and its digits."""
    value = opts.raw.get(name)
    if value is None:
        return None
    hint = "must be the business's phone number in international form, e.g. +491701234567"
    if not isinstance(value, str) or not re.fullmatch(r"(\+|00)[0-9 ()./-]{6,30}", value.strip()):
        raise ConfigError(f"{opts.key}.{name}", hint)
    digits = re.sub(r"[^0-9]", "", value.strip().removeprefix("00"))
    if digits.startswith("0") or not 7 <= len(digits) <= 15:
        raise ConfigError(f"{opts.key}.{name}", hint)
    return "+" + digits


def _id(opts: Options, name: str) -> str:
    value = opts.raw.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # YAML reads unquoted ids as numbers
    if not isinstance(value, str) or not re.fullmatch(DIGITS, value):
        raise ConfigError(f"{opts.key}.{name}", "must be the numeric id from Meta's dashboard")
    return value
