"""What the MAX connector tests share: ids of the customers, Matrix messages, delivering an
update and waiting for what the host recorded."""

from __future__ import annotations

from typing import Any

from bridge.events import RemoteEvent
from bridge.types import AccountID, PortalKey, RemoteChatID
from tests.contract.harness import FakeHost, staff_message

from .harness import MaxHarness
from .simulator import MaxSimulator, WebhookDelivery

ALICE = 50_100_001
BOB = 50_100_002
GROUP = 7_100_000_000_001
ACCOUNT = AccountID("support-max")


def dialog(sim: MaxSimulator, user_id: int = ALICE) -> str:
    return str(sim.dialog_of(user_id))


def portal(chat: str) -> PortalKey:
    return PortalKey(ACCOUNT, RemoteChatID(chat))


def staff(chat: str, text: str, **fields: Any) -> Any:
    return staff_message(portal(chat), text, **fields)


async def deliver(harness: MaxHarness, update: dict[str, Any]) -> WebhookDelivery:
    delivery = await harness.sim.deliver(update)
    assert delivery is not None, "no webhook subscription"
    return delivery


async def recorded(
    harness: MaxHarness, host: FakeHost, update: dict[str, Any], count: int = 1
) -> list[RemoteEvent]:
    """Deliver ``update`` (answered 200) and return the host's events, ``count`` of them."""
    delivery = await deliver(harness, update)
    assert delivery.status == 200, delivery.answer
    return await host.wait_for_events(count)
