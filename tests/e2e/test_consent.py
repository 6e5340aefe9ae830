"""Consent end to end through a real Synapse: a webhook customer with confirmed consents
(recorded through the registry directly; the opt-in flows come later) writes STOP, gets
exactly one confirmation, and the room shows the withdrawal; a second STOP sends nothing;
``consent`` shows the history in the room and ``consent proof`` posts an HTML file. The
tests of this module run in order on one stack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from mautrix.util.async_db import Database

import bridge.db
from bridge.config import load
from bridge.features.consent.module import CONSENT
from bridge.features.consent.registry import Registry
from tests.conftest import Stack, build_stack
from tests.e2e.helpers import customer_msg, join_invite_named
from tests.e2e.test_commands import _ask
from tests.e2e.test_inbox import _notice
from tests.e2e.test_inbox_transcript import _download, staff
from tests.infra.staff import StaffClient

__all__ = ["staff"]  # the staff client fixture, on this module's stack

NEWS_TEXT = "Yes, send me the monthly newsletter here. <I can stop it any time.>"
FEATURES = {
    "consent": {
        "lists": {
            "newsletter": {"title": "Newsletter", "version": "2026-01", "text": NEWS_TEXT},
            "order-updates": {"title": "Order updates", "version": "1", "text": "Orders, yes."},
        }
    }
}
CHAT = "consent-1"
WITHDRAWN = "🛑 The customer withdrew consent: Newsletter, Order updates"
NOTHING = (
    "🛑 The customer wrote 'STOP': there is no consent to withdraw on this channel, so no "
    "confirmation was sent."
)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with build_stack(tmp_path_factory.mktemp("consent"), features=FEATURES) as st:
        yield st


async def _confirm_consents(stack: Stack) -> None:
    """Record the customer's consents as a flow will (the bridge is stopped meanwhile, so
    that two processes never write its SQLite database at once)."""
    stack.bridge.stop()
    config = load(str(stack.config_path))
    options = CONSENT.parse_config(config.features["consent"], config)
    assert options is not None
    db = Database.create(config.db_url, upgrade_table=bridge.db.upgrade_table)
    bridge.db.init(db)
    await db.start()
    try:
        registry = Registry(options)
        contact = await registry.contact_for(stack.account, f"user-{CHAT}", chat=CHAT, create=True)
        assert contact is not None
        for name in ("newsletter", "order-updates"):
            evidence: dict[str, Any] = {"message_id": f"{name}-request"}
            await registry.request(contact, name, stack.account, evidence, "keyword")
            evidence = {"message_id": f"{name}-button"}
            await registry.confirm(contact, name, stack.account, evidence, "button")
    finally:
        await db.stop()
    await stack.bridge.astart()


def _confirmations(stack: Stack) -> list[dict[str, Any]]:
    return [
        p for p in stack.peer.received
        if p.get("type") == "message" and p.get("chat_id") == CHAT
        and "unsubscribed" in str(p.get("text"))
    ]  # fmt: skip


async def test_stop_withdraws_with_one_confirmation(stack: Stack, staff: StaffClient) -> None:
    status, body = await stack.peer.send(stack.account, customer_msg(CHAT, "hello", "c-1"))
    assert status == 200, body
    room = await join_invite_named(staff, f"Customer {CHAT}")
    await _confirm_consents(stack)

    status, body = await stack.peer.send(stack.account, customer_msg(CHAT, "Stop!", "c-2"))
    assert status == 200, body
    await _notice(staff, room, WITHDRAWN)
    await stack.peer.wait_for(lambda _p: bool(_confirmations(stack)))
    (confirmation,) = _confirmations(stack)
    assert "Newsletter, Order updates" in confirmation["text"]
    # Nothing left: the second STOP is told to staff only.
    status, body = await stack.peer.send(stack.account, customer_msg(CHAT, "STOP", "c-3"))
    assert status == 200, body
    await _notice(staff, room, NOTHING)
    assert len(_confirmations(stack)) == 1

    history = await _ask(staff, room, "!bridge consent")
    lines = history.splitlines()
    assert lines[0].endswith(f"{stack.account}:user-{CHAT}"), history
    steps = [line.split(" — ")[2].split(" (")[0] for line in lines[1:]]
    assert steps == [
        "newsletter: requested", "newsletter: confirmed", "order-updates: requested",
        "order-updates: confirmed", "newsletter: withdrawn", "order-updates: withdrawn",
    ]  # fmt: skip
    assert "opt-out keyword 'Stop!' from the customer" in lines[-1]

    answer = await _ask(staff, room, "!bridge consent proof")
    assert answer.startswith("📄 Consent proof of contact "), answer
    event = await staff.wait_for_event(
        lambda e: e.get("content", {}).get("msgtype") == "m.file", room_id=room
    )
    assert event["sender"] == stack.bot_id and event["content"]["body"] in answer
    document = (await _download(stack, staff, event["content"]["url"])).decode()
    assert "&lt;I can stop it any time.&gt;" in document and "<I can" not in document
    assert document.count("<td>withdrawn</td>") == 2
