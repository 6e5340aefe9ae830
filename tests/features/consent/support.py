"""Shared pieces of the consent tests: a config with two lists, a clock, a fake services
layer that records texts, notices and files."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.features.consent.config import ConsentConfig, ConsentList, TemplatePolicy
from bridge.features.consent.registry import Registry
from bridge.seams import ConversationRef
from bridge.types import AccountID, RemoteChatID
from tests.features.inbox.test_replies import FakeServices

HOOK = AccountID("support-webhook")
MAIL = AccountID("support-email")
NEWS = ConsentList("newsletter", "Yes, send me the newsletter.", "2026-01", "Newsletter")
ORDERS = ConsentList("order-updates", "Yes, tell me about my orders.", "1", "Order updates")
CONFIG = ConsentConfig(
    lists={"newsletter": NEWS, "order-updates": ORDERS},
    templates={MAIL: TemplatePolicy.LENIENT},
)
T0 = 1_780_000_000_000


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        self.now += 1000
        return self.now


def registry(config: ConsentConfig = CONFIG) -> Registry:
    return Registry(config, clock=Clock())


def ref(chat: str = "ann", account: AccountID = HOOK) -> ConversationRef:
    return ConversationRef(account, RemoteChatID(chat), f"!{chat}:example.com")


@dataclass
class Services(FakeServices):
    notices: list[tuple[str, str, str | None]] = field(default_factory=list)
    files: list[tuple[str, bytes, str, str, str]] = field(default_factory=list)
    levels: dict[str, str] = field(default_factory=dict)

    async def notice(self, room_id: str, text: str, *, txn: str | None = None) -> str | None:
        if txn is None or all(t != txn for _, _, t in self.notices):
            self.notices.append((room_id, text, txn))
        return "$notice"

    async def post_file(
        self, room_id: str, data: bytes, filename: str, mimetype: str, *, txn: str
    ) -> str | None:
        self.files.append((room_id, data, filename, mimetype, txn))
        return "$file"

    def level(self, actor: str, account: str | None = None) -> str:
        return self.levels.get(actor, "staff")
