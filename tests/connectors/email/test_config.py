"""The email account's config section: what parses, with which defaults, and which key each
refusal names."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.connector import ConfigError
from bridge.connectors.email import EmailConnector
from bridge.connectors.email.config import EmailConfig

from .harness import EmailHarness

KEY = "channels.mail"


def section(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "type": "email",
        "staff": ["@admin:example.com"],
        "imap": {"host": "imap.example.com", "user": "support", "password": "pw"},
        "smtp": {"host": "smtp.example.com", "user": "support", "password": "pw"},
        "from_address": "support@example.com",
    }
    raw.update(changes)
    return raw


def parse(raw: dict[str, Any]) -> EmailConfig:
    return EmailConnector.parse_config(raw, KEY)


@pytest.mark.parametrize("threading", ["thread", "contact"])
def test_both_threading_modes_parse(threading: str) -> None:
    assert parse(section(threading=threading)).threading == threading


def test_defaults() -> None:
    config = parse(section())
    assert config.threading == "thread"
    assert config.folder == "INBOX"
    assert config.imap.security == config.smtp.security == "tls"
    assert config.imap.verify_tls and config.smtp.verify_tls
    assert config.idle_timeout < 29 * 60
    assert config.smtp.user == "support" and config.smtp.password == "pw"


@pytest.mark.parametrize(
    ("security", "imap_port", "smtp_port"),
    [("tls", 993, 465), ("starttls", 143, 587), ("none", 143, 25)],
)
def test_default_ports_per_security(security: str, imap_port: int, smtp_port: int) -> None:
    raw = section()
    raw["imap"] = {**raw["imap"], "security": security}
    raw["smtp"] = {**raw["smtp"], "security": security}
    config = parse(raw)
    assert (config.imap.port, config.smtp.port) == (imap_port, smtp_port)


def test_explicit_port_wins() -> None:
    raw = section()
    raw["imap"] = {**raw["imap"], "port": 1143}
    assert parse(raw).imap.port == 1143


def test_smtp_without_login() -> None:
    raw = section()
    raw["smtp"] = {"host": "smtp.example.com", "security": "none"}
    config = parse(raw)
    assert config.smtp.user is None and config.smtp.password is None


def test_harness_config_parses() -> None:
    config = EmailConnector.parse_config(EmailHarness().valid_config(), "channels.x")
    assert config.imap.security == "starttls" and not config.imap.verify_tls
    assert config.smtp.security == "none" and config.smtp.user == "support"
    assert config.threading == "contact" and config.poll_interval == 1.0


def _cases() -> list[tuple[dict[str, Any], str]]:
    harness = EmailHarness()
    prefix = harness.config_key
    return [(raw, key.replace(prefix, KEY, 1)) for raw, key in harness.invalid_configs()]


@pytest.mark.parametrize(("raw", "key"), _cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_invalid_names_its_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    assert caught.value.key == key, str(caught.value)
    assert caught.value.message


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(["imap"])  # type: ignore[arg-type]
    assert caught.value.key == KEY


def test_missing_imap_password_names_the_password() -> None:
    raw = section()
    raw["imap"] = {"host": "imap.example.com", "user": "support"}
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    assert caught.value.key == f"{KEY}.imap.password", str(caught.value)
