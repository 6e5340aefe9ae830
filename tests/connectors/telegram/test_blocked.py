"""A customer blocking the bot: the ``my_chat_member`` update and the 403 on sending both
become a ``RemoteBlocked`` for the host; unblocking and groups are no event. Also the bot's
username as the account's public address."""

from __future__ import annotations

import pytest

from bridge.connector import PermanentDeliveryError
from bridge.connectors.telegram import TelegramConnector
from bridge.events import RemoteBlocked, RemoteMessage
from tests.contract.harness import FakeHost

from . import connector_support
from . import updates as tg
from .connector_support import ALICE, BOB, matrix_message, text_update
from .harness import TelegramHarness
from .simulator import TelegramSimulator

harness = connector_support.harness
sim = connector_support.sim
connector = connector_support.connector
hook = connector_support.hook


def blocks(host: FakeHost) -> list[RemoteBlocked]:
    return [e for e in host.events if isinstance(e, RemoteBlocked)]


async def test_blocking_the_bot_is_handed_over_and_unblocking_is_not(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost, connector: TelegramConnector
) -> None:
    assert "my_chat_member" in (sim.allowed_updates or [])
    update = sim.block_bot(ALICE)
    await sim.wait_for_confirmed(update["update_id"])
    (block,) = blocks(host)
    assert block.chat.id == str(ALICE) and not block.chat.is_group
    assert block.sender.id == str(ALICE)
    assert block.sender.displayname == "Alice Archer"
    assert block.block_id == str(update["my_chat_member"]["date"])

    unblock = sim.block_bot(ALICE, blocked=False)
    await harness.deliver(text_update("back again"))
    assert sim.is_confirmed(unblock["update_id"])
    assert [type(e) for e in host.events] == [RemoteBlocked, RemoteMessage]
    assert sim.filtered_updates == []


async def test_a_block_delivered_twice_to_the_webhook_is_one_block(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost, hook: TelegramConnector
) -> None:
    assert "my_chat_member" in (sim.allowed_updates or [])
    sim.set_blocked(BOB)
    bob = tg.user(BOB, "Bob")
    update = sim.deliver_webhook_twice(
        tg.my_chat_member_update(
            tg.private_chat(bob), bob, sim.bot_user, old="member", new="kicked"
        )
    )
    await sim.wait_for(lambda: len(sim.webhook_deliveries) == 2)
    assert all(d.status == 200 for d in sim.webhook_deliveries)
    assert [e.dedup_key() for e in blocks(host)] == [
        f"blocked:{BOB}:{update['my_chat_member']['date']}"
    ]
    assert len(host.duplicates) == 1


async def test_the_bot_removed_from_a_group_is_no_block(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost, connector: TelegramConnector
) -> None:
    group = sim.add_group(-100777, "Team")
    admin = tg.user(ALICE, "Alice")
    await harness.deliver(
        tg.my_chat_member_update(group, admin, sim.bot_user, old="member", new="kicked")
    )
    await harness.deliver(
        tg.my_chat_member_update(group, admin, sim.bot_user, old="kicked", new="left")
    )
    assert host.events == []


async def test_a_send_refused_as_blocked_fails_and_hands_a_block(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost, connector: TelegramConnector
) -> None:
    sim.set_blocked(ALICE)  # no update: only the send finds out
    message = matrix_message(harness, "our news")
    for _attempt in range(2):
        with pytest.raises(PermanentDeliveryError) as caught:
            await connector.send_message(message)
        assert "the customer has blocked the bot" in caught.value.reason
    assert sim.sent == []
    (block,) = blocks(host)
    assert block.chat.id == str(ALICE) and block.sender.id == str(ALICE)
    assert block.block_id == f"send:{message.event_id}"
    assert [e.dedup_key() for e in host.duplicates] == [block.dedup_key()]

    # Other refusals are no block; a customer who did not block gets the message.
    sim.add_user(7777, "Stranger", started=False)
    with pytest.raises(PermanentDeliveryError):
        await connector.send_message(matrix_message(harness, "hi", chat_id=7777))
    await connector.send_message(matrix_message(harness, "hi Bob", chat_id=BOB))
    assert len(blocks(host)) == 1


async def test_a_blocked_send_still_fails_when_the_host_cannot_record_the_block(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost, connector: TelegramConnector
) -> None:
    sim.set_blocked(ALICE)
    host.fail_next_events(1)
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_message(matrix_message(harness, "our news"))
    assert "the customer has blocked the bot" in caught.value.reason
    assert blocks(host) == []


async def test_public_address_is_the_bot_username(
    sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    assert connector.public_address == sim.bot_user["username"]
