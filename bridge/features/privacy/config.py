"""The ``features.privacy`` section, checked at start-up with every bad value's key named::

    privacy:
      secret: "…"                 # keys the audit log's and the suppression list's hashes
      export_notes: false         # internal notes (staff messages kept in Matrix) in exports
      erase_staff_replies: true   # an erasure redacts the staff replies in the conversations too
      confirm_minutes: 15         # an erasure not confirmed within this is dropped
      max_export_mb: 200          # media of an export beyond this are listed, not included
      retention:
        interval: 3600            # seconds between retention runs
        default: {messages_days: null, close_resolved_days: null, raw_mail_days: null}
        accounts:
          support-email: {messages_days: 365, close_resolved_days: 30, raw_mail_days: 30}
        teams:
          sales: {messages_days: 730}

A rule's keys: ``messages_days`` (messages older than this are redacted in Matrix and their
mappings dropped), ``close_resolved_days`` (a conversation resolved this long ago is closed: its
room is left by the ghosts and its portal dropped), ``raw_mail_days`` (the ``original.eml`` of
each mail is redacted after this); null keeps forever. A conversation's rule is its team's (the
inbox's team of the conversation), else its account's, else the default; each key falls back
separately."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...config import Config
from ...connector import ConfigError
from ...db.privacy import derive_key_secret
from ..options import check_keys, secret_option

SECTION = "features.privacy"
RULE_KEYS = ("messages_days", "close_resolved_days", "raw_mail_days")
MAX_DAYS = 36_500


@dataclass(frozen=True)
class RetentionRule:
    messages_days: int | None = None
    close_resolved_days: int | None = None
    raw_mail_days: int | None = None

    def over(self, fallback: RetentionRule) -> RetentionRule:
        """This rule, with ``fallback``'s value for each key it leaves unset."""
        return RetentionRule(
            *(
                getattr(self, name) if getattr(self, name) is not None else getattr(fallback, name)
                for name in RULE_KEYS
            )
        )

    @property
    def empty(self) -> bool:
        return all(getattr(self, name) is None for name in RULE_KEYS)


@dataclass(frozen=True)
class Retention:
    interval: float = 3600.0
    default: RetentionRule = RetentionRule()
    accounts: dict[str, RetentionRule] = field(default_factory=dict)
    teams: dict[str, RetentionRule] = field(default_factory=dict)

    def rule(self, account: str, team: str | None = None) -> RetentionRule:
        """The rule of a conversation of ``account`` (in ``team``)."""
        rule = self.accounts.get(account, RetentionRule()).over(self.default)
        if team is not None and team in self.teams:
            rule = self.teams[team].over(rule)
        return rule

    @property
    def active(self) -> bool:
        rules = [self.default, *self.accounts.values(), *self.teams.values()]
        return any(not rule.empty for rule in rules)


@dataclass(frozen=True)
class PrivacyConfig:
    secret: bytes
    export_notes: bool = False
    erase_staff_replies: bool = True
    confirm_minutes: float = 15.0
    max_export_bytes: int = 200 * 1024 * 1024
    retention: Retention = Retention()


def parse_privacy_config(section: Any, config: Config) -> PrivacyConfig | None:
    """The privacy options, or None when the section is absent; raises ``ConfigError``."""
    if section is None:
        return None
    check_keys(
        section, SECTION,
        ("secret", "export_notes", "erase_staff_replies", "confirm_minutes", "max_export_mb",
         "retention"),
    )  # fmt: skip
    return PrivacyConfig(
        secret=secret_option(
            section.get("secret"), f"{SECTION}.secret", config, derive_key_secret
        ),
        export_notes=_bool(section, "export_notes", False),
        erase_staff_replies=_bool(section, "erase_staff_replies", True),
        confirm_minutes=_number(section, "confirm_minutes", 15, 1, 24 * 60),
        max_export_bytes=int(_number(section, "max_export_mb", 200, 1, 10_000) * 1024 * 1024),
        retention=_retention(section.get("retention"), config),
    )


def _retention(value: Any, config: Config) -> Retention:
    key = f"{SECTION}.retention"
    if value is None:
        return Retention()
    check_keys(value, key, ("interval", "default", "accounts", "teams"))
    accounts: dict[str, RetentionRule] = {}
    for account, rule in _mapping(value.get("accounts"), f"{key}.accounts").items():
        if account not in config.channels:
            raise ConfigError(f"{key}.accounts.{account}", "no such channel account")
        accounts[str(account)] = _rule(rule, f"{key}.accounts.{account}")
    teams = {
        str(team): _rule(rule, f"{key}.teams.{team}")
        for team, rule in _mapping(value.get("teams"), f"{key}.teams").items()
    }
    return Retention(
        interval=_number(value, "interval", 3600, 10, 7 * 24 * 3600, key=key),
        default=_rule(value.get("default"), f"{key}.default"),
        accounts=accounts,
        teams=teams,
    )


def _rule(value: Any, key: str) -> RetentionRule:
    if value is None:
        return RetentionRule()
    check_keys(value, key, RULE_KEYS)
    days: list[int | None] = []
    for name in RULE_KEYS:
        item = value.get(name)
        if item is not None and (
            isinstance(item, bool) or not isinstance(item, int) or not 0 < item <= MAX_DAYS
        ):
            raise ConfigError(
                f"{key}.{name}", f"must be a number of days (1 to {MAX_DAYS}) or null"
            )
        days.append(item)
    return RetentionRule(*days)


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a mapping")
    return value


def _bool(section: Mapping[str, Any], name: str, default: bool) -> bool:
    value = section.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{SECTION}.{name}", "must be true or false")
    return value


def _number(
    section: Mapping[str, Any],
    name: str,
    default: float,
    low: float,
    high: float,
    *,
    key: str = SECTION,
) -> float:
    value = section.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"{key}.{name}", f"must be a number from {low:g} to {high:g}")
    return float(value)
