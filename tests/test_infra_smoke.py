"""Smoke tests for the test infrastructure: real PostgreSQL and Synapse on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.infra.ports import free_port, port_is_open
from tests.infra.postgres import PostgresError, PostgresServer, postgres_server
from tests.infra.staff import StaffClient, match
from tests.infra.synapse import (
    AppserviceRegistration,
    SynapseError,
    SynapseServer,
    synapse_server,
    write_appservice_registration,
)

HAND_WRITTEN_AS_TOKEN = "hand-written-as-token"
HAND_WRITTEN_REGISTRATION = f"""\
id: hand-written
url: null
as_token: {HAND_WRITTEN_AS_TOKEN}
hs_token: hand-written-hs-token
sender_localpart: handbot
rate_limited: false
namespaces:
  users:
    - regex: "@hand_.*:localhost"
      exclusive: true
  aliases: []
  rooms: []
"""


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def helper_registration(tmp_path_factory: pytest.TempPathFactory) -> AppserviceRegistration:
    path = tmp_path_factory.mktemp("appservice") / "registration.yaml"
    # The URL points at a port nobody listens on: Synapse must cope with an absent appservice.
    return write_appservice_registration(
        path, url=f"http://127.0.0.1:{free_port()}", user_regex=r"@bridge_.*:localhost"
    )


@pytest.fixture(scope="module")
def synapse(
    tmp_path_factory: pytest.TempPathFactory, helper_registration: AppserviceRegistration
) -> Iterator[SynapseServer]:
    hand_written = tmp_path_factory.mktemp("appservice-hand") / "hand.yaml"
    hand_written.write_text(HAND_WRITTEN_REGISTRATION)
    workdir = tmp_path_factory.mktemp("synapse")
    with synapse_server(workdir, [hand_written, helper_registration.path]) as hs:
        yield hs


@pytest.fixture(scope="module")
def staff_credentials(synapse: SynapseServer) -> tuple[str, str]:
    user_id, _token = synapse.register_user("staff", "staff-password", admin=True)
    return user_id, "staff-password"


@pytest.fixture
async def staff(
    synapse: SynapseServer, staff_credentials: tuple[str, str]
) -> AsyncIterator[StaffClient]:
    user_id, password = staff_credentials
    async with await StaffClient.login(synapse.base_url, user_id, password) as client:
        yield client


# ---------------------------------------------------------------------------- ports


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    assert not port_is_open(port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# ---------------------------------------------------------------------------- PostgreSQL


async def test_postgres_query_and_restart(pg: PostgresServer) -> None:
    url = pg.create_database("smoke")
    assert url == f"postgres://postgres@127.0.0.1:{pg.port}/smoke"

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE t (x int)")
        await conn.execute("INSERT INTO t VALUES (42)")
        assert await conn.fetchval("SELECT 1 + 1") == 2

        await pg.arestart()

        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await conn.fetchval("SELECT 1")
    finally:
        await conn.close()

    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT x FROM t") == 42  # data survives the restart
    finally:
        await conn.close()


async def test_postgres_terminate_connections(pg: PostgresServer) -> None:
    url = pg.create_database("smoke_terminate")
    conn = await asyncpg.connect(url)
    try:
        assert pg.terminate_connections("smoke_terminate") == 1
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


def test_postgres_stop_removes_data_and_reports_start_failures(tmp_path: Path) -> None:
    server = PostgresServer()
    server.start()
    base = server.base_dir
    assert base is not None and (base / "data" / "PG_VERSION").exists()
    server.stop()
    assert not base.exists()
    assert not port_is_open(server.port)

    broken = PostgresServer(settings={"max_connections": "not-a-number"})
    with pytest.raises(PostgresError, match="max_connections"):
        broken.start()
    broken.stop()


# ---------------------------------------------------------------------------- Synapse


async def test_staff_roundtrip(synapse: SynapseServer, staff: StaffClient) -> None:
    room_id = await staff.create_room(name="smoke")
    event_id = await staff.send_text(room_id, "hello from staff", html="<b>hello</b> from staff")

    ev = await staff.wait_for_event(match(room_id=room_id, body="hello from staff"))
    assert ev["event_id"] == event_id
    assert ev["sender"] == staff.user_id == synapse.user_id("staff")
    assert ev["content"]["formatted_body"] == "<b>hello</b> from staff"

    reply_id = await staff.send_text(room_id, "a reply", reply_to=event_id)
    edit_id = await staff.edit(room_id, event_id, "hello, edited")
    reaction_id = await staff.react(room_id, event_id, "👍")
    redaction_id = await staff.redact(room_id, reply_id)

    edit = await staff.wait_for_event(match(rel_type="m.replace", relates_to=event_id))
    assert edit["event_id"] == edit_id
    assert edit["content"]["m.new_content"]["body"] == "hello, edited"
    reaction = await staff.wait_for_event(match(type="m.reaction", relates_to=event_id))
    assert reaction["content"]["m.relates_to"]["key"] == "👍"
    await staff.wait_for_event(lambda e: e.get("event_id") == redaction_id)

    history = await staff.room_messages(room_id)
    ids = [e["event_id"] for e in history]
    assert history[0]["type"] == "m.room.create"
    for wanted in (event_id, reply_id, edit_id, reaction_id, redaction_id):
        assert wanted in ids
    assert ids.index(event_id) < ids.index(edit_id) < ids.index(redaction_id)
    redacted = next(e for e in history if e["event_id"] == reply_id)
    assert redacted["content"] == {}  # /messages serves the redacted form


async def test_invites(synapse: SynapseServer, staff: StaffClient) -> None:
    other_id, other_token = await synapse.aregister_user("customer_care", "pw2")
    async with await StaffClient.from_token(synapse.base_url, other_token) as other:
        assert other.user_id == other_id
        room_id = await staff.create_room(invite=[other_id], is_direct=True)
        assert await other.wait_for_invite(timeout=30) == room_id
        assert await other.accept_invites() == [room_id]
        joined = match(
            room_id=room_id,
            type="m.room.member",
            state_key=other_id,
            content={"membership": "join"},
        )
        await staff.wait_for_event(joined)
        await other.send_text(room_id, "hi staff")
        seen = await staff.wait_for_event(
            match(room_id=room_id, sender=other_id, type="m.room.message")
        )
        assert seen["content"]["body"] == "hi staff"
        assert await staff.joined_members(room_id) == sorted([staff.user_id, other_id])


def test_appservice_registrations_accepted(
    synapse: SynapseServer, helper_registration: AppserviceRegistration
) -> None:
    assert synapse.whoami(HAND_WRITTEN_AS_TOKEN)["user_id"] == "@handbot:localhost"
    bot = helper_registration.sender_user_id(synapse.server_name)
    assert synapse.whoami(helper_registration.as_token)["user_id"] == bot

    # The appservice can register and masquerade as users in its exclusive namespace...
    res = synapse.api(
        "POST",
        "/_matrix/client/v3/register",
        {"type": "m.login.application_service", "username": "bridge_alice"},
        token=helper_registration.as_token,
    )
    assert res["user_id"] == "@bridge_alice:localhost"
    whoami = synapse.whoami(helper_registration.as_token, as_user="@bridge_alice:localhost")
    assert whoami["user_id"] == "@bridge_alice:localhost"
    # ...and nobody else can take a name in it.
    with pytest.raises(SynapseError, match="M_EXCLUSIVE"):
        synapse.api(
            "POST",
            "/_matrix/client/v3/register",
            {"type": "m.login.application_service", "username": "bridge_bob"},
            token=HAND_WRITTEN_AS_TOKEN,
        )


def test_synapse_reports_start_failures(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: broken\nas_token: x\n")  # no hs_token, no namespaces
    server = SynapseServer(tmp_path / "hs", [bad], startup_timeout=60)
    with pytest.raises(SynapseError, match="(?s)exited with code.*tail"):
        server.start()
    assert not server.running


async def test_synapse_restart_keeps_data(synapse: SynapseServer, staff: StaffClient) -> None:
    room_id = await staff.create_room(name="before restart")
    event_id = await staff.send_text(room_id, "persisted")

    # A sync that is long-polling while Synapse goes away rides out the outage.
    waiter = asyncio.create_task(
        staff.wait_for_event(match(room_id=room_id, body="after restart"), timeout=60)
    )
    await asyncio.sleep(0.5)
    await synapse.arestart(downtime=1.0)
    assert synapse.running
    assert not waiter.done()

    # The old access token still works and the message is still there.
    history = await staff.room_messages(room_id)
    assert event_id in [e["event_id"] for e in history]
    sent = await staff.send_text(room_id, "after restart")
    assert (await waiter)["event_id"] == sent


def test_workers_hand_out_ports_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.infra import ports

    seen: list[set[int]] = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        monkeypatch.setattr(ports, "_next", None)
        got = {ports.free_port() for _ in range(20)}
        assert len(got) == 20  # no port twice in a row
        assert all(ports.FIRST <= p < ports.LAST for p in got)
        seen.append(got)
    assert not seen[0] & seen[1]
    assert max(seen[0]) < min(seen[1])  # disjoint ranges, below the ephemeral ports
