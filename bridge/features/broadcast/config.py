"""The ``features.broadcast`` section, checked at start-up with every bad value's key named::

    broadcast:
      staff: ["@alice:example.com"]        # invited to every list's broadcast room
      lists:                               # default: every consent list, as below
        newsletter:
          accounts: [support-telegram]     # default: the consent list's, else every account
          whatsapp_template: {name: newsletter_news, language: en}  # outside the 24 hours
          language: de                     # of the stop hint; default: default
      rates: {support-telegram: 25}        # messages a second; default: the channel's limit
      timezone: Europe/Berlin              # of `send at <time>`; default: UTC
      stop_hint: {default: "Reply STOP to unsubscribe.", de: "Antworten Sie STOPP ..."}

It needs ``features.consent``, and each list named here must be one of its lists. A WhatsApp
template gets the broadcast's text as its one parameter ``{{1}}``."""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...config import Config
from ...connector import ConfigError
from ...types import AccountID
from ..consent.config import ConsentConfig, parse_consent_config
from ..options import check_keys as keys

SECTION = "features.broadcast"
DEFAULT_LANGUAGE = "default"
DEFAULT_STOP_HINT = "Reply STOP to unsubscribe."
MAX_HINT = 500
MAX_RATE = 100_000.0


@dataclass(frozen=True)
class Template:
    name: str
    language: str = ""
    """Recorded for people; the connector picks the template by its name."""


@dataclass(frozen=True)
class BroadcastList:
    name: str
    title: str
    accounts: tuple[AccountID, ...]
    whatsapp_template: Template | None = None
    language: str = DEFAULT_LANGUAGE


@dataclass(frozen=True)
class BroadcastConfig:
    consent: ConsentConfig
    lists: Mapping[str, BroadcastList]
    staff: tuple[str, ...] = ()
    rates: Mapping[str, float] = field(default_factory=dict)
    timezone: str = "UTC"
    stop_hint: Mapping[str, str] = field(
        default_factory=lambda: {DEFAULT_LANGUAGE: DEFAULT_STOP_HINT}
    )
    channel_types: Mapping[str, str] = field(default_factory=dict)
    """Channel account -> its type (``telegram``, ``whatsapp``, ``email``, ``webhook``)."""

    def hint(self, language: str) -> str:
        return self.stop_hint.get(language) or self.stop_hint[DEFAULT_LANGUAGE]


def parse_broadcast_config(section: Any, config: Config) -> BroadcastConfig | None:
    if section is None:
        return None
    keys(section, SECTION, ("staff", "lists", "rates", "timezone", "stop_hint"))
    consent = parse_consent_config(config.features.get("consent"), config)
    if consent is None:
        raise ConfigError(SECTION, "needs features.consent (broadcasts go to its lists)")
    return BroadcastConfig(
        consent=consent,
        lists=_lists(section.get("lists"), consent, config),
        staff=_staff(section.get("staff", [])),
        rates=_rates(section.get("rates", {}), config),
        timezone=_timezone(section.get("timezone", "UTC")),
        stop_hint=_hints(section.get("stop_hint")),
        channel_types={str(a): c.type for a, c in config.channels.items()},
    )


def _staff(value: Any) -> tuple[str, ...]:
    key = f"{SECTION}.staff"
    if not isinstance(value, list):
        raise ConfigError(key, "must be a list of Matrix user IDs")
    for i, user in enumerate(value):
        if not isinstance(user, str) or not user.startswith("@") or ":" not in user:
            raise ConfigError(f"{key}[{i}]", "must be a Matrix user ID like @alice:example.com")
    return tuple(value)


def _lists(value: Any, consent: ConsentConfig, config: Config) -> dict[str, BroadcastList]:
    key = f"{SECTION}.lists"
    if value is None:
        value = {name: {} for name in consent.lists}
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must map consent lists to their broadcast options")
    lists = {}
    for name, options in value.items():
        at = f"{key}.{name}"
        item = consent.lists.get(name)
        if item is None:
            raise ConfigError(at, f"there is no consent list {name!r} (features.consent.lists)")
        options = {} if options is None else options
        keys(options, at, ("accounts", "whatsapp_template", "language"))
        accounts = options.get("accounts", list(item.accounts) or list(config.channels))
        if not isinstance(accounts, list) or not accounts:
            raise ConfigError(f"{at}.accounts", "must be a list of channel accounts")
        for i, account in enumerate(accounts):
            if account not in config.channels:
                raise ConfigError(
                    f"{at}.accounts[{i}]", f"there is no channel account {account!r}"
                )
            if not item.offered(account):
                raise ConfigError(
                    f"{at}.accounts[{i}]", f"the consent list {name} is not offered on {account}"
                )
        language = options.get("language", DEFAULT_LANGUAGE)
        if not isinstance(language, str) or not language.strip():
            raise ConfigError(f"{at}.language", "must be a language like de")
        lists[name] = BroadcastList(
            name, item.title, tuple(AccountID(str(a)) for a in dict.fromkeys(accounts)),
            _template(options.get("whatsapp_template"), f"{at}.whatsapp_template"),
            language.strip().lower(),
        )  # fmt: skip
    return lists


def _template(value: Any, key: str) -> Template | None:
    if value is None:
        return None
    keys(value, key, ("name", "language"))
    name, language = value.get("name"), value.get("language", "")
    if not isinstance(name, str) or not name.strip() or len(name) > 512:
        raise ConfigError(f"{key}.name", "must be the name of an approved template")
    if not isinstance(language, str):
        raise ConfigError(f"{key}.language", "must be a language code like en_US")
    return Template(name.strip(), language.strip())


def _rates(value: Any, config: Config) -> dict[str, float]:
    key = f"{SECTION}.rates"
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must map channel accounts to messages a second")
    rates = {}
    for account, rate in value.items():
        at = f"{key}.{account}"
        if account not in config.channels:
            raise ConfigError(at, f"there is no channel account {account!r}")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= MAX_RATE:
            raise ConfigError(at, f"must be a number of messages a second, up to {MAX_RATE:g}")
        rates[str(account)] = float(rate)
    return rates


def _timezone(value: Any) -> str:
    key = f"{SECTION}.timezone"
    if not isinstance(value, str):
        raise ConfigError(key, "must be a time zone like Europe/Berlin")
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(key, f"there is no time zone {value!r}") from None
    return value


def _hints(value: Any) -> dict[str, str]:
    key = f"{SECTION}.stop_hint"
    hints = {DEFAULT_LANGUAGE: DEFAULT_STOP_HINT}
    if value is None:
        return hints
    if isinstance(value, str):
        value = {DEFAULT_LANGUAGE: value}
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a text, or map languages to texts")
    for language, text in value.items():
        at = f"{key}.{language}"
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_HINT:
            raise ConfigError(at, f"must be a text of 1 to {MAX_HINT} characters")
        hints[str(language).lower()] = text.strip()
    return hints
