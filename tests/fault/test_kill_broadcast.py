"""A broadcast across SIGKILL: 300 subscribers of the webhook channel (whose receiver drops a
repeat by its idempotency key), the bridge killed twice while it sends, one subscriber writing
STOP in between. Afterwards every other subscriber got it exactly once (by key; the
deliveries repeated after a kill are counted in the final report), the one who opted out got
nothing, and the final report says so. The bridge runs on PostgreSQL, as in the fault suite."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import SERVER_NAME, Stack, build_stack
from tests.e2e.helpers import customer_msg, join_invite_named
from tests.e2e.test_broadcast import PROOF, notice_starting, registry_of
from tests.fault.channels import _until_accepted
from tests.fault.streams import seed_for, wait_until
from tests.infra.postgres import PostgresServer
from tests.infra.staff import StaffClient

SUBSCRIBERS = 300
RATE = 40
TIMEOUT = 180.0
FEATURES: dict[str, Any] = {
    "consent": {
        "lists": {
            "newsletter": {"title": "Newsletter", "version": "2026-01", "text": "News, yes."}
        }
    },
    "broadcast": {
        "staff": [f"@staff:{SERVER_NAME}"],
        "lists": {"newsletter": {"accounts": ["hooks"]}},
        "rates": {"hooks": RATE},
    },
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Stack, str]]:
    db_url = postgres.create_database(f"kill_broadcast_{uuid.uuid4().hex}")
    workdir = tmp_path_factory.mktemp("kill-broadcast")
    async with build_stack(workdir, features=FEATURES, db_url=db_url) as st:
        yield st, db_url


async def test_sigkill_during_a_broadcast(stack: tuple[Stack, str]) -> None:
    st, _ = stack
    seed = seed_for("broadcast-kill")
    rng = random.Random(seed)
    chats = [f"sub-{n:03d}" for n in range(SUBSCRIBERS)]
    leaver = chats[-1]  # the last in order: the broadcast is far from it when STOP arrives
    async with registry_of(st) as registry:  # PostgreSQL: the bridge may go on meanwhile
        for chat in chats:
            await registry.import_identity("hooks", f"user-{chat}", "newsletter", PROOF, chat)
    staff = await StaffClient.login(st.synapse.base_url, st.staff_id, st.staff_password)
    peer = st.peer
    stop = customer_msg(leaver, "STOP", f"{leaver}-stop")

    def broadcasts(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            p for p in payloads
            if p.get("type") == "message" and str(p.get("id")).startswith("broadcast:")
        ]  # fmt: skip

    try:
        room = await join_invite_named(staff, "Broadcast: Newsletter")
        await staff.send_text(room, "Autumn news: the shop moves.")
        await staff.wait_for_event(notice_starting("Draft "), room_id=room)
        await staff.send_text(room, "send")
        started = await staff.wait_for_event(notice_starting("Broadcast "), room_id=room)
        id_ = started["content"]["body"].split(" ")[1]
        assert started["content"]["body"] == f"Broadcast {id_} is starting."

        for kill, at in enumerate((rng.randint(20, 60), rng.randint(100, 160))):
            await wait_until(
                f"{at} messages before kill {kill + 1} (FAULT_SEED={seed})",
                lambda at=at: len(broadcasts(peer.deliveries)) >= at,  # type: ignore[misc]
                TIMEOUT,
            )
            st.bridge.kill()
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            await st.bridge.astart()
            if kill == 0:
                await _until_accepted(
                    "the STOP", lambda: peer.send("hooks", stop), ok=lambda a: a[0] == 200
                )

        report = await staff.wait_for_event(
            notice_starting(f"📣 Broadcast {id_} (Newsletter) finished:"),
            room_id=room, timeout=TIMEOUT,
        )  # fmt: skip
    finally:
        await staff.close()

    got = broadcasts(peer.received)
    by_chat: dict[str, int] = {}
    for payload in got:
        by_chat[payload["chat_id"]] = by_chat.get(payload["chat_id"], 0) + 1
    assert leaver not in by_chat, f"FAULT_SEED={seed}: the one who said STOP got it"
    assert by_chat == {chat: 1 for chat in chats[:-1]}, f"FAULT_SEED={seed}"
    assert all(p["id"].startswith(f"broadcast:{id_}:") for p in got)
    repeats = len(broadcasts(peer.deliveries)) - len(got)
    lines = report["content"]["body"].split("\n")
    print(f"repeats after the kills: {repeats}; report: {lines}")
    assert lines[0] == (
        f"📣 Broadcast {id_} (Newsletter) finished: {SUBSCRIBERS - 1} sent, 0 failed, "
        f"1 skipped of {SUBSCRIBERS}."
    ), f"FAULT_SEED={seed}"
    assert lines[1] == "Skipped: 1 × consent withdrawn.", f"FAULT_SEED={seed}"
    resent = [line for line in lines if "were sent again with the same key" in line]
    if repeats:  # a repeat is a message in flight at a kill, sent again with its key
        (line,) = resent
        assert int(line.split(" ")[0]) >= repeats, f"FAULT_SEED={seed}: {lines}"
