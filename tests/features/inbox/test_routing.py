"""Routing: the first matching rule chooses the team, else the account's default team."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.events import RemoteChat, RemoteMessage, RemoteUser
from bridge.features.inbox.config import InboxConfig
from bridge.features.inbox.hooks import routing_facts
from bridge.features.inbox.routing import RoutingFacts, choose_team
from bridge.types import AccountID, RemoteChatID, RemoteUserID
from tests.features.inbox.test_config import inbox

WEBHOOK = AccountID("support-webhook")
TELEGRAM = AccountID("support-telegram")
EMAIL = AccountID("support-email")
WHATSAPP = AccountID("support-whatsapp")
MEMBERS = {"members": ["@ann:example.com"]}


def routed(rules: list[dict[str, Any]], accounts: dict[str, str] | None = None) -> InboxConfig:
    names = {rule["team"] for rule in rules} | set((accounts or {}).values())
    parsed = inbox(
        {"teams": {n: MEMBERS for n in names}, "accounts": accounts or {}, "routing": rules}
    )
    assert parsed is not None
    return parsed


def test_first_match_wins() -> None:
    config = routed(
        [
            {"team": "sales", "keywords": ["price"]},
            {"team": "support", "keywords": ["help", "price"]},
        ]
    )
    assert choose_team(config, RoutingFacts(WEBHOOK, first_text="Help: the price?")) == "sales"
    assert choose_team(config, RoutingFacts(WEBHOOK, first_text="Help me")) == "support"


def test_all_conditions_of_a_rule_must_hold() -> None:
    config = routed([{"team": "billing", "account": "support-telegram", "keywords": ["invoice"]}])
    assert choose_team(config, RoutingFacts(TELEGRAM, first_text="my invoice")) == "billing"
    assert choose_team(config, RoutingFacts(WEBHOOK, first_text="my invoice")) is None
    assert choose_team(config, RoutingFacts(TELEGRAM, first_text="hello")) is None


def test_default_team_and_no_team() -> None:
    config = routed([{"team": "sales", "keywords": ["price"]}], {"support-webhook": "support"})
    assert choose_team(config, RoutingFacts(WEBHOOK, first_text="hello")) == "support"
    assert choose_team(config, RoutingFacts(WEBHOOK, first_text="a price")) == "sales"
    assert choose_team(config, RoutingFacts(TELEGRAM, first_text="hello")) is None
    no_rules = inbox({"teams": {"support": MEMBERS}})
    assert no_rules is not None and choose_team(no_rules, RoutingFacts(WEBHOOK)) is None


@pytest.mark.parametrize(
    ("rule", "facts", "expected"),
    [
        # The account alone.
        ({"account": "support-telegram"}, RoutingFacts(TELEGRAM), True),
        ({"account": "support-telegram"}, RoutingFacts(WEBHOOK), False),
        # The address written to, without regard to case.
        ({"to": "sales@company.test"}, RoutingFacts(EMAIL, to_address="SALES@company.test"), True),
        ({"to": ["a@x.test", "b@x.test"]}, RoutingFacts(EMAIL, to_address="b@x.test"), True),
        ({"to": "sales@company.test"}, RoutingFacts(EMAIL, to_address="help@company.test"), False),
        ({"to": "sales@company.test"}, RoutingFacts(EMAIL), False),
        # A /start payload or click-to-chat text, whole.
        ({"start": "help"}, RoutingFacts(TELEGRAM, start_payload="Help"), True),
        ({"start": "help"}, RoutingFacts(WHATSAPP, start_payload=" help "), True),
        ({"start": "help"}, RoutingFacts(TELEGRAM, start_payload="helpdesk"), False),
        ({"start": "help"}, RoutingFacts(TELEGRAM, first_text="help"), False),
        # Keywords: whole words or phrases, any case.
        ({"keywords": ["price"]}, RoutingFacts(WEBHOOK, first_text="What PRICE?"), True),
        ({"keywords": ["price"]}, RoutingFacts(WEBHOOK, first_text="the prices"), False),
        ({"keywords": ["price"]}, RoutingFacts(WEBHOOK, first_text="overprice"), False),
        (
            {"keywords": ["price list"]},
            RoutingFacts(WEBHOOK, first_text="your price\n list"),
            True,
        ),
        ({"keywords": ["c++"]}, RoutingFacts(WEBHOOK, first_text="a c++ job"), True),
        ({"keywords": ["price"]}, RoutingFacts(WEBHOOK), False),
        # The customer's language; a primary tag matches its regions.
        ({"language": "de"}, RoutingFacts(TELEGRAM, language="de"), True),
        ({"language": "de"}, RoutingFacts(TELEGRAM, language="de_AT"), True),
        ({"language": "de"}, RoutingFacts(TELEGRAM, language="den"), False),
        ({"language": "pt-BR"}, RoutingFacts(TELEGRAM, language="pt-br"), True),
        ({"language": "pt-BR"}, RoutingFacts(TELEGRAM, language="pt"), False),
        ({"language": "de"}, RoutingFacts(TELEGRAM), False),
        # A field of a webhook payload by its dotted path.
        (
            {"field": {"path": "metadata.topic", "equals": "billing"}},
            RoutingFacts(WEBHOOK, fields={"metadata": {"topic": "billing"}}),
            True,
        ),
        (
            {"field": {"path": "metadata.topic", "equals": "billing"}},
            RoutingFacts(WEBHOOK, fields={"metadata": {"topic": "sales"}}),
            False,
        ),
        (
            {"field": {"path": "metadata.topic", "equals": "billing"}},
            RoutingFacts(WEBHOOK, fields={"metadata": "billing"}),
            False,
        ),
        (
            {"field": {"path": "tags.1", "equals": 7}},
            RoutingFacts(WEBHOOK, fields={"tags": [3, 7]}),
            True,
        ),
        (
            {"field": {"path": "tags.2", "equals": 7}},
            RoutingFacts(WEBHOOK, fields={"tags": [3, 7]}),
            False,
        ),
        (
            {"field": {"path": "vip", "equals": True}},
            RoutingFacts(WEBHOOK, fields={"vip": 1}),
            False,
        ),
        (
            {"field": {"path": "vip", "equals": True}},
            RoutingFacts(WEBHOOK, fields={"vip": True}),
            True,
        ),
    ],
)
def test_each_condition(rule: dict[str, Any], facts: RoutingFacts, expected: bool) -> None:
    config = routed([{"team": "matched", **rule}])
    assert choose_team(config, facts) == ("matched" if expected else None)


def test_whatsapp_click_to_chat_text_and_ad_referral_route() -> None:
    """What the WhatsApp connector gives (``metadata["routing"]``) reaches the rules."""
    config = routed(
        [
            {"team": "ads", "account": str(WHATSAPP), "field": {
                "path": "referral.source_id", "equals": "ad-123"}},
            {"team": "spring", "account": str(WHATSAPP), "start": "spring offer"},
        ]
    )  # fmt: skip

    def first(text: str, referral: dict[str, str] | None = None) -> RemoteMessage:
        routing: dict[str, Any] = {"start": text}
        if referral:
            routing["fields"] = {"referral": referral}
        chat, user = RemoteChat(RemoteChatID("491")), RemoteUser(RemoteUserID("491"))
        return RemoteMessage(chat=chat, sender=user, text=text, metadata={"routing": routing})

    assert choose_team(config, routing_facts(WHATSAPP, first("Spring offer"))) == "spring"
    ad = first("Spring offer", {"source_id": "ad-123"})
    assert choose_team(config, routing_facts(WHATSAPP, ad)) == "ads"
    assert choose_team(config, routing_facts(WHATSAPP, first("Hello"))) is None
