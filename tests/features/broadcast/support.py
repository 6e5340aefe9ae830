"""Shared pieces of the broadcast tests: a config over four channel accounts, a fake services
layer whose ``send_direct`` records what went where (and can fail or act in between), a fake
clock whose sleeps only move it forward, and subscribers imported with their proof."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bridge.connector import Capabilities
from bridge.features.broadcast.config import BroadcastConfig, BroadcastList, Template
from bridge.features.broadcast.engine import Engine
from bridge.features.consent.config import ConsentConfig, ConsentList
from bridge.features.consent.registry import ImportProof, Registry
from bridge.seams import DirectMessage
from bridge.types import AccountID
from tests.features.consent.support import T0, Clock

HOOK = AccountID("support-webhook")
MAIL = AccountID("support-email")
TG = AccountID("support-telegram")
WA = AccountID("support-whatsapp")
TYPES: dict[str, str] = {HOOK: "webhook", MAIL: "email", TG: "telegram", WA: "whatsapp"}
NEWS = ConsentList("newsletter", "Yes, send me the newsletter.", "2026-01", "Newsletter")
CONSENT = ConsentConfig(lists={"newsletter": NEWS}, public_url="https://bridge.example.com")


def config(
    accounts: tuple[AccountID, ...] = (HOOK,), template: Template | None = None
) -> BroadcastConfig:
    item = BroadcastList("newsletter", "Newsletter", accounts, template)
    return BroadcastConfig(
        consent=CONSENT, lists={"newsletter": item}, staff=("@lea:example.com",),
        rates={HOOK: 10.0}, channel_types=TYPES,
    )  # fmt: skip


class FakeTime:
    """A monotonic clock that sleeps move forward, and nothing waits for real."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


Before = Callable[[str, str, DirectMessage], Awaitable[None]]


@dataclass
class Services:
    sent: list[tuple[str, str, DirectMessage]] = field(default_factory=list)
    before: Before | None = None
    """Called before each send; may raise (a delivery error) or act (a pause, an opt-out)."""
    notices: list[tuple[str, str, str | None]] = field(default_factory=list)
    edits: list[tuple[str, str, str]] = field(default_factory=list)
    levels: dict[str, str] = field(default_factory=dict)
    rooms: dict[str, str] = field(default_factory=dict)

    async def send_direct(self, account: str, chat: str, message: DirectMessage) -> str:
        if self.before is not None:
            await self.before(account, chat, message)
        self.sent.append((account, chat, message))
        return f"m{len(self.sent)}"

    async def notice(self, room_id: str, text: str, *, txn: str | None = None) -> str | None:
        if txn is None or all(t != txn for _, _, t in self.notices):
            self.notices.append((room_id, text, txn))
        return "$progress"

    async def edit_notice(self, room_id: str, event_id: str, text: str, *, txn: str) -> None:
        self.edits.append((room_id, event_id, text))

    def channel_title(self, account: str) -> str:
        return TYPES.get(AccountID(account), account).capitalize()

    def capabilities(self, account: str) -> Capabilities | None:
        return Capabilities(rate_limits={"global": 30.0}) if account == TG else Capabilities()

    def level(self, actor: str, account: str | None = None) -> str:
        return self.levels.get(actor, "staff")

    async def bot_room(
        self, key: str, name: str, topic: str, invite: list[str], *, space: bool = False
    ) -> str:
        return self.rooms.setdefault(key, f"!{key}:example.com")

    def chats(self) -> list[str]:
        return [chat for _, chat, _ in self.sent]


def engine(
    services: Services, cfg: BroadcastConfig | None = None, **options: object
) -> tuple[Engine, Registry, FakeTime]:
    fake = FakeTime()
    registry = Registry(CONSENT, clock=Clock())
    made = Engine(
        cfg or config(), registry, services, monotonic=fake, sleep=fake.sleep,  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )  # fmt: skip
    return made, registry, fake


PROOF = ImportProof(T0 - 86_400_000, "2026-01", "the old CRM, export of 2026-01-05", "test")


async def subscribe(registry: Registry, account: str, *users: str) -> list[int]:
    """Import ``users`` on ``account`` as confirmed subscribers of the newsletter."""
    return [await registry.import_identity(account, user, "newsletter", PROOF) for user in users]
