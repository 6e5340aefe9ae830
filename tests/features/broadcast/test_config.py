"""The ``features.broadcast`` section: its defaults, a full section, and every bad value
refused with its key named."""

from __future__ import annotations

import re
from typing import Any

import pytest
from ruamel.yaml import YAML

from bridge.app import features
from bridge.config import parse
from bridge.connector import ConfigError
from bridge.features.broadcast.config import (
    DEFAULT_STOP_HINT,
    BroadcastConfig,
    BroadcastList,
    Template,
    parse_broadcast_config,
)
from bridge.features.broadcast.module import BROADCAST
from bridge.features.broadcast.receipts import ReceiptHook
from bridge.features.consent.module import CONSENT as CONSENT_MODULE
from bridge.seams import Seams
from tests.features.broadcast.support import Services
from tests.test_config import EXAMPLE, example

CONSENT: dict[str, Any] = {
    "lists": {
        "newsletter": {"text": "Yes, the newsletter.", "version": "1", "title": "News"},
        "offers": {"text": "Yes, offers.", "version": "1", "accounts": ["support-webhook"]},
    }
}

N = "features.broadcast.lists.newsletter"


def broadcast(section: Any, consent: Any = CONSENT) -> BroadcastConfig | None:
    config = parse(
        example(lambda data: data.update(features={"consent": consent, "broadcast": section}))
    )
    return parse_broadcast_config(config.features["broadcast"], config)


def test_defaults() -> None:
    parsed = broadcast({})
    assert parsed is not None
    # Without accounts of its own, a list has those of its consent list: every account.
    assert parsed.lists["newsletter"] == BroadcastList(
        "newsletter", "News", tuple(example()["channels"])
    )
    assert parsed.lists["offers"].accounts == ("support-webhook",)
    assert parsed.hint("de") == DEFAULT_STOP_HINT
    assert (parsed.staff, parsed.rates, parsed.timezone) == ((), {}, "UTC")
    assert parsed.channel_types["support-email"] == "email"
    assert broadcast(None) is None


def test_full_section() -> None:
    parsed = broadcast({
        "staff": ["@lea:example.com"],
        "lists": {"newsletter": {
            "accounts": ["support-telegram", "support-whatsapp"], "language": "DE",
            "whatsapp_template": {"name": "news_update", "language": "de"},
        }},
        "rates": {"support-telegram": 25, "support-email": 2.5},
        "timezone": "Europe/Berlin",
        "stop_hint": {"de": "Antworten Sie STOPP, um sich abzumelden."},
    })  # fmt: skip
    assert parsed is not None
    assert list(parsed.lists) == ["newsletter"]
    item = parsed.lists["newsletter"]
    assert item.accounts == ("support-telegram", "support-whatsapp")
    assert item.whatsapp_template == Template("news_update", "de")
    assert parsed.hint(item.language) == "Antworten Sie STOPP, um sich abzumelden."
    assert parsed.rates == {"support-telegram": 25.0, "support-email": 2.5}
    assert parsed.timezone == "Europe/Berlin"


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ([], "features.broadcast"),
        ({"rate": {}}, "features.broadcast.rate"),
        ({"staff": "@lea:example.com"}, "features.broadcast.staff"),
        ({"staff": ["lea"]}, "features.broadcast.staff[0]"),
        ({"lists": []}, "features.broadcast.lists"),
        ({"lists": {"unknown": {}}}, "features.broadcast.lists.unknown"),
        ({"lists": {"newsletter": {"account": []}}}, f"{N}.account"),
        ({"lists": {"newsletter": {"accounts": []}}}, f"{N}.accounts"),
        ({"lists": {"newsletter": {"accounts": ["nope"]}}},
         f"{N}.accounts[0]"),
        ({"lists": {"offers": {"accounts": ["support-email"]}}},
         "features.broadcast.lists.offers.accounts[0]"),
        ({"lists": {"newsletter": {"language": 3}}}, f"{N}.language"),
        ({"lists": {"newsletter": {"whatsapp_template": "x"}}},
         f"{N}.whatsapp_template"),
        ({"lists": {"newsletter": {"whatsapp_template": {"name": ""}}}},
         f"{N}.whatsapp_template.name"),
        ({"lists": {"newsletter": {"whatsapp_template": {"name": "x", "language": 1}}}},
         f"{N}.whatsapp_template.language"),
        ({"rates": []}, "features.broadcast.rates"),
        ({"rates": {"nope": 1}}, "features.broadcast.rates.nope"),
        ({"rates": {"support-email": 0}}, "features.broadcast.rates.support-email"),
        ({"rates": {"support-email": True}}, "features.broadcast.rates.support-email"),
        ({"timezone": "Mars/Olympus"}, "features.broadcast.timezone"),
        ({"timezone": 1}, "features.broadcast.timezone"),
        ({"stop_hint": {"de": ""}}, "features.broadcast.stop_hint.de"),
        ({"stop_hint": 5}, "features.broadcast.stop_hint"),
    ],
)  # fmt: skip
def test_bad_values_are_refused_with_their_key(section: Any, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        broadcast(section)
    assert caught.value.key == key


def test_it_needs_the_consent_feature() -> None:
    config = parse(example(lambda data: data.update(features={"broadcast": {}})))
    with pytest.raises(ConfigError) as caught:
        features(config)
    assert caught.value.key == "features.broadcast"


def test_the_module_registers_its_room_hook_and_jobs() -> None:
    config = parse(
        example(lambda data: data.update(features={"consent": CONSENT, "broadcast": {}}))
    )
    seams = Seams(config, services=Services())  # type: ignore[arg-type]
    for setup in features(config):
        setup(seams)
    assert BROADCAST.engine is not None and BROADCAST.rooms in seams.room_handlers
    assert any(isinstance(hook, ReceiptHook) for hook in seams.inbound_hooks)
    jobs = {job.name: job for job in seams.jobs}
    assert jobs["broadcast-worker"].at_start and jobs["broadcast-rooms"].at_start
    assert BROADCAST.engine.registry is CONSENT_MODULE.registry


def test_the_example_blocks_are_valid() -> None:
    """The commented consent and broadcast sections of example-config.yaml, as an operator
    would uncomment them."""
    text = EXAMPLE.read_text()
    sections = {}
    for name in ("consent", "broadcast"):
        block = re.search(rf"\n    # {name}:.*\n((?:    #     .*\n)+)", text)
        assert block is not None, name
        lines = [line.replace("    #", "", 1) for line in block.group(1).splitlines()]
        sections[name] = YAML(typ="safe").load("\n".join(lines))
    parsed = broadcast(sections["broadcast"], sections["consent"])
    assert parsed is not None
    assert parsed.lists["newsletter"].accounts == ("support-telegram", "support-email")
    assert parsed.rates == {"support-email": 5} and parsed.timezone == "Europe/Berlin"
