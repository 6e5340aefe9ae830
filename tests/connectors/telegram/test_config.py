"""The Telegram account's config section: what parses, and the exact key named when not."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.connector import ConfigError
from bridge.connectors.telegram import TelegramConfig, TelegramConnector
from bridge.types import AccountID
from tests.contract.harness import FakeHost

from .harness import BOT_ID, TOKEN, WEBHOOK_SECRET, TelegramHarness

HARNESS = TelegramHarness()  # never started: only its config lists are used
KEY = HARNESS.config_key


def parse(**raw: Any) -> TelegramConfig:
    return TelegramConnector.parse_config(raw, KEY)


def test_defaults() -> None:
    assert parse(token=TOKEN) == TelegramConfig(
        token=TOKEN,
        mode="polling",
        api_url="https://api.telegram.org",
        webhook_url=None,
        webhook_secret=None,
        business=False,
        poll_timeout=30.0,
        delivery_deadline=24 * 3600.0,
        request_timeout=60.0,
        title="Telegram",
    )


def test_polling_config_parses() -> None:
    config = TelegramConnector.parse_config(HARNESS.valid_config(), KEY)
    assert config.mode == "polling"
    assert config.token == TOKEN
    assert config.bot_id == BOT_ID
    assert config.api_url == HARNESS.sim.base_url
    assert config.poll_timeout == 1.0
    assert config.webhook_url is None and config.webhook_secret is None


def test_webhook_config_parses() -> None:
    raw = HARNESS.webhook_config("https://bridge.example.com/")
    config = TelegramConnector.parse_config({**raw, "business": True}, KEY)
    assert config.mode == "webhook"
    assert config.webhook_url == "https://bridge.example.com"  # trailing slash dropped
    assert config.webhook_secret == WEBHOOK_SECRET
    assert config.business is True


@pytest.mark.parametrize(
    "secret", ["x" * 32, "A-Z_a-z_0-9" * 3, "x" * 256], ids=["shortest", "alphabet", "longest"]
)
def test_webhook_secret_alphabet_and_length(secret: str) -> None:
    raw = {**HARNESS.webhook_config("https://bridge.example.com"), "webhook_secret": secret}
    assert TelegramConnector.parse_config(raw, KEY).webhook_secret == secret


def test_webhook_secret_may_be_left_out() -> None:
    """The connector then generates one (and keeps it): see test_connector."""
    raw = HARNESS.webhook_config("https://bridge.example.com")
    del raw["webhook_secret"]
    assert TelegramConnector.parse_config(raw, KEY).webhook_secret is None


def test_short_webhook_secret_error_says_how_long() -> None:
    raw = {**HARNESS.webhook_config("https://bridge.example.com"), "webhook_secret": "x" * 31}
    with pytest.raises(ConfigError) as caught:
        TelegramConnector.parse_config(raw, KEY)
    assert caught.value.key == f"{KEY}.webhook_secret"
    assert "32-256 characters" in caught.value.message


def test_core_keys_are_allowed() -> None:
    parse(token=TOKEN, type="telegram", staff=["@a:example.com"])


def test_api_url_trailing_slash_is_dropped() -> None:
    assert parse(token=TOKEN, api_url="http://127.0.0.1:8081/").api_url == "http://127.0.0.1:8081"


@pytest.mark.parametrize(
    ("raw", "key"),
    HARNESS.invalid_configs(),
    ids=[f"{n}-{key.rsplit('.', 1)[1]}" for n, (_, key) in enumerate(HARNESS.invalid_configs())],
)
def test_invalid_config_names_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        TelegramConnector.parse_config(raw, KEY)
    assert caught.value.key == key, str(caught.value)
    assert caught.value.message
    assert key in str(caught.value)


def test_not_a_mapping_names_the_section() -> None:
    with pytest.raises(ConfigError) as caught:
        TelegramConnector.parse_config(["token"], KEY)  # type: ignore[arg-type]
    assert caught.value.key == KEY


def test_token_is_not_shown_in_errors() -> None:
    """A malformed token is refused without echoing it into logs."""
    bad = "123456:secret but with spaces"
    with pytest.raises(ConfigError) as caught:
        parse(token=bad)
    assert bad not in str(caught.value)


def test_capabilities_follow_config() -> None:
    config = parse(token=TOKEN, delivery_deadline=90, title="Support bot")
    host = FakeHost(AccountID("acct"))  # not started: __init__ makes no network calls
    connector = TelegramConnector(AccountID("acct"), config, host)
    assert connector.capabilities.delivery_deadline == 90
    assert connector.capabilities.max_text_length == 4096
    assert connector.title == "Support bot"
    assert TelegramConnector.capabilities.delivery_deadline == 24 * 3600
