"""Starts everything one benchmark run needs, as the test suite's ``stack`` fixture does:
PostgreSQL, Synapse on it, the bridge (as its own process, database on the same PostgreSQL
or on SQLite), the observer and receiver in this process and the bare appservice as a process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bridge.connectors.webhook.protocol import SIGNATURE_HEADER, encode, sign
from bridge.core.util import escape_localpart
from tests.infra.bridge_proc import REPO, BridgeProcess, run_cli, write_bridge_config
from tests.infra.ports import LOOPBACK, free_port, port_is_open
from tests.infra.postgres import PostgresServer
from tests.infra.synapse import (
    E2EE_SETTINGS,
    SynapseServer,
    postgres_database_config,
    write_appservice_registration,
)

from .endpoints import Observer, Receiver

log = logging.getLogger("bench")

SERVER_NAME = "localhost"
ACCOUNT = "hooks"
OBSERVER = "benchobserver"
BARE_BOT = "benchbare"
SETUP_CONCURRENCY = 4
ARRIVAL_TIMEOUT = 120.0
MAX_FILE_MB = 256
"""The largest file the bench's webhook account and Synapse take (the media measurement)."""


@dataclass
class Portal:
    """A portal room made for the benchmark: the remote chat, its one customer, the room."""

    chat: str
    customer: str
    ghost: str
    room_id: str


@dataclass
class Stack:
    workdir: Path
    bridge_db: str
    postgres: PostgresServer
    synapse: SynapseServer
    bridge: BridgeProcess
    observer: Observer
    receiver: Receiver
    config_path: Path
    secret: str
    as_token: str
    staff_id: str
    staff_token: str
    staff_password: str
    bare_token: str
    bare_proc: subprocess.Popen[bytes]
    session: aiohttp.ClientSession
    bare_room: str = ""
    _txn: int = 0
    portals: dict[str, list[Portal]] = field(default_factory=dict)

    # ------------------------------------------------------------------ processes

    @property
    def bridge_pid(self) -> int:
        assert self.bridge.proc is not None
        return self.bridge.proc.pid

    @property
    def synapse_pid(self) -> int:
        pid = self.synapse.pid
        assert pid is not None
        return pid

    @property
    def bare_pid(self) -> int:
        return self.bare_proc.pid

    def bridge_db_url(self, name: str) -> str:
        return self.postgres.url(name)

    async def db_backend_pids(self) -> dict[str, list[int]]:
        """Server process ids of the PostgreSQL connections, by database name."""
        conn = await asyncpg.connect(**self.postgres.dsn_kwargs, database="postgres")
        try:
            rows = await conn.fetch(
                "SELECT datname, pid FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        pids: dict[str, list[int]] = {}
        for row in rows:
            pids.setdefault(row["datname"] or "", []).append(int(row["pid"]))
        return pids

    # ------------------------------------------------------------------ traffic

    def txn(self) -> str:
        self._txn += 1
        return f"bench{os.getpid()}.{self._txn}"

    def ghost_of(self, customer: str) -> str:
        return f"@bridge_{escape_localpart(ACCOUNT)}_{escape_localpart(customer)}:{SERVER_NAME}"

    async def send_webhook(self, chat: str, customer: str, message_id: str, text: str) -> None:
        """One customer message into the bridge's webhook connector, signed as the remote
        system signs it. Returns once the bridge accepted (recorded) it."""
        await self.post_webhook({
            "type": "message",
            "id": message_id,
            "chat": {"id": chat},
            "sender": {"id": customer, "name": f"Customer {customer}"},
            "text": text,
        })  # fmt: skip

    async def post_webhook(self, payload: dict[str, Any]) -> None:
        body = encode(payload)
        headers = {SIGNATURE_HEADER: sign(self.secret, body), "Content-Type": "application/json"}
        url = f"{self.bridge.url}/connectors/{ACCOUNT}/events"
        async with self.session.post(url, data=body, headers=headers) as resp:
            if resp.status != 200:
                raise RuntimeError(f"webhook answered {resp.status}: {await resp.text()}")
            await resp.read()

    async def matrix(
        self, method: str, path: str, token: str, body: Any = None, as_user: str | None = None
    ) -> Any:
        url = self.synapse.base_url + path
        if as_user:
            url += ("&" if "?" in url else "?") + "user_id=" + urllib.parse.quote(as_user)
        return await call_matrix(self.session, method, url, token, body)

    async def send_direct(self, room_id: str, ghost: str, text: str) -> None:
        """The reference path: the same message sent straight to Synapse by the appservice,
        as the ghost (``user_id`` masquerading), as the bridge itself does."""
        path = f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{self.txn()}"
        await self.matrix(
            "PUT", path, self.as_token, {"msgtype": "m.text", "body": text}, as_user=ghost
        )

    async def staff_send(self, room_id: str, text: str) -> None:
        path = f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{self.txn()}"
        await self.matrix("PUT", path, self.staff_token, {"msgtype": "m.text", "body": text})

    # ------------------------------------------------------------------ rooms

    async def make_portals(self, group: str, count: int) -> list[Portal]:
        """``count`` portal rooms made by the bridge (a first customer message each), joined
        by the staff user; kept in ``portals[group]``."""
        existing = self.portals.setdefault(group, [])
        sem = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def one(i: int) -> Portal:
            async with sem:
                chat, customer = f"{group}-{i}", f"c{group}-{i}"
                marker = f"bench-setup{group}-{i}"
                fut = self.observer.arrivals.expect(marker)
                await self.send_webhook(chat, customer, marker, f"hello {marker}")
                await asyncio.wait_for(fut, ARRIVAL_TIMEOUT)
                room_id = self.observer.arrivals.room_of[marker]
                await self.matrix("POST", f"/_matrix/client/v3/join/{room_id}", self.staff_token)
                return Portal(chat, customer, self.ghost_of(customer), room_id)

        made = await asyncio.gather(*(one(i) for i in range(len(existing), count)))
        existing.extend(made)
        return existing[:count]

    async def make_bare_room(self) -> str:
        """A room of the staff user with the bare appservice's bot in it."""
        bare_bot = f"@{BARE_BOT}:{SERVER_NAME}"
        created = await self.matrix(
            "POST",
            "/_matrix/client/v3/createRoom",
            self.staff_token,
            {"preset": "private_chat", "invite": [bare_bot], "name": "bare"},
        )
        room_id = str(created["room_id"])
        await self.matrix("POST", f"/_matrix/client/v3/join/{room_id}", self.bare_token)
        return room_id

    # ------------------------------------------------------------------ shutdown

    async def close(self) -> None:
        self.bridge.stop()
        if self.bare_proc.poll() is None:
            self.bare_proc.terminate()
            try:
                self.bare_proc.wait(10)
            except subprocess.TimeoutExpired:
                self.bare_proc.kill()
        await self.synapse.astop()
        await self.observer.stop()
        await self.receiver.stop()
        await self.session.close()
        await self.postgres.astop()


async def call_matrix(
    session: aiohttp.ClientSession, method: str, url: str, token: str, body: Any = None
) -> Any:
    """One client-server API request with ``token``; its JSON answer, or RuntimeError."""
    headers = {"Authorization": f"Bearer {token}"}
    async with session.request(method, url, json=body, headers=headers) as resp:
        data = await resp.json(content_type=None)
        if resp.status != 200:
            raise RuntimeError(f"{method} {url} -> {resp.status}: {data}")
        return data


async def start_stack(workdir: Path, *, bridge_db: str = "postgres", e2ee: bool = False) -> Stack:
    """Start the whole stack in ``workdir``; the caller closes it. With ``e2ee`` Synapse takes
    appservice encryption (MSC2409/MSC3202) and the bridge's registration carries it, so that
    the bridge can be run with encryption on (``bench.encrypted``); the bridge itself starts
    without it, and Synapse does not encrypt new rooms by default, so the other figures'
    rooms stay plain."""
    started = time.monotonic()
    postgres = PostgresServer(workdir, settings={"max_connections": 300})
    await postgres.astart()
    await asyncio.to_thread(
        postgres.psql,
        "CREATE DATABASE synapse ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
    )
    if bridge_db == "postgres":
        db_url = await asyncio.to_thread(postgres.create_database, "bridge")
    else:
        db_url = f"sqlite:{workdir / 'bridge.db'}"

    observer_token = secrets.token_hex(16)
    observer = Observer(observer_token)
    receiver = Receiver()
    await observer.start()
    await receiver.start()
    obs_reg = write_appservice_registration(
        workdir / "observer.yaml",
        id="bench-observer",
        url=observer.url,
        hs_token=observer_token,
        sender_localpart=OBSERVER,
        extra={
            "namespaces": {
                "users": [{"regex": f"@{OBSERVER}:{SERVER_NAME}", "exclusive": True}],
                "aliases": [],
                "rooms": [{"regex": ".*", "exclusive": False}],
            }
        },
    )
    bare_port = free_port()
    bare_reg = write_appservice_registration(
        workdir / "bare.yaml",
        id="bench-bare",
        url=f"http://{LOOPBACK}:{bare_port}",
        sender_localpart=BARE_BOT,
        user_regex=f"@{BARE_BOT}:{SERVER_NAME}",
    )

    secret = secrets.token_hex(16)
    staff_id = f"@staff:{SERVER_NAME}"
    config_path = workdir / "config.yaml"
    bridge_reg = workdir / "registration.yaml"
    synapse = SynapseServer(
        workdir / "synapse",
        [bridge_reg, obs_reg.path, bare_reg.path],
        SERVER_NAME,
        database=postgres_database_config(
            postgres.host, postgres.port, postgres.superuser, "synapse"
        ),
        startup_timeout=180,
        extra_config={
            "max_upload_size": f"{MAX_FILE_MB * 2}M",
            **({"experimental_features": E2EE_SETTINGS["experimental_features"]} if e2ee else {}),
        },
    )
    data = write_bridge_config(
        config_path,
        hs_url=synapse.base_url,
        domain=SERVER_NAME,
        db_url=db_url,
        staff=[staff_id],
        admins=[staff_id],
        outbound_url=receiver.inbox_url,
        secret=secret,
        encryption={"allow": True} if e2ee else None,
    )
    _allow_large_files(config_path)
    result = await asyncio.to_thread(run_cli, "-c", str(config_path), "-g", "-r", str(bridge_reg))
    if result.returncode != 0:
        raise RuntimeError(f"bridge -g failed: {result.stderr}")
    if e2ee:  # the registration carries MSC3202 and MSC4190; the bridge starts plain
        _set_encryption(config_path, allow=False)
    as_token = _read_token(config_path)
    await synapse.astart()
    log.info("Synapse on PostgreSQL up after %.1fs", time.monotonic() - started)
    password = secrets.token_hex(8)
    _, staff_token = await synapse.aregister_user("staff", password, admin=True)

    bare_proc = _start_bare(workdir, bare_port, bare_reg.hs_token, receiver.bare_url)
    bridge = BridgeProcess(config_path, data["appservice"]["port"], workdir / "bridge.log")
    await bridge.astart()
    for _ in range(100):
        if port_is_open(bare_port):
            break
        await asyncio.sleep(0.1)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    stack = Stack(
        workdir=workdir, bridge_db=db_url, postgres=postgres, synapse=synapse, bridge=bridge,
        observer=observer, receiver=receiver, config_path=config_path, secret=secret,
        as_token=as_token, staff_id=staff_id, staff_token=staff_token, staff_password=password,
        bare_token=bare_reg.as_token, bare_proc=bare_proc, session=session,
    )  # fmt: skip
    # The bare appservice's bot must exist before it can be invited.
    await stack.matrix(
        "POST", "/_matrix/client/v3/register", bare_reg.as_token,
        {"type": "m.login.application_service", "username": BARE_BOT},
    )  # fmt: skip
    log.info("Stack up after %.1fs", time.monotonic() - started)
    return stack


def _start_bare(
    workdir: Path, port: int, hs_token: str, forward_url: str
) -> subprocess.Popen[bytes]:
    with (workdir / "bare.log").open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable, "-m", "bench.bare_appservice", "--port", str(port),
                "--hs-token", hs_token, "--bot", f"@{BARE_BOT}:{SERVER_NAME}",
                "--forward", forward_url,
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def _allow_large_files(config_path: Path) -> None:
    """Let the webhook account carry the media measurement's files, and give their outbound
    requests the time a large body takes."""
    from ruamel.yaml import YAML

    yaml = YAML()
    data = yaml.load(config_path.read_text())
    hooks = data["channels"][ACCOUNT]
    hooks["max_file_size"] = MAX_FILE_MB * 1024 * 1024
    hooks["request_timeout"] = 300
    with config_path.open("w") as f:
        yaml.dump(data, f)


def _set_encryption(config_path: Path, **values: bool) -> None:
    from ruamel.yaml import YAML

    yaml = YAML()
    data = yaml.load(config_path.read_text())
    data["encryption"].update(values)
    with config_path.open("w") as f:
        yaml.dump(data, f)


def _read_token(config_path: Path) -> str:
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(config_path.read_text())
    return str(data["appservice"]["as_token"])
