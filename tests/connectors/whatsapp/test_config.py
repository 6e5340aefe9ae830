"""The WhatsApp account's config section: what parses, and the exact key named when not."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bridge.connector import ConfigError
from bridge.connectors.whatsapp import WhatsAppConfig, WhatsAppConnector
from bridge.connectors.whatsapp.capabilities import WHATSAPP_CAPABILITIES
from bridge.types import AccountID

from .harness import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    WABA_ID,
    FakeHost,
    WhatsAppHarness,
)

HARNESS = WhatsAppHarness()  # never started: only its config lists are used
KEY = HARNESS.config_key
REQUIRED = {
    "phone_number_id": PHONE_NUMBER_ID,
    "business_account_id": WABA_ID,
    "access_token": ACCESS_TOKEN,
    "app_secret": APP_SECRET,
    "verify_token": VERIFY_TOKEN,
}
EXAMPLE = Path(__file__).parents[3] / "bridge" / "example-config.yaml"


def parse(**raw: Any) -> WhatsAppConfig:
    return WhatsAppConnector.parse_config(raw, KEY)


def test_defaults() -> None:
    assert parse(**REQUIRED) == WhatsAppConfig(
        phone_number_id=PHONE_NUMBER_ID,
        business_account_id=WABA_ID,
        access_token=ACCESS_TOKEN,
        app_secret=APP_SECRET,
        verify_token=VERIFY_TOKEN,
        api_version="v21.0",
        base_url="https://graph.facebook.com",
        reorder_window=1.0,
        template_cache=300.0,
        pair_burst=5,
        delivery_deadline=24 * 3600.0,
        request_timeout=30.0,
        title="WhatsApp",
    )


def test_harness_config_parses() -> None:
    config = WhatsAppConnector.parse_config(HARNESS.valid_config(), KEY)
    assert config.base_url == HARNESS.sim.base_url
    assert config.reorder_window == 0.05
    assert config.delivery_deadline == 600.0
    assert config.title == "Test WhatsApp"


def test_numeric_ids_as_yaml_ints_or_strings() -> None:
    """YAML reads an unquoted id as a number; both spellings give the same string id."""
    yaml = YAML(typ="safe")
    unquoted = yaml.load(
        f"phone_number_id: {PHONE_NUMBER_ID}\nbusiness_account_id: {WABA_ID}\n"
        f"access_token: {ACCESS_TOKEN}\napp_secret: {APP_SECRET}\nverify_token: {VERIFY_TOKEN}\n"
    )
    quoted = yaml.load(f'phone_number_id: "{PHONE_NUMBER_ID}"\nbusiness_account_id: "{WABA_ID}"')
    assert isinstance(unquoted["phone_number_id"], int)
    assert isinstance(quoted["phone_number_id"], str)
    from_ints = parse(**unquoted)
    from_strings = parse(**{**REQUIRED, **quoted})
    assert from_ints == from_strings
    assert from_ints.phone_number_id == PHONE_NUMBER_ID
    assert from_ints.business_account_id == WABA_ID
    assert parse(**{**REQUIRED, "phone_number_id": int(PHONE_NUMBER_ID)}).phone_number_id == (
        PHONE_NUMBER_ID
    )


@pytest.mark.parametrize("digits", ["12345", "1" * 20], ids=["shortest", "longest"])
def test_id_length_bounds(digits: str) -> None:
    assert parse(**{**REQUIRED, "phone_number_id": digits}).phone_number_id == digits


def test_numbers_and_strings_where_expected() -> None:
    config = parse(
        **REQUIRED,
        api_version="v19.0",
        base_url="http://127.0.0.1:8080/",
        reorder_window=2,
        template_cache=0.5,
        pair_burst=1,
        delivery_deadline=3600,
        request_timeout=5.5,
        title="Support on WhatsApp",
        type="whatsapp",
        staff=["@admin:example.com"],
    )
    assert config.api_version == "v19.0"
    assert config.base_url == "http://127.0.0.1:8080"  # trailing slash dropped
    assert config.reorder_window == 2.0 and isinstance(config.reorder_window, float)
    assert config.template_cache == 0.5
    assert config.pair_burst == 1
    assert config.request_timeout == 5.5
    assert config.title == "Support on WhatsApp"


@pytest.mark.parametrize(
    "written", ["+49 170 1234567", "0049 170 1234567", "+49 (170) 123-45-67", "+491701234567"]
)
def test_display_number_is_the_public_address(written: str) -> None:
    assert parse(**REQUIRED).display_number is None
    config = parse(**REQUIRED, display_number=written)
    assert config.display_number == "+491701234567"
    connector = WhatsAppConnector(AccountID("wa"), config, FakeHost(AccountID("wa")))
    assert connector.public_address == "+491701234567"


def test_example_config_section_parses() -> None:
    raw = YAML(typ="safe").load(EXAMPLE.read_text())
    section = raw["channels"]["support-whatsapp"]
    config = WhatsAppConnector.parse_config(section, "channels.support-whatsapp")
    assert config.base_url == "https://graph.facebook.com"
    assert config.phone_number_id == "106540352242922"


@pytest.mark.parametrize(
    ("raw", "key"),
    HARNESS.invalid_configs(),
    ids=[f"{key.rpartition('.')[2]}-{n}" for n, (_, key) in enumerate(HARNESS.invalid_configs())],
)
def test_invalid_config_names_its_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        WhatsAppConnector.parse_config(raw, KEY)
    assert caught.value.key == key, str(caught.value)
    assert caught.value.message
    assert key in str(caught.value)


def test_every_config_field_has_an_invalid_case() -> None:
    named = {key.rpartition(".")[2] for _, key in HARNESS.invalid_configs()}
    missing = {f.name for f in fields(WhatsAppConfig)} - named
    assert not missing, f"no invalid config for {sorted(missing)}"


@pytest.mark.parametrize("raw", [None, [], "phone_number_id: 1", 42], ids=repr)
def test_section_must_be_a_mapping(raw: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        WhatsAppConnector.parse_config(raw, KEY)
    assert caught.value.key == KEY


def test_id_errors_do_not_echo_secrets() -> None:
    """A wrong id is reported by key; a token given where an id belongs is not repeated."""
    with pytest.raises(ConfigError) as caught:
        parse(**{**REQUIRED, "phone_number_id": ACCESS_TOKEN})
    assert ACCESS_TOKEN not in str(caught.value)


async def test_connector_takes_title_and_deadline_from_config() -> None:
    async with FakeHost(AccountID("wa")) as host:
        config = parse(**REQUIRED, title="Shop WhatsApp", delivery_deadline=120)
        connector = WhatsAppConnector(AccountID("wa"), config, host)
        assert connector.title == "Shop WhatsApp"
        assert connector.capabilities.delivery_deadline == 120.0
        assert connector.capabilities.max_file_size == WHATSAPP_CAPABILITIES.max_file_size
        assert WhatsAppConnector.capabilities.delivery_deadline == 24 * 3600.0
        assert host.routes == {} and host.states == []
