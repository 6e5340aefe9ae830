"""An erasure across SIGKILL: a customer with a long conversation (so that the erasure takes a
while) is erased, the bridge is killed after the first redactions and started again. The
erasure goes on from its saved progress and ends as an uninterrupted one does: the database
dump holds nothing of the person, every event of theirs is redacted, the room is renamed and
the ghost gone. The bridge runs on PostgreSQL, as in the fault suite."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import Stack, build_stack
from tests.e2e.helpers import customer_msg, join_invite_named
from tests.e2e.test_commands import _ask, _room_with_bot
from tests.e2e.test_privacy_erase import ERASED_NOTICE, dump_database
from tests.infra.postgres import PostgresServer
from tests.infra.staff import StaffClient

MESSAGES = 100
BURST = 20
KILL_AFTER = 10
"""Redactions seen by the staff client before the kill."""
TIMEOUT = 180.0


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Stack, str]]:
    db_name = f"kill_erase_{uuid.uuid4().hex}"
    db_url = postgres.create_database(db_name)
    workdir = tmp_path_factory.mktemp("kill-erase")
    async with build_stack(workdir, features={"privacy": {}}, db_url=db_url) as st:
        yield st, db_name


async def test_sigkill_during_an_erasure(
    stack: tuple[Stack, str], postgres: PostgresServer
) -> None:
    st, db_name = stack
    chat, sender, name = "kill-erase-1", "user-kill-erase-1", "Karla Killmich"
    staff = await StaffClient.login(st.synapse.base_url, st.staff_id, st.staff_password)
    try:

        async def send(n: int) -> None:
            payload = customer_msg(chat, f"Karlas Nachricht {n}", f"{chat}-{n}")
            payload["chat"]["name"] = name
            payload["sender"] = {"id": sender, "name": name}
            assert (await st.peer.send("hooks", payload))[0] == 200

        await send(0)  # the room first, then the rest in bursts
        room = await join_invite_named(staff, name)
        for start in range(1, MESSAGES, BURST):
            await asyncio.gather(*(send(n) for n in range(start, min(start + BURST, MESSAGES))))

        def karlas(e: dict[str, Any]) -> bool:
            body = str(e.get("content", {}).get("body", ""))
            return e.get("room_id") == room and body.startswith("Karlas Nachricht")

        found = await staff.wait_for_events(karlas, MESSAGES, timeout=TIMEOUT)
        ghost = found[0]["sender"]
        admin = await _room_with_bot(st, staff, is_direct=True)
        plan = await _ask(staff, admin, f"privacy erase hooks:{sender}")
        job = plan.split("#", 1)[1].split(" ", 1)[0]
        assert (await _ask(staff, admin, f"privacy erase confirm {job}")).startswith(
            f"Erasure #{job} confirmed"
        )

        def redaction(e: dict[str, Any]) -> bool:
            return e.get("type") == "m.room.redaction" and e.get("room_id") == room

        await staff.wait_for_events(redaction, KILL_AFTER, timeout=TIMEOUT)
        st.bridge.kill()
        state = postgres.psql(f"SELECT state FROM privacy_job WHERE id={job}", db_name).strip()
        assert state == "running", "the erasure was not midway at the kill: make it longer"
        await st.bridge.astart()
        done = await staff.wait_for_event(
            lambda e: str(e.get("content", {}).get("body", "")).startswith(
                f"🗑 Erasure #{job} done"
            ),
            room_id=admin, timeout=TIMEOUT,
        )  # fmt: skip
        print(done["content"]["body"])

        dump = dump_database(st.workdir, postgres, db_name)
        leaked = [s for s in (chat, sender, name, ghost, "Karlas Nachricht") if s in dump]
        lines = [line[:300] for line in dump.splitlines() if any(s in line for s in leaked)]
        assert not leaked, f"{leaked} still in the database: {lines[:10]}"
        events = await staff.room_messages(room, limit=5000)
        theirs = [e for e in events if e["sender"] == ghost and "state_key" not in e]
        assert len(theirs) == MESSAGES and all(e["content"] == {} for e in theirs)
        notices = [e for e in events if e.get("content", {}).get("body") == ERASED_NOTICE]
        assert len(notices) == 1
        state_events = await staff.get_state(room)
        names = [e["content"] for e in state_events if e["type"] == "m.room.name"]
        assert names == [{"name": "Erased conversation"}]
        assert ghost not in await staff.joined_members(room)
    finally:
        await staff.close()
