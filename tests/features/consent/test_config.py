"""The ``features.consent`` section: lists, opt-out keywords and confirmations, template
policies; the defaults; every bad value refused with its key named; the commented block of
the example config is valid once uncommented."""

from __future__ import annotations

import re
from typing import Any

import pytest
from ruamel.yaml import YAML

from bridge.app import features
from bridge.config import parse
from bridge.connector import ConfigError
from bridge.features.consent.config import (
    DEFAULT_CONFIRMATION_DE,
    DEFAULT_KEYWORDS,
    ConsentConfig,
    ConsentList,
    TemplatePolicy,
    parse_consent_config,
    text_hash,
)
from tests.test_config import EXAMPLE, example

SECTION: dict[str, Any] = {
    "lists": {
        "newsletter": {"text": "Yes, send me the newsletter.", "version": "2026-01"},
        "order-updates": {"text": "Order news, please.", "version": 3, "title": "Orders"},
    },
    "opt_out": {
        "keywords": {"default": ["STOP", "END"], "de": ["Stopp", "abmelden"]},
        "confirmation": {"default": "Bye: {lists}", "de": "Tschüss: {lists}"},
    },
    "templates": {"support-whatsapp": "lenient", "support-webhook": "strict"},
    "record_ip": True,
}


def consent(section: Any) -> ConsentConfig | None:
    config = parse(example(lambda data: data.update(features={"consent": section})))
    return parse_consent_config(config.features["consent"], config)


def test_full_section() -> None:
    parsed = consent(SECTION)
    assert parsed is not None
    assert parsed.lists == {
        "newsletter": ConsentList(
            "newsletter",
            "Yes, send me the newsletter.",
            "2026-01",
            "newsletter",
            ("NEWSLETTER",),
            "newsletter",
        ),
        "order-updates": ConsentList(
            "order-updates",
            "Order news, please.",
            "3",
            "Orders",
            ("ORDER-UPDATES",),
            "order-updates",
        ),
    }
    assert parsed.lists["newsletter"].asked_by(" newsletter! ")
    assert parsed.lists["newsletter"].offered("support-telegram")
    assert parsed.confirm_hours == 48
    assert parsed.public_url.startswith("http://127.0.0.1:")
    assert parsed.lists["newsletter"].hash == text_hash("Yes, send me the newsletter.")
    assert parsed.opt_out.match(" stop! ") == "default"
    assert parsed.opt_out.match("ABMELDEN.") == "de"
    assert parsed.opt_out.match("UNSUBSCRIBE") is None  # replaced, not added to
    assert parsed.opt_out.confirm("de-AT") == "Tschüss: {lists}"
    assert parsed.policy("support-whatsapp") == TemplatePolicy.LENIENT
    assert parsed.policy("support-email") == TemplatePolicy.STRICT
    assert parsed.record_ip


def test_defaults() -> None:
    parsed = consent({})
    assert parsed is not None
    assert (parsed.lists, parsed.templates, parsed.record_ip) == ({}, {}, False)
    assert parsed.opt_out.keywords == {"default": DEFAULT_KEYWORDS}
    for word in ("stop", "Stopp!", "abmelden", "Unsubscribe.", "стоп", "Отписаться!!", "«СТОП»"):
        assert parsed.opt_out.match(word) == "default", word
    for text in ("please stop", "stop it", "", "!!", "STOP STOP", "stopped"):
        assert parsed.opt_out.match(text) is None, text
    assert parsed.opt_out.confirm("de") == DEFAULT_CONFIRMATION_DE
    assert "{lists}" in parsed.opt_out.confirm(None)
    assert parsed.policy("support-whatsapp") == TemplatePolicy.STRICT


def test_absent_section_is_off() -> None:
    assert consent(None) is None


def test_the_example_block_is_valid() -> None:
    text = EXAMPLE.read_text()
    block = re.search(r"\n    # consent:\n((?:    #     .*\n)+)", text)
    assert block is not None
    lines = [line.replace("    #", "", 1) for line in block.group(1).splitlines()]
    section = YAML(typ="safe").load("\n".join(lines))
    parsed = consent(section)
    assert parsed is not None and list(parsed.lists) == ["newsletter"]
    assert parsed.opt_out.match("Отписаться") == "default"


def test_the_feature_is_registered() -> None:
    config = parse(example(lambda data: data.update(features={"consent": SECTION})))
    assert len(features(config)) == 1


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ([], "features.consent"),
        ({"list": {}}, "features.consent.list"),
        ({"record_ip": "yes"}, "features.consent.record_ip"),
        ({"lists": []}, "features.consent.lists"),
        ({"lists": {"news letter": {"text": "x", "version": "1"}}},
         "features.consent.lists.news letter"),
        ({"lists": {"n": "text"}}, "features.consent.lists.n"),
        ({"lists": {"n": {"version": "1"}}}, "features.consent.lists.n.text"),
        ({"lists": {"n": {"text": " ", "version": "1"}}}, "features.consent.lists.n.text"),
        ({"lists": {"n": {"text": "x" * 4001, "version": "1"}}},
         "features.consent.lists.n.text"),
        ({"lists": {"n": {"text": "x"}}}, "features.consent.lists.n.version"),
        ({"lists": {"n": {"text": "x", "version": True}}}, "features.consent.lists.n.version"),
        ({"lists": {"n": {"text": "x", "version": "v" * 65}}},
         "features.consent.lists.n.version"),
        ({"lists": {"n": {"text": "x", "version": "1", "title": ""}}},
         "features.consent.lists.n.title"),
        ({"lists": {"n": {"text": "x", "version": "1", "texts": "y"}}},
         "features.consent.lists.n.texts"),
        ({"opt_out": []}, "features.consent.opt_out"),
        ({"opt_out": {"words": []}}, "features.consent.opt_out.words"),
        ({"opt_out": {"keywords": []}}, "features.consent.opt_out.keywords"),
        ({"opt_out": {"keywords": {}}}, "features.consent.opt_out.keywords"),
        ({"opt_out": {"keywords": {"german!": ["STOP"]}}},
         "features.consent.opt_out.keywords.german!"),
        ({"opt_out": {"keywords": {"de": []}}}, "features.consent.opt_out.keywords.de"),
        ({"opt_out": {"keywords": {"de": ["STOP", 5]}}},
         "features.consent.opt_out.keywords.de[1]"),
        ({"opt_out": {"keywords": {"de": ["!!"]}}}, "features.consent.opt_out.keywords.de[0]"),
        ({"opt_out": {"keywords": {"de": ["x" * 33]}}},
         "features.consent.opt_out.keywords.de[0]"),
        ({"opt_out": {"confirmation": {"de": "Tschüss"}}},
         "features.consent.opt_out.confirmation.default"),
        ({"opt_out": {"confirmation": {"default": ""}}},
         "features.consent.opt_out.confirmation.default"),
        ({"opt_out": {"confirmation": "Bye"}}, "features.consent.opt_out.confirmation"),
        ({"lists": {"n": {"text": "x", "version": "1", "keywords": []}}},
         "features.consent.lists.n.keywords"),
        ({"lists": {"stop": {"text": "x", "version": "1"}}},  # its keyword would be STOP
         "features.consent.lists.stop.keywords"),
        ({"lists": {"n": {"text": "x", "version": "1", "keywords": ["abmelden"]}}},
         "features.consent.lists.n.keywords"),
        ({"lists": {"n": {"text": "x", "version": "1", "keywords": ["NEWS"]},
                    "m": {"text": "y", "version": "1", "keywords": ["news!"]}}},
         "features.consent.lists.m.keywords"),
        ({"lists": {"n": {"text": "x", "version": "1", "start": "a b"}}},
         "features.consent.lists.n.start"),
        ({"lists": {"n": {"text": "x", "version": "1"}, "m": {"text": "y", "version": "1",
                                                               "start": "n"}}},
         "features.consent.lists.n.start"),
        ({"lists": {"n": {"text": "x", "version": "1", "accounts": "support-telegram"}}},
         "features.consent.lists.n.accounts"),
        ({"lists": {"n": {"text": "x", "version": "1", "accounts": ["nope"]}}},
         "features.consent.lists.n.accounts[0]"),
        ({"public_url": "ftp://x"}, "features.consent.public_url"),
        ({"public_url": 5}, "features.consent.public_url"),
        ({"secret": "short"}, "features.consent.secret"),
        ({"confirm_hours": 0}, "features.consent.confirm_hours"),
        ({"confirm_hours": "1"}, "features.consent.confirm_hours"),
        ({"templates": ["support-whatsapp"]}, "features.consent.templates"),
        ({"templates": {"nope": "strict"}}, "features.consent.templates.nope"),
        ({"templates": {"support-whatsapp": "loose"}},
         "features.consent.templates.support-whatsapp"),
    ],
)  # fmt: skip
def test_bad_values_are_refused_with_their_key(section: Any, key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        consent(section)
    assert refused.value.key == key
