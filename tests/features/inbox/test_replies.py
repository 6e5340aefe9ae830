"""Automatic replies: welcome, away and reopened messages, once each, in the customer's
language, never to an automatic message; on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.events import RemoteChat, RemoteEdit, RemoteEvent, RemoteMessage, RemoteUser
from bridge.features.inbox.config import InboxConfig, TeamConfig
from bridge.features.inbox.hours import BusinessHours, parse_business_hours
from bridge.features.inbox.replies import AutoReplies
from bridge.seams import ConversationRef, Inbound
from bridge.types import AccountID, MessageID, RemoteChatID, RemoteUserID
from tests.db.support import database, databases

__all__ = ["database", "databases", "FakeServices"]

ACC = AccountID("support-email")
HOUR = 3600
MONDAY_NOON = datetime(2026, 12, 7, 12, 0, tzinfo=UTC).timestamp()
MONDAY_NIGHT = datetime(2026, 12, 7, 22, 0, tzinfo=UTC).timestamp()
HOURS = parse_business_hours({"timezone": "UTC", "weekly": {"mon-fri": "09:00-17:00"}}, "hours")
REPLIES = {
    "welcome": {"default": "Welcome!", "de": "Willkommen!"},
    "away": {"default": "We are closed.", "de": "Wir haben geschlossen."},
    "reopened": {"default": "Welcome back."},
}


@dataclass
class Sent:
    conversation: ConversationRef
    text: str
    reason: str
    dedup: str | None


@dataclass
class FakeServices:
    """Records what features queue; a dedup key queues once, as the real services do."""

    sent: list[Sent] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    admins: set[str] = field(default_factory=set)

    async def send_text(
        self,
        conversation: ConversationRef,
        text: str,
        *,
        reason: str,
        dedup: str | None = None,
        html: str | None = None,
    ) -> bool:
        if dedup is not None and any(s.dedup == dedup for s in self.sent):
            return False
        self.sent.append(Sent(conversation, text, reason, dedup))
        return True

    async def notice(self, room_id: str, text: str, *, txn: str | None = None) -> str | None:
        return None

    async def invite(self, room_id: str, user: str, account: str) -> bool:
        return True

    async def displayname(self, room_id: str, user: str) -> str:
        return self.names.get(user, user[1:].split(":", 1)[0])

    def level(self, actor: str, account: str | None = None) -> str:
        return "admin" if actor in self.admins else "staff"

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.sent]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def team(**changes: Any) -> TeamConfig:
    values: dict[str, Any] = {
        "name": "support", "room": None, "members": ("@ann:example.com",), "leads": (),
        "replies": REPLIES, "away_interval": 12 * HOUR,
    }  # fmt: skip
    return TeamConfig(**{**values, **changes})


def replies(
    clock: Clock, hours: BusinessHours | None = HOURS, **changes: Any
) -> tuple[AutoReplies, FakeServices]:
    services = FakeServices()
    config = InboxConfig(teams={"support": team(**changes)}, accounts={}, rules=())
    return AutoReplies(services, config, {"support": hours}, clock=clock), services


def message(n: int = 1, chat: str = "ann@example.org", **fields: Any) -> Inbound:
    event: RemoteEvent = RemoteMessage(
        chat=RemoteChat(RemoteChatID(chat)),
        sender=RemoteUser(RemoteUserID(chat)),
        message_id=MessageID(f"m{n}"),
        text="hello",
        **fields,
    )
    return Inbound(ConversationRef(ACC, RemoteChatID(chat), "!room:example.com"), event, n == 1)


async def test_welcome_on_first_contact_once(database: object) -> None:
    auto, services = replies(Clock(MONDAY_NOON))
    first = message(1)
    await auto.after_inbound(first, "support", first_contact=True, reopened=False)
    await auto.after_inbound(first, "support", first_contact=True, reopened=False)  # a retry
    await auto.after_inbound(message(2), "support", first_contact=False, reopened=False)
    assert [(s.text, s.reason) for s in services.sent] == [("Welcome!", "welcome")]


async def test_away_only_outside_hours_and_once_per_interval(database: object) -> None:
    clock = Clock(MONDAY_NOON)
    auto, services = replies(clock)
    await auto.after_inbound(message(1), "support", first_contact=False, reopened=False)
    assert services.sent == []
    clock.now = MONDAY_NIGHT
    await auto.after_inbound(message(2), "support", first_contact=False, reopened=False)
    await auto.after_inbound(message(2), "support", first_contact=False, reopened=False)
    clock.now += HOUR
    await auto.after_inbound(message(3), "support", first_contact=False, reopened=False)
    assert [(s.text, s.reason) for s in services.sent] == [("We are closed.", "away")]
    clock.now += 12 * HOUR  # Tuesday 11:00, open again
    await auto.after_inbound(message(4), "support", first_contact=False, reopened=False)
    clock.now += 12 * HOUR  # Tuesday 23:00: closed, the interval has passed
    await auto.after_inbound(message(5), "support", first_contact=False, reopened=False)
    assert services.texts == ["We are closed.", "We are closed."]


async def test_away_interval_is_per_conversation(database: object) -> None:
    auto, services = replies(Clock(MONDAY_NIGHT))
    for chat in ("ann@example.org", "bob@example.org"):
        await auto.after_inbound(message(2, chat), "support", first_contact=False, reopened=False)
    assert [s.conversation.chat for s in services.sent] == ["ann@example.org", "bob@example.org"]


async def test_welcome_and_away_together_and_always_open_teams(database: object) -> None:
    auto, services = replies(Clock(MONDAY_NIGHT))
    await auto.after_inbound(message(1), "support", first_contact=True, reopened=False)
    assert services.texts == ["Welcome!", "We are closed."]
    auto, services = replies(Clock(MONDAY_NIGHT), hours=None)
    await auto.after_inbound(message(2), "support", first_contact=False, reopened=False)
    assert services.sent == []


async def test_reopened(database: object) -> None:
    auto, services = replies(Clock(MONDAY_NOON))
    await auto.after_inbound(message(7), "support", first_contact=False, reopened=True)
    await auto.after_inbound(message(7), "support", first_contact=False, reopened=True)
    assert [(s.text, s.reason) for s in services.sent] == [("Welcome back.", "reopened")]


async def test_language_and_its_fallback(database: object) -> None:
    auto, services = replies(Clock(MONDAY_NIGHT))
    for n, language in enumerate(("de-AT", "fr", None), start=1):
        routing = {"routing": {"language": language}} if language else {}
        inbound = message(n, chat=f"c{n}@example.org", metadata=routing)
        await auto.after_inbound(inbound, "support", first_contact=True, reopened=False)
    assert services.texts == [
        "Willkommen!", "Wir haben geschlossen.",  # de-AT -> de
        "Welcome!", "We are closed.",  # fr -> default
        "Welcome!", "We are closed.",
    ]  # fmt: skip


async def test_a_team_without_replies_sends_nothing(database: object) -> None:
    auto, services = replies(Clock(MONDAY_NIGHT), replies={})
    await auto.after_inbound(message(1), "support", first_contact=True, reopened=True)
    await auto.after_inbound(message(1), "elsewhere", first_contact=True, reopened=True)
    assert services.sent == []


async def test_nothing_for_automatic_messages(database: object) -> None:
    auto, services = replies(Clock(MONDAY_NIGHT))
    automatic = [
        message(1, notice=True),
        message(1, chat="b@example.org", metadata={"portal": {"last_automatic": True}}),
    ]
    for inbound in automatic:
        await auto.after_inbound(inbound, "support", first_contact=True, reopened=True)
    edit = RemoteEdit(
        chat=RemoteChat(RemoteChatID("c")), sender=RemoteUser(RemoteUserID("c")), text="x"
    )
    ref = ConversationRef(ACC, RemoteChatID("c"), None)
    await auto.after_inbound(
        Inbound(ref, edit, True), "support", first_contact=True, reopened=True
    )
    assert services.sent == []
