from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bridge.connector import ConfigError
from bridge.connectors.webhook import WebhookConfig, WebhookConnector
from bridge.types import AccountID
from tests.contract.harness import FakeHost

KEY = "channels.support-webhook"
SECRET = "0123456789abcdef"
EXAMPLE = Path(__file__).parents[3] / "example-config.yaml"


def parse(**raw: Any) -> WebhookConfig:
    return WebhookConnector.parse_config(raw, KEY)


def test_defaults() -> None:
    config = parse(secret=SECRET)
    assert config == WebhookConfig(
        secret=SECRET,
        outbound_url=None,
        max_body_size=1024 * 1024,
        delivery_deadline=3600.0,
        request_timeout=10.0,
        title="Webhook",
        max_file_size=20 * 1024 * 1024,
    )
    assert not config.outbound_enabled


def test_example_config_section_parses() -> None:
    raw = YAML(typ="safe").load(EXAMPLE.read_text())["channels"]["support-webhook"]
    config = WebhookConnector.parse_config(raw, KEY)
    assert config.outbound_url == "http://127.0.0.1:8090/inbox"
    assert config.max_body_size == 1048576
    assert config.delivery_deadline == 3600


@pytest.mark.parametrize("value", [None, ""])
def test_empty_outbound_url_disables_outbound(value: str | None) -> None:
    assert parse(secret=SECRET, outbound_url=value).outbound_url is None


def test_core_keys_are_allowed() -> None:
    parse(secret=SECRET, type="webhook", staff=["@a:example.com"])


def test_capabilities_follow_config() -> None:
    config = parse(secret=SECRET, delivery_deadline=90, max_file_size=1000)
    host = FakeHost(AccountID("acct"))  # not started: __init__ makes no network calls
    connector = WebhookConnector(AccountID("acct"), config, host)
    assert connector.capabilities.delivery_deadline == 90
    assert connector.capabilities.max_file_size == {"*": 1000}
    assert connector.capabilities.html
    assert WebhookConnector.capabilities.delivery_deadline == 3600  # class constant untouched


@pytest.mark.parametrize(
    ("raw", "key", "words"),
    [
        ({}, "secret", "required"),
        ({"secret": "short"}, "secret", "16"),
        ({"secret": SECRET, "outbound_url": "mailto:x@example.com"}, "outbound_url", "http"),
        ({"secret": SECRET, "outbound_url": "http://"}, "outbound_url", "http"),
        ({"secret": SECRET, "max_body_size": -1}, "max_body_size", "greater than 0"),
        ({"secret": SECRET, "delivery_deadline": 0}, "delivery_deadline", "greater than 0"),
        ({"secret": SECRET, "request_timeout": float("nan")}, "request_timeout", "finite"),
        ({"secret": SECRET, "title": ["x"]}, "title", "string"),
        ({"secret": SECRET, "unknown": 1}, "unknown", "unknown key"),
    ],
)
def test_errors_name_the_key(raw: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        WebhookConnector.parse_config(raw, KEY)
    assert caught.value.key == f"{KEY}.{key}"
    assert words in caught.value.message
    assert f"{KEY}.{key}" in str(caught.value)


def test_section_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError) as caught:
        WebhookConnector.parse_config(["secret"], KEY)  # type: ignore[arg-type]
    assert caught.value.key == KEY
