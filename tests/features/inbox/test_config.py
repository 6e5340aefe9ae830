"""The ``features.inbox`` section: teams, default teams and routing rules, every bad value
refused with its key named."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from bridge.config import parse
from bridge.connector import ConfigError
from bridge.features.inbox.config import (
    AssignmentMode,
    FieldCondition,
    InboxConfig,
    InvitePolicy,
    Rule,
    TeamConfig,
    parse_duration,
    parse_inbox_config,
)
from bridge.types import AccountID
from tests.test_config import example

HOURS = {"timezone": "Europe/Berlin", "mon-fri": "09:00-17:00"}
SECTION: dict[str, Any] = {
    "teams": {
        "support": {
            "room": "#support:example.com",
            "members": ["@ann:example.com", "@bob:example.com"],
            "leads": ["@lea:example.com"],
            "assignment": "round_robin",
            "limit": 5,
            "invite": "assignee",
            "waiting_limit": "30m",
            "resolve_idle": "7d",
            "hours": HOURS,
            "replies": {
                "welcome": {"default": "Hello!", "de": "Hallo!"},
                "away": {"default": "We are closed now."},
                "reopened": "Welcome back!",
            },
            "away_interval": "12h",
            "canned": {"thanks": "Thank you, {customer}! {agent} from {team}"},
        },
        "sales": {"members": ["@sam:example.com"]},
    },
    "accounts": {"support-webhook": "support", "support-email": "support"},
    "routing": [
        {"team": "sales", "to": "Sales@Company.test"},
        {"team": "sales", "keywords": ["price", "Quote"]},
        {"team": "support", "start": "help"},
        {"team": "support", "language": "de"},
        {
            "team": "support",
            "account": "support-telegram",
            "field": {"path": "metadata.topic", "equals": "billing"},
        },
    ],
}

Mutation = Callable[[dict[str, Any]], None]


def inbox(section: Any, mutate: Mutation | None = None) -> InboxConfig | None:
    """``section`` parsed as ``features.inbox`` of the example config changed by ``mutate``."""

    def change(data: dict[str, Any]) -> None:
        data["features"] = {"inbox": section}
        if mutate:
            mutate(data)

    config = parse(example(change))
    return parse_inbox_config(config.features["inbox"], config)


def test_full_section() -> None:
    parsed = inbox(SECTION)
    assert parsed is not None
    assert parsed.teams["support"] == TeamConfig(
        name="support",
        room="#support:example.com",
        members=("@ann:example.com", "@bob:example.com"),
        leads=("@lea:example.com",),
        mode=AssignmentMode.ROUND_ROBIN,
        limit=5,
        invite=InvitePolicy.ASSIGNEE,
        waiting_limit=30 * 60,
        resolve_idle=7 * 86400,
        hours_raw=HOURS,
        replies={
            "welcome": {"default": "Hello!", "de": "Hallo!"},
            "away": {"default": "We are closed now."},
            "reopened": {"default": "Welcome back!"},
        },
        away_interval=12 * 3600,
        canned={"thanks": "Thank you, {customer}! {agent} from {team}"},
    )
    assert parsed.teams["sales"] == TeamConfig(
        name="sales", room=None, members=("@sam:example.com",), leads=()
    )
    sales = parsed.teams["sales"]
    assert (sales.mode, sales.invite, sales.limit, sales.hours_raw) == (
        AssignmentMode.MANUAL, InvitePolicy.ASSIGNEE, None, None,
    )  # fmt: skip
    assert parsed.accounts == {"support-webhook": "support", "support-email": "support"}
    assert parsed.rules == (
        Rule(team="sales", to=("sales@company.test",)),
        Rule(team="sales", keywords=("price", "quote")),
        Rule(team="support", start="help"),
        Rule(team="support", language="de"),
        Rule(
            team="support",
            account=AccountID("support-telegram"),
            field_match=FieldCondition(path=("metadata", "topic"), equals="billing"),
        ),
    )


def test_absent_section_is_off() -> None:
    assert inbox(None) is None


def test_team_helpers() -> None:
    parsed = inbox(SECTION)
    assert parsed is not None
    support = parsed.teams["support"]
    assert support.staff == ("@ann:example.com", "@bob:example.com", "@lea:example.com")
    assert support.reply("welcome", "de-AT") == "Hallo!"
    assert support.reply("welcome", "DE") == "Hallo!"
    assert support.reply("welcome", "fr") == "Hello!"
    assert support.reply("welcome", None) == "Hello!"
    assert parsed.teams["sales"].reply("away", "de") is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("1h30m", 5400)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text, "k") == seconds


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change of the section: ``value`` at dotted ``path`` (list items by index)."""

    def change(section: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = section
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def _grant(who: str, grant: Any) -> Mutation:
    def change(data: dict[str, Any]) -> None:
        data["permissions"][who] = grant

    return change


TEAM = "features.inbox.teams.support"
RULES = "features.inbox.routing"
BAD: list[tuple[Callable[[dict[str, Any]], None], Mutation | None, str]] = [
    (_set("teams", {}), None, "features.inbox.teams"),
    (_set("teams", ["support"]), None, "features.inbox.teams"),
    (_set("team", {}), None, "features.inbox.team"),
    (
        _set("teams.sup port", {"members": ["@a:example.com"]}),
        None,
        "features.inbox.teams.sup port",
    ),
    (_set("teams.support.assigment", "manual"), None, f"{TEAM}.assigment"),
    (_set("teams.support.members", []), None, f"{TEAM}.members"),
    (_set("teams.support.members", ["ann"]), None, f"{TEAM}.members"),
    (_set("teams.support.members", ["@ann:example.com"] * 2), None, f"{TEAM}.members"),
    (_set("teams.support.leads", "@lea:example.com"), None, f"{TEAM}.leads"),
    (_set("teams.support.room", "support"), None, f"{TEAM}.room"),
    (_set("teams.support.assignment", "random"), None, f"{TEAM}.assignment"),
    (_set("teams.support.invite", "everyone"), None, f"{TEAM}.invite"),
    (_set("teams.support.limit", 0), None, f"{TEAM}.limit"),
    (_set("teams.support.limit", True), None, f"{TEAM}.limit"),
    (_set("teams.support.waiting_limit", "30"), None, f"{TEAM}.waiting_limit"),
    (_set("teams.support.waiting_limit", 30), None, f"{TEAM}.waiting_limit"),
    (_set("teams.support.resolve_idle", "7 days"), None, f"{TEAM}.resolve_idle"),
    (_set("teams.support.resolve_idle", "0d"), None, f"{TEAM}.resolve_idle"),
    (_set("teams.support.away_interval", "400d"), None, f"{TEAM}.away_interval"),
    (_set("teams.support.replies.welcome.de", ""), None, f"{TEAM}.replies.welcome.de"),
    (_set("teams.support.replies.away", {"de": "Zu"}), None, f"{TEAM}.replies.away"),
    (_set("teams.support.replies.away.x-1!", "Zu"), None, f"{TEAM}.replies.away.x-1!"),
    (_set("teams.support.replies.goodbye", "Bye"), None, f"{TEAM}.replies.goodbye"),
    (_set("teams.support.canned.hi", "Hi {name}"), None, f"{TEAM}.canned.hi"),
    (_set("teams.support.canned.hi", "Hi {customer.x}"), None, f"{TEAM}.canned.hi"),
    (_set("teams.support.canned.hi", "Hi {customer:>9}"), None, f"{TEAM}.canned.hi"),
    (_set("teams.support.canned.hi", "Hi {"), None, f"{TEAM}.canned.hi"),
    (_set("teams.support.canned.hi", " "), None, f"{TEAM}.canned.hi"),
    (_set("teams.support.canned.Hi!", "Hi"), None, f"{TEAM}.canned.Hi!"),
    (_set("teams.support.canned.bridge", "Hi"), None, f"{TEAM}.canned.bridge"),
    (_set("accounts.support-webhook", "billing"), None, "features.inbox.accounts.support-webhook"),
    (_set("accounts.no-such", "support"), None, "features.inbox.accounts.no-such"),
    (_set("routing", {"team": "sales"}), None, RULES),
    (_set("routing.1.team", "billing"), None, f"{RULES}.1.team"),
    (_set("routing.1", {"keywords": ["x"]}), None, f"{RULES}.1.team"),
    (_set("routing.1", {"team": "sales"}), None, f"{RULES}.1"),
    (_set("routing.1", {"team": "sales", "subject": "x"}), None, f"{RULES}.1.subject"),
    (_set("routing.4.account", "tg"), None, f"{RULES}.4.account"),
    (_set("routing.0.to", "sales"), None, f"{RULES}.0.to"),
    (_set("routing.1.keywords", []), None, f"{RULES}.1.keywords"),
    (_set("routing.1.keywords", ["price", ""]), None, f"{RULES}.1.keywords"),
    (_set("routing.2.start", ""), None, f"{RULES}.2.start"),
    (_set("routing.3.language", "german!"), None, f"{RULES}.3.language"),
    (_set("routing.4.field", {"path": "a..b", "equals": 1}), None, f"{RULES}.4.field.path"),
    (_set("routing.4.field", {"path": "a", "equals": [1]}), None, f"{RULES}.4.field.equals"),
    (_set("routing.4.field", {"path": "a", "is": 1}), None, f"{RULES}.4.field.is"),
    # Every member and lead needs a permission on the accounts reaching the team.
    (
        _set("teams.sales.members", ["@eve:partner.test"]),
        None,
        "features.inbox.teams.sales.members",
    ),
    (
        _set("teams.support.leads", ["@pat:partner.test"]),
        _grant("partner.test", {"support-webhook": "staff"}),
        f"{TEAM}.leads",
    ),
]


@pytest.mark.parametrize(("change", "mutate", "key"), BAD)
def test_bad_values_name_the_key(change: Mutation, mutate: Mutation | None, key: str) -> None:
    section = copy.deepcopy(SECTION)
    change(section)
    with pytest.raises(ConfigError) as caught:
        inbox(section, mutate)
    assert caught.value.key == key


def test_permission_on_the_reached_accounts_is_enough() -> None:
    """A partner with a permission on only the accounts that reach the team is fine."""
    section = {
        "teams": {"partner": {"members": ["@pat:partner.test"]}},
        "accounts": {"support-webhook": "partner"},
        "routing": [{"team": "partner", "account": "support-webhook", "keywords": ["x"]}],
    }
    parsed = inbox(section, _grant("partner.test", {"support-webhook": "staff"}))
    assert parsed is not None and parsed.teams["partner"].members == ("@pat:partner.test",)


def test_one_welcome_per_customer() -> None:
    """``features.welcome`` and a team's welcome reply may not both greet one account's
    customers; each alone is fine."""

    def welcome(data: dict[str, Any]) -> None:
        data["features"]["welcome"] = {"support-webhook": "Hi!"}

    section = copy.deepcopy(SECTION)
    with pytest.raises(ConfigError) as caught:
        inbox(section, welcome)
    assert caught.value.key == "features.inbox.teams.support.replies.welcome"
    assert "support-webhook" in str(caught.value)
    del section["teams"]["support"]["replies"]["welcome"]
    assert inbox(section, welcome) is not None
