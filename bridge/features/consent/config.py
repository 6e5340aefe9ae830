"""The ``features.consent`` section, checked at start-up with every bad value's key named::

    consent:
      lists:
        newsletter: {title: "Our newsletter", version: "2026-01", text: "Yes, send me ...",
                     keywords: [NEWSLETTER], start: news, accounts: [support-telegram]}
      opt_out:
        keywords: {default: [STOP, UNSUBSCRIBE], de: [STOPP, ABMELDEN]}
        confirmation: {default: "You will get no more messages.", de: "Sie sind abgemeldet."}
      templates: {support-whatsapp: strict}
      record_ip: false
      trusted_proxies: [127.0.0.1, 10.0.0.0/8]   # reverse proxies whose X-Forwarded-For counts
      confirm_hours: 48   # an unconfirmed request expires after this
      public_url: https://bridge.example.com   # where the links in mails and QR codes point
      secret: "…"   # signs those links; default: derived from appservice.as_token

A list's consent text is stored in the ledger by its SHA-256; the version names it for
people. Changing the text under the same version is allowed, and both texts stay provable
(each step records the hash of the exact text it was given under); start-up logs a warning
when a version has more than one text. Keywords of every language work on every channel; the
language only picks the confirmation. Without ``opt_out`` the defaults below apply, and
without ``templates`` every account is ``strict``."""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...config import Config
from ...connector import ConfigError
from ...types import AccountID
from ..options import check_keys, secret_option
from ..welcome import MAX_TEXT
from .tokens import derive_secret

SECTION = "features.consent"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$")
DEFAULT_LANGUAGE = "default"
MAX_VERSION = 64
MAX_KEYWORD = 32
DEFAULT_KEYWORDS = ("STOP", "STOPP", "ABMELDEN", "UNSUBSCRIBE", "СТОП", "ОТПИСАТЬСЯ")
DEFAULT_CONFIRMATION = (
    "You are unsubscribed: you will get no more messages of ours here unless you write to us. "
    "Your consent to {lists} is withdrawn."
)
DEFAULT_CONFIRMATION_DE = (
    "Sie sind abgemeldet: Sie erhalten hier keine Nachrichten mehr von uns, außer Sie "
    "schreiben uns. Ihre Einwilligung ({lists}) ist widerrufen."
)


class TemplatePolicy(enum.StrEnum):
    STRICT = "strict"
    """A template to a chat whose customer never wrote needs a consent given on the channel."""
    LENIENT = "lenient"
    """Templates go to anyone (the operator answers for it)."""


@dataclass(frozen=True)
class ConsentList:
    name: str
    text: str
    version: str
    title: str
    keywords: tuple[str, ...] = ()
    """Whole-message words that ask for this list on WhatsApp and by mail (and a click-to-chat
    link's text); default: the list's name in capitals."""
    start: str = ""
    """The Telegram deep-link payload (``t.me/<bot>?start=<start>``); default: the name."""
    accounts: tuple[AccountID, ...] = ()
    """The channel accounts the list is offered and broadcast on; empty: every account."""

    def offered(self, account: str) -> bool:
        return not self.accounts or account in self.accounts

    def asked_by(self, text: str) -> bool:
        """Whether the whole message ``text`` is one of the list's keywords."""
        said = normalise(text)
        return bool(said) and said in {normalise(k) for k in self.keywords}

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the exact text shown: what the ledger records."""
        return text_hash(self.text)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def normalise(text: str) -> str:
    """A whole message as an opt-out keyword is compared: trimmed of spaces and of the
    punctuation around it (``STOP!``, ``"stop."``), any case."""
    return text.strip().strip(" \t\r\n.,;:!?¡¿\"'«»„“”()[]").casefold()


@dataclass(frozen=True)
class OptOut:
    keywords: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {DEFAULT_LANGUAGE: DEFAULT_KEYWORDS}
    )
    """Language -> its keywords, as written."""
    confirmation: Mapping[str, str] = field(
        default_factory=lambda: {
            DEFAULT_LANGUAGE: DEFAULT_CONFIRMATION,
            "de": DEFAULT_CONFIRMATION_DE,
        }
    )

    def match(self, text: str) -> str | None:
        """The language of the keyword ``text`` is (as a whole), else None; one in several
        languages counts as ``default``'s."""
        said = normalise(text)
        if not said:
            return None
        found = [lang for lang, words in self.keywords.items() if said in _folded(words)]
        if not found:
            return None
        return DEFAULT_LANGUAGE if DEFAULT_LANGUAGE in found else found[0]

    def confirm(self, language: str | None) -> str:
        for lang in (language, (language or "").split("-")[0].split("_")[0]):
            if lang and lang.lower() in self.confirmation:
                return self.confirmation[lang.lower()]
        return self.confirmation[DEFAULT_LANGUAGE]


def _folded(words: tuple[str, ...]) -> set[str]:
    return {normalise(w) for w in words}


@dataclass(frozen=True)
class ConsentConfig:
    lists: Mapping[str, ConsentList]
    opt_out: OptOut = field(default_factory=OptOut)
    templates: Mapping[AccountID, TemplatePolicy] = field(default_factory=dict)
    record_ip: bool = False
    """Keep the requesting IP address with a web confirmation (the email flow)."""
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    """Reverse proxies in front of the public listener: a request from one of them is from the
    rightmost address of ``X-Forwarded-For`` that is not one of them."""
    public_url: str = "http://127.0.0.1:29350"
    """The base URL people reach the bridge's public listener at (no trailing slash): links
    are ``<public_url>/features/consent/...``."""
    confirm_hours: float = 48.0
    """How long a request may wait for its confirmation (a link, a button) before it expires."""
    secret: bytes = b"\0" * 32
    """The key signing confirmation and unsubscribe links (``tokens.Signer``)."""

    def policy(self, account: str) -> TemplatePolicy:
        return self.templates.get(AccountID(account), TemplatePolicy.STRICT)


def parse_consent_config(section: Any, config: Config) -> ConsentConfig | None:
    """The consent options, or None when the section is absent; raises ``ConfigError``."""
    if section is None:
        return None
    check_keys(
        section,
        SECTION,
        ("lists", "opt_out", "templates", "record_ip", "public_url", "secret", "confirm_hours",
         "trusted_proxies"),
    )  # fmt: skip
    record_ip = section.get("record_ip", False)
    if not isinstance(record_ip, bool):
        raise ConfigError(f"{SECTION}.record_ip", "must be true or false")
    lists, opt_out = _lists(section.get("lists"), config), _opt_out(section.get("opt_out"))
    _no_clashes(lists, opt_out)
    return ConsentConfig(
        lists=lists,
        opt_out=opt_out,
        templates=_templates(section.get("templates"), config),
        record_ip=record_ip,
        public_url=_public_url(section.get("public_url"), config),
        secret=secret_option(section.get("secret"), f"{SECTION}.secret", config, derive_secret),
        confirm_hours=_hours(section.get("confirm_hours", 48)),
        trusted_proxies=_proxies(section.get("trusted_proxies", [])),
    )


def _proxies(value: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    key = f"{SECTION}.trusted_proxies"
    if not isinstance(value, list):
        raise ConfigError(key, "must be a list of IP addresses or networks (10.0.0.0/8)")
    networks = []
    for i, entry in enumerate(value):
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            raise ConfigError(f"{key}[{i}]", "must be an IP address or network") from None
    return tuple(networks)


def _hours(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 24 * 90:
        raise ConfigError(f"{SECTION}.confirm_hours", "must be a number of hours, up to 2160")
    return float(value)


def _no_clashes(lists: Mapping[str, ConsentList], opt_out: OptOut) -> None:
    """A keyword asks for one list only, and never stops: one message cannot both withdraw
    and ask, nor ask for two lists of which the first would win unseen."""
    seen: dict[str, str] = {}
    for item in lists.values():
        key = f"{SECTION}.lists.{item.name}.keywords"
        for word in item.keywords:
            if opt_out.match(word) is not None:
                raise ConfigError(key, f"{word!r} is an opt-out keyword")
            other = seen.setdefault(normalise(word), item.name)
            if other != item.name:
                raise ConfigError(key, f"{word!r} asks for the list {other} already")


def _public_url(value: Any, config: Config) -> str:
    if value is None:
        listener = config.webhook_listener
        host, port = (
            (listener.hostname, listener.port)
            if listener
            else (config.as_hostname, config.as_port)
        )
        return f"http://{host}:{port}"
    key = f"{SECTION}.public_url"
    if not isinstance(value, str):
        raise ConfigError(key, "must be a URL like https://bridge.example.com")
    parsed = urllib.parse.urlsplit(value.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query:
        raise ConfigError(key, "must be an http(s) URL like https://bridge.example.com")
    return value.strip().rstrip("/")


def _text(value: Any, key: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ConfigError(key, f"must be a text of 1 to {limit} characters")
    return value


def _lists(section: Any, config: Config) -> dict[str, ConsentList]:
    key = f"{SECTION}.lists"
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(key, "must map list names to their consent text and version")
    lists = {}
    for name, value in section.items():
        at = f"{key}.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(at, "a list name is 1 to 64 letters, digits, - or _")
        check_keys(value, at, ("text", "version", "title", "keywords", "start", "accounts"))
        text = _text(value.get("text"), f"{at}.text")
        version = value.get("version")
        if isinstance(version, int | float) and not isinstance(version, bool):
            version = str(version)
        version = _text(version, f"{at}.version", MAX_VERSION)
        title = _text(value.get("title", name), f"{at}.title", 200)
        keywords = _keywords(value.get("keywords", [name.upper()]), f"{at}.keywords")
        start = value.get("start", name)
        if not isinstance(start, str) or not _NAME.match(start):
            raise ConfigError(
                f"{at}.start", "a deep-link payload is 1 to 64 letters, digits, - or _"
            )
        accounts = value.get("accounts", [])
        if not isinstance(accounts, list):
            raise ConfigError(f"{at}.accounts", "must be a list of channel accounts")
        for i, account in enumerate(accounts):
            if account not in config.channels:
                raise ConfigError(
                    f"{at}.accounts[{i}]", f"there is no channel account {account!r}"
                )
        lists[name] = ConsentList(
            name, text, version.strip(), title, keywords, start,
            tuple(AccountID(str(a)) for a in accounts),
        )  # fmt: skip
    starts = [item.start for item in lists.values()]
    for item in lists.values():
        if starts.count(item.start) > 1:
            raise ConfigError(f"{key}.{item.name}.start", "two lists have this deep-link payload")
    return lists


def _languages(section: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(section, Mapping) or not section:
        raise ConfigError(key, "must map languages (default, de, ...) to values")
    for lang in section:
        if lang != DEFAULT_LANGUAGE and (not isinstance(lang, str) or not _LANGUAGE.match(lang)):
            raise ConfigError(f"{key}.{lang}", "a language is `default` or a code like de")
    return {str(lang).lower(): value for lang, value in section.items()}


def _opt_out(section: Any) -> OptOut:
    key = f"{SECTION}.opt_out"
    if section is None:
        return OptOut()
    check_keys(section, key, ("keywords", "confirmation"))
    defaults = OptOut()
    keywords: Mapping[str, tuple[str, ...]] = defaults.keywords
    if section.get("keywords") is not None:
        keywords = {
            lang: _keywords(words, f"{key}.keywords.{lang}")
            for lang, words in _languages(section["keywords"], f"{key}.keywords").items()
        }
    confirmation: Mapping[str, str] = defaults.confirmation
    if section.get("confirmation") is not None:
        confirmation = {
            lang: _text(text, f"{key}.confirmation.{lang}")
            for lang, text in _languages(section["confirmation"], f"{key}.confirmation").items()
        }
        if DEFAULT_LANGUAGE not in confirmation:
            raise ConfigError(f"{key}.confirmation.default", "the default text is missing")
    return OptOut(keywords, confirmation)


def _keywords(words: Any, key: str) -> tuple[str, ...]:
    if isinstance(words, str):
        words = [words]
    if not isinstance(words, list) or not words:
        raise ConfigError(key, "must be a list of keywords")
    for i, word in enumerate(words):
        if not isinstance(word, str) or not normalise(word) or len(word) > MAX_KEYWORD:
            raise ConfigError(f"{key}[{i}]", f"a keyword is one word of 1 to {MAX_KEYWORD} "
                              "characters")  # fmt: skip
    return tuple(words)


def _templates(section: Any, config: Config) -> dict[AccountID, TemplatePolicy]:
    key = f"{SECTION}.templates"
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(key, "must map channel accounts to strict or lenient")
    policies = {}
    for account, value in section.items():
        at = f"{key}.{account}"
        if account not in config.channels:
            raise ConfigError(at, f"there is no channel account {account!r}")
        try:
            policies[AccountID(str(account))] = TemplatePolicy(value)
        except ValueError:
            raise ConfigError(at, "must be strict or lenient") from None
    return policies
