"""Choosing the team of a new conversation from what is known at its start.

The rules are tried in order and the first whose conditions all hold wins; without a match,
the channel account's default team; without one, no team (the conversation stays with the
account's ``staff``). Matching is pure and cheap: it runs before the first message of every
new conversation is bridged."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ...types import AccountID
from .config import FieldCondition, InboxConfig, Rule

_MISSING = object()


@dataclass(frozen=True)
class RoutingFacts:
    """What a conversation's start tells about it; None where the channel does not say."""

    account: AccountID
    to_address: str | None = None
    """The address the customer wrote to (email)."""
    start_payload: str | None = None
    """A Telegram ``/start`` payload or the text of a WhatsApp click-to-chat link."""
    first_text: str | None = None
    """The text of the customer's first message."""
    language: str | None = None
    """The customer's language as the channel gives it (``de``, ``pt-BR``, ``en_US``)."""
    fields: Mapping[str, Any] = field(default_factory=dict)
    """A webhook payload's fields (``metadata.topic`` reads ``fields["metadata"]["topic"]``)."""


def choose_team(config: InboxConfig, facts: RoutingFacts) -> str | None:
    """The team of a new conversation: the first matching rule's, else the account's default
    team, else None."""
    for rule in config.rules:
        if matches(rule, facts):
            return rule.team
    return config.accounts.get(facts.account)


def matches(rule: Rule, facts: RoutingFacts) -> bool:
    """Whether every condition of ``rule`` holds for ``facts``."""
    if rule.account is not None and rule.account != facts.account:
        return False
    if rule.to and (facts.to_address or "").strip().lower() not in rule.to:
        return False
    if rule.start is not None and (facts.start_payload or "").strip().lower() != rule.start:
        return False
    if rule.keywords and not _keyword_pattern(rule.keywords).search(facts.first_text or ""):
        return False
    if rule.language is not None and not _same_language(rule.language, facts.language):
        return False
    return rule.field_match is None or _field_holds(rule.field_match, facts.fields)


@lru_cache(maxsize=256)
def _keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern[str]:
    """Any of ``keywords`` as whole words (a phrase's spaces match any run of spaces)."""
    words = "|".join(r"\s+".join(map(re.escape, keyword.split())) for keyword in keywords)
    return re.compile(rf"(?<!\w)(?:{words})(?!\w)", re.IGNORECASE)


def _same_language(wanted: str, given: str | None) -> bool:
    """``de`` matches ``de``, ``de-AT`` and ``de_de``; ``pt-br`` matches only ``pt-BR``."""
    if not given:
        return False
    tag = given.strip().replace("_", "-").lower()
    return tag == wanted or tag.startswith(wanted + "-")


def _field_holds(condition: FieldCondition, fields: Mapping[str, Any]) -> bool:
    value: Any = fields
    for part in condition.path:
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, Sequence) and not isinstance(value, str) and part.isdigit():
            value = value[int(part)] if int(part) < len(value) else _MISSING
        else:
            return False
        if value is _MISSING:
            return False
    if isinstance(value, bool) or isinstance(condition.equals, bool):
        return value is condition.equals  # True == 1, but true must not match the number 1
    return bool(value == condition.equals)
