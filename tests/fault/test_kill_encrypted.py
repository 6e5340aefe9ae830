"""The kill test in encrypted rooms: numbered messages stream both ways through an encrypted
portal room while the bridge is killed with SIGKILL at random moments and started again on the
same PostgreSQL database, where its device, its Olm and Megolm sessions and the room keys it
received are kept.

Afterwards every message arrived exactly once and in order (as in ``test_kill``), and no key
was lost to a kill: the bridge still decrypts what staff send (the staff's last message, sent
after the last restart, reaches the customer), staff can decrypt every event the bridge sent
before, between and after the kills (none stays ``m.room.encrypted`` when read back), and no
"cannot decrypt" notice of the bridge was left without its "the key arrived" edit.

Staff's room keys reach the bridge before the kills begin (a first staff message per room is
delivered). Synapse does not keep the to-device messages of an appservice transaction it
could not push: it retries the transaction with its room events only, and while the
appservice is down it drops transactions that carry nothing else (``get_oldest_unsent_txn``,
``_TransactionController.send``). A room key in flight at a kill is lost at the homeserver,
whatever the bridge keeps; that is not what this test is about."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import POLL_TOKEN, Stack, build_stack
from tests.connectors.telegram.simulator import RateLimits as TelegramRateLimits
from tests.fault.channels import Conversation, TelegramConversation, WebhookConversation
from tests.fault.conftest import DEADLINE
from tests.fault.streams import N, begin, check, run_streams, seed_for, settle, wait_until
from tests.fault.telegram import FaultyTelegramSimulator
from tests.infra.postgres import PostgresServer
from tests.infra.staff import StaffClient

KILLS = 2
ENCRYPTION = {"allow": True, "default": True}
LOCKED = "🔒 The bridge cannot decrypt"
UNLOCKED = "🔓 The key arrived"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def encrypted_stack(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    db_url = postgres.create_database("fault_encrypted")
    telegram = FaultyTelegramSimulator(
        POLL_TOKEN, bot_username="company_bot", rate_limits=TelegramRateLimits(enabled=False)
    )
    options = {"hooks": {"delivery_deadline": DEADLINE}, "tg": {"delivery_deadline": DEADLINE}}
    async with build_stack(
        tmp_path_factory.mktemp("fault-encrypted"), db_url=db_url, telegram=telegram,
        channel_options=options, encryption=ENCRYPTION,
    ) as stack:  # fmt: skip
        yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def encrypted_staff(encrypted_stack: Stack) -> AsyncIterator[StaffClient]:
    st = encrypted_stack
    client = await StaffClient.login(
        st.synapse.base_url, st.staff_id, st.staff_password, encrypted=True
    )
    try:
        yield client
    finally:
        await client.close()


async def test_sigkill_in_encrypted_rooms(
    encrypted_stack: Stack, encrypted_staff: StaffClient
) -> None:
    seed = seed_for("sigkill-encrypted")
    rng = random.Random(seed)
    staff, bridge = encrypted_staff, encrypted_stack.bridge
    convs: list[Conversation] = [
        WebhookConversation(encrypted_stack, staff, "enc"),
        TelegramConversation(encrypted_stack, staff, "enc"),
    ]
    await asyncio.gather(*(c.open() for c in convs))
    for conv in convs:
        assert await staff.room_is_encrypted(conv.room_id), f"{conv.label}: room not encrypted"
    await asyncio.gather(*(_keys_at_the_bridge(staff, c) for c in convs))
    begin(convs, "enckill")
    kills = 0

    async def killer() -> None:
        nonlocal kills
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            bridge.kill()
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            await bridge.astart()
            kills += 1

    await asyncio.gather(run_streams(staff, convs, N, seed), killer())
    try:
        # The markers are sent after the last restart: staff's reaches the customer only if
        # the bridge still decrypts what staff send.
        await settle(staff, convs, seed, marker="after kills")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{await _crypto_problems(staff, convs)}") from None
    await staff.sync_once(0)  # the room keys of the bridge's last messages
    repeats = await check(staff, convs, N, seed, crashes=kills)
    assert kills == KILLS
    problems = await _crypto_problems(staff, convs)
    assert not problems, f"FAULT_SEED={seed}\n{problems}"
    print(f"sigkill-encrypted: {kills} kills, repeats per channel: {repeats}")


async def _keys_at_the_bridge(staff: StaffClient, conv: Conversation) -> None:
    """Staff's first message in the room reaches the customer: the bridge holds staff's key."""
    text = f"{conv.tag} out first"
    await staff.send_text(conv.room_id, text)
    await wait_until(
        f"{conv.label}: staff's first message at the customer",
        lambda: any(t.endswith(text) for t in conv.deliveries()),
        60,
    )


async def _crypto_problems(staff: StaffClient, convs: list[Conversation]) -> str:
    """What went wrong with keys in the conversations' rooms, read back by the staff client:
    events it cannot decrypt, the bridge's messages sent in the clear, and "cannot decrypt"
    notices of the bridge no "the key arrived" edit answered."""
    await staff.sync_once(0)
    lines = []
    for conv in convs:
        events = await staff.room_messages(conv.room_id)
        found = _undecrypted(events) + _plaintext(events, staff.user_id)
        lines += [f"{conv.label}: {p}" for p in found + _unanswered_notices(events)]
    return "\n".join(lines)


def _undecrypted(events: list[dict[str, Any]]) -> list[str]:
    """Events the staff client could not decrypt: their key never reached it."""
    return [
        f"undecrypted {e.get('event_id')} from {e.get('sender')} (session "
        f"{e.get('content', {}).get('session_id')})"
        for e in events
        if e.get("type") == "m.room.encrypted"
    ]


def _plaintext(events: list[dict[str, Any]], staff: str) -> list[str]:
    """Messages of the bridge (its bot and ghosts) that were not encrypted."""
    return [
        f"sent in the clear: {e.get('event_id')} from {e.get('sender')}: "
        f"{e.get('content', {}).get('body')!r}"
        for e in events
        if e.get("type") in ("m.room.message", "m.reaction")
        and e.get("sender") != staff
        and not e.get("encrypted")
    ]


def _unanswered_notices(events: list[dict[str, Any]]) -> list[str]:
    """The bridge's "cannot decrypt yet" notices that no "the key arrived" edit answered."""
    edited = {
        e["content"]["m.relates_to"].get("event_id")
        for e in events
        if e.get("type") == "m.room.message"
        and e.get("content", {}).get("m.new_content", {}).get("body", "").startswith(UNLOCKED)
        and isinstance(e["content"].get("m.relates_to"), dict)
    }
    return [
        f"unanswered notice {e.get('event_id')}: {e['content'].get('body')!r}"
        for e in events
        if e.get("type") == "m.room.message"
        and e.get("content", {}).get("body", "").startswith(LOCKED)
        and e.get("event_id") not in edited
    ]
