"""Delivery guarantees end to end: tokens, replayed transactions, failures shown in the room,
and a bridge killed with SIGKILL between accepting work and delivering it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
from ruamel.yaml import YAML

from tests.conftest import Stack
from tests.e2e.helpers import body_is, customer_msg, join_invite_named, open_portal
from tests.infra.staff import StaffClient


def _hs_token(stack: Stack) -> str:
    return str(YAML(typ="safe").load(stack.config_path.read_text())["appservice"]["hs_token"])


async def _put_txn(
    stack: Stack, txn: str, events: list[dict[str, Any]], token: str
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.put(
            f"{stack.bridge.url}/_matrix/app/v1/transactions/{txn}",
            json={"events": events},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp,
    ):
        return resp.status, await resp.json()


async def _wait_log(stack: Stack, text: str, count: int = 1, timeout: float = 30) -> None:  # noqa: ASYNC109
    for _ in range(int(timeout * 10)):
        if stack.bridge.log_text().count(text) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{text!r} not logged {count} time(s):\n{stack.bridge.log_tail()}")


async def test_wrong_hs_token_is_refused(stack: Stack) -> None:
    event = {"type": "m.room.message", "room_id": "!x:localhost", "event_id": "$x",
             "sender": stack.staff_id, "content": {"msgtype": "m.text", "body": "x"}}  # fmt: skip
    token = _hs_token(stack)
    for wrong in ("wrong", token[:-1], token + "x", ""):
        status, body = await _put_txn(stack, f"bad-{uuid.uuid4().hex}", [event], wrong)
        assert status == 403 and body["errcode"] == "M_FORBIDDEN"


async def test_replayed_transaction_is_a_no_op(stack: Stack, staff: StaffClient) -> None:
    room_id, _ = await open_portal(stack, staff, "c-replay", "hi")
    event_id = f"$synthetic-{uuid.uuid4().hex}"
    event = {
        "type": "m.room.message", "room_id": room_id, "event_id": event_id,
        "sender": stack.staff_id, "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": "replayed"},
    }  # fmt: skip
    txn = f"replay-{uuid.uuid4().hex}"
    token = _hs_token(stack)
    assert await _put_txn(stack, txn, [event], token) == (200, {})
    assert await _put_txn(stack, txn, [event], token) == (200, {})
    # The same event in another transaction is not sent twice either.
    assert await _put_txn(stack, f"{txn}-b", [event], token) == (200, {})
    await stack.peer.wait_for(lambda p: p.get("id") == event_id)
    marker = await staff.send_text(room_id, "after replay")
    await stack.peer.wait_for(lambda p: p.get("id") == marker)
    assert [p["id"] for p in stack.peer.deliveries].count(event_id) == 1


async def test_an_encrypted_message_without_encryption_gets_a_notice(
    stack: Stack, staff: StaffClient
) -> None:
    """Encryption is not allowed in this stack: an encrypted staff message cannot be read, and
    the room is told so instead of it being lost without a word."""
    room_id, _ = await open_portal(stack, staff, f"enc-off-{uuid.uuid4().hex[:8]}")
    sealed = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEn", "session_id": "s",
              "sender_key": "k", "device_id": "D"}  # fmt: skip
    event_id = await staff.send_event(room_id, "m.room.encrypted", sealed)
    notice = await staff.wait_for_event(
        lambda e: e.get("content", {}).get("m.relates_to", {}).get("m.in_reply_to", {})
        .get("event_id") == event_id,
        room_id=room_id,
    )  # fmt: skip
    assert "cannot read encrypted messages" in notice["content"]["body"]


async def test_permanent_failure_is_shown_in_the_room(stack: Stack, staff: StaffClient) -> None:
    room_id, _ = await open_portal(stack, staff, "c-reject", "hi")
    stack.peer.fail_next = [400]
    event_id = await staff.send_text(room_id, "this one is refused")
    notice = await staff.wait_for_event(
        lambda e: (
            e.get("content", {}).get("msgtype") == "m.notice"
            and e["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
            == event_id
        ),
        room_id=room_id,
    )
    assert notice["sender"] == stack.bot_id
    assert "Not delivered" in notice["content"]["body"] and "400" in notice["content"]["body"]


async def test_temporary_failures_are_retried_in_order(stack: Stack, staff: StaffClient) -> None:
    room_id, _ = await open_portal(stack, staff, "c-retry", "hi")
    stack.peer.fail_next = [503, 503, 429]
    first = await staff.send_text(room_id, "retried 1")
    second = await staff.send_text(room_id, "retried 2")
    await stack.peer.wait_for(lambda p: p.get("id") == second, timeout=60)
    ids = [p["id"] for p in stack.peer.deliveries if p.get("chat_id") == "c-retry"]
    assert ids == [first, second]
    assert not stack.peer.fail_next


async def test_deadline_passed_is_shown_in_the_room(stack: Stack, staff: StaffClient) -> None:
    status, _ = await stack.peer.send("dead-end", customer_msg("c-dead", "anyone there?"))
    assert status == 200
    room_id = await join_invite_named(staff, "Customer c-dead")
    event_id = await staff.send_text(room_id, "we are")
    notice = await staff.wait_for_event(
        lambda e: (
            e.get("content", {}).get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
            == event_id
        ),
        room_id=room_id,
        timeout=60,
    )
    assert "gave up after" in notice["content"]["body"]


async def test_bridge_killed_after_accepting_matrix_events_loses_nothing(
    stack: Stack, staff: StaffClient
) -> None:
    room_id, _ = await open_portal(stack, staff, "c-kill-out", "hi")
    stack.peer.fail_next = [503] * 1000  # the remote side is down: nothing can be delivered
    sent = [await staff.send_text(room_id, f"k{i}") for i in range(5)]
    # The homeserver got its 200 and the bridge is retrying the first message: kill it now.
    await _wait_log(stack, f"Delivery of {sent[0]} failed")
    stack.bridge.kill()
    stack.peer.fail_next = []
    await stack.bridge.astart()
    await stack.peer.wait_for(lambda p: p.get("id") == sent[-1], timeout=60)
    ids = [p["id"] for p in stack.peer.deliveries if p.get("chat_id") == "c-kill-out"]
    assert ids == sent


async def test_bridge_killed_after_accepting_remote_events_loses_nothing(
    stack: Stack, staff: StaffClient
) -> None:
    room_id, _ = await open_portal(stack, staff, "c-kill-in", "hi")
    await stack.synapse.astop()  # Matrix is down: the bridge accepts but cannot deliver
    try:
        for i in range(5):
            status, body = await stack.peer.send(
                stack.account, customer_msg("c-kill-in", f"r{i}", f"kin-{i}")
            )
            assert status == 200, body
        stack.bridge.kill()
    finally:
        await stack.synapse.astart()
    await stack.bridge.astart()
    await staff.wait_for_event(body_is("r4"), room_id=room_id, timeout=60)
    bodies = [
        e["content"]["body"] for e in await staff.room_messages(room_id)
        if e["type"] == "m.room.message" and e["content"]["body"].startswith("r")
    ]  # fmt: skip
    assert bodies == [f"r{i}" for i in range(5)]


async def test_reused_transaction_id_with_new_events_is_not_dropped(
    stack: Stack, staff: StaffClient
) -> None:
    """Synapse on SQLite starts its transaction ids at 1 again after a restart; a reused id
    with other events is a new transaction, only the same id with the same events is a retry."""
    room_id, _ = await open_portal(stack, staff, "c-reused", "hi")
    token = _hs_token(stack)
    txn = f"reused-{uuid.uuid4().hex}"
    ids = [f"$reused-{uuid.uuid4().hex}" for _ in range(2)]
    for event_id in ids:
        event = {
            "type": "m.room.message", "room_id": room_id, "event_id": event_id,
            "sender": stack.staff_id, "origin_server_ts": 1,
            "content": {"msgtype": "m.text", "body": event_id},
        }  # fmt: skip
        assert await _put_txn(stack, txn, [event], token) == (200, {})
    await stack.peer.wait_for(lambda p: p.get("id") == ids[1])
    assert [p["id"] for p in stack.peer.deliveries if p.get("chat_id") == "c-reused"] == ids
