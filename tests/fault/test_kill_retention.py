"""A retention pass across SIGKILL: a webhook conversation with 260 messages older than the
rule's 30 days and 5 newer ones, ``privacy retention run``, the bridge killed once the first
batch of 200 is committed (while the rest is being redacted) and started again. The pass is
taken up at the start (no second pass beside it) and finishes: every old event is redacted in
the room, the new ones are not, no old mapping is left, and the counts are exact (a batch
repeated after the kill is counted once). The bridge runs on PostgreSQL, as in the fault
suite, so the test reads the job's progress while the bridge works."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from mautrix.util.async_db import Database

from tests.conftest import Stack, build_stack
from tests.e2e.helpers import customer_msg, join_invite_named
from tests.e2e.test_commands import _room_with_bot
from tests.fault.streams import seed_for
from tests.infra.postgres import PostgresServer
from tests.infra.staff import StaffClient

OLD, NEW = 260, 5
DAY = 86_400
TIMEOUT = 180.0
FEATURES: dict[str, Any] = {
    "privacy": {"retention": {"interval": 3600, "accounts": {"hooks": {"messages_days": 30}}}}
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Stack, Database]]:
    db_url = postgres.create_database(f"kill_retention_{uuid.uuid4().hex}")
    workdir = tmp_path_factory.mktemp("kill-retention")
    async with build_stack(workdir, features=FEATURES, db_url=db_url) as st:
        db = Database.create(db_url)
        await db.start()
        try:
            yield st, db
        finally:
            await db.stop()


async def until(what: str, check: Any, timeout: float = TIMEOUT) -> Any:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not (found := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)
    return found


async def test_sigkill_during_a_retention_pass(stack: tuple[Stack, Database]) -> None:
    st, db = stack
    rng = random.Random(seed_for("retention-kill"))
    chat = "keep-or-go"
    now = time.time()

    async def send(n: int) -> None:
        at = now - (40 * DAY - n if n < OLD else DAY - n)
        msg = customer_msg(chat, f"m{n}", f"m{n}", timestamp=at)
        status, body = await st.peer.send("hooks", msg)
        assert status == 200, body

    await send(0)  # the room first, then the rest side by side (their order does not matter)
    for start in range(1, OLD + NEW, 16):
        await asyncio.gather(*(send(n) for n in range(start, min(start + 16, OLD + NEW))))

    async def mapped() -> int:
        return int(await db.fetchval("SELECT COUNT(*) FROM message WHERE account='hooks'") or 0)

    await until("every message bridged", lambda: _is(mapped, OLD + NEW))
    rows = await db.fetch("SELECT event_id, timestamp FROM message WHERE account='hooks'")
    cutoff = (now - 30 * DAY) * 1000
    old = {r["event_id"] for r in rows if r["timestamp"] < cutoff}
    new = {r["event_id"] for r in rows} - old
    assert (len(old), len(new)) == (OLD, NEW)
    before = int(await db.fetchval("SELECT COALESCE(MAX(id), 0) FROM privacy_job") or 0)

    staff = await StaffClient.login(st.synapse.base_url, st.staff_id, st.staff_password)
    try:
        room = await join_invite_named(staff, f"Customer {chat}")
        commands = await _room_with_bot(st, staff, is_direct=True)
        await staff.send_text(commands, "privacy retention run")

        async def first_batch() -> dict[str, Any] | None:
            row = await db.fetchrow(
                "SELECT id, state, progress FROM privacy_job WHERE kind='retention' AND id>$1",
                before,
            )
            if row is None or row["state"] != "running":
                return None
            progress = json.loads(row["progress"])
            return progress if progress.get("counts", {}).get("redacted", 0) >= 200 else None

        at_kill = await until("the first batch committed", first_batch)
        await asyncio.sleep(rng.uniform(0.0, 0.5))
        st.bridge.kill()
        [job] = await db.fetch("SELECT id, state FROM privacy_job WHERE id>$1", before)
        assert job["state"] == "running", "the pass ended before the kill: nothing was tested"
        await st.bridge.astart()

        async def finished() -> bool:
            state = await db.fetchval("SELECT state FROM privacy_job WHERE id=$1", job["id"])
            return state == "done"

        await until("the pass finished after the restart", finished)
        jobs = await db.fetch("SELECT id, result FROM privacy_job WHERE id>$1", before)
        assert [r["id"] for r in jobs] == [job["id"]]  # taken up, no second pass
        result = json.loads(jobs[0]["result"])
        assert result["redacted"] == OLD and result["mappings_dropped"] == OLD, result
        assert result["failures"] == 0
        left = {r["event_id"] for r in await db.fetch("SELECT event_id FROM message")}
        assert left & old == set() and new <= left

        seen = {e["event_id"]: e for e in await staff.room_messages(room, limit=2000)}
        missed = [e for e in old if "redacted_because" not in seen[e].get("unsigned", {})]
        assert missed == []
        assert all(seen[e]["content"].get("body") for e in new)
        print(f"retention kill: killed at {at_kill['counts']}, result {result}")
    finally:
        await staff.close()


async def _is(count: Any, wanted: int) -> bool:
    return bool(await count() == wanted)
