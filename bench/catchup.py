"""The catch-up after an outage (issue 18): how long reading back 1,000 active rooms takes and
what it costs the homeserver.

A Synapse of its own (on the run's PostgreSQL; its appservice is pushed nothing) holds ``rooms``
rooms of the appservice's bot, each with three messages of a staff user. The bridge's tables
(same PostgreSQL) have every room active and every staff event recorded as pushed, but the last
message in every tenth room (lost). Measured in this process: the real ``CatchUp``,
``MatrixSender`` and ``Dispatcher`` (default ``catch_up`` config), from ``plan("outage")`` until
the dispatcher is idle. References, at the same concurrency: the same ``/messages`` reads made
directly with aiohttp as the bot (same pages), and one message by the bot to each room. The
homeserver's cost: CPU of Synapse and its database connections, requests. Between repeats the
rooms' reads and the lost events' records are forgotten."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from mautrix.appservice import AppServiceAPI
from mautrix.types import UserID
from mautrix.util.async_db import Database

import bridge.db
from bridge.catchup_config import CatchUpConfig
from bridge.core.bridge import StateStore
from bridge.core.catchup import KIND, CatchUp
from bridge.core.dispatcher import Dispatcher
from bridge.core.notices import Notices
from bridge.core.sender import TIMELINE_FILTER, MatrixSender
from bridge.db import QueueItem, RoomTimeline
from bridge.metrics.registry import BridgeMetrics
from tests.infra.postgres import PostgresServer
from tests.infra.synapse import (
    SynapseServer,
    postgres_database_config,
    write_appservice_registration,
)

from .cpu import CpuSnapshot
from .stack import SERVER_NAME, call_matrix

log = logging.getLogger("bench.catchup")
T = TypeVar("T")

BOT, STAFF = "catchupbot", "catchupstaff"
BOT_ID, STAFF_ID = f"@{BOT}:{SERVER_NAME}", f"@{STAFF}:{SERVER_NAME}"
MESSAGES = 3
LOST_EVERY = 10
"""Every tenth room's last staff message was never recorded: the catch-up must find it."""
SETUP_CONCURRENCY = 8
SETTLE = 1.0
"""Seconds between runs, so one run's leftovers (Synapse background work) settle."""
TIMEOUT = 600.0
SYNAPSE_DB = "catchup_synapse"


@dataclass
class Homeserver:
    """The part's Synapse, a client session to it, and the requests that session made since
    the last ``reset`` (and the rooms it read back)."""

    synapse: SynapseServer
    postgres: PostgresServer
    as_token: str
    staff_token: str = ""
    requests: int = 0
    rooms_read: set[str] = field(default_factory=set)
    _txn: int = 0

    def __post_init__(self) -> None:
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._started)
        connector = aiohttp.TCPConnector(limit=100)
        self.session = aiohttp.ClientSession(connector=connector, trace_configs=[trace])

    async def _started(self, _: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        self.requests += 1
        parts = params.url.path.split("/")
        if parts[-1] == "messages":
            self.rooms_read.add(urllib.parse.unquote(parts[-2]))

    def reset(self) -> None:
        self.requests = 0
        self.rooms_read.clear()

    async def call(self, method: str, path: str, token: str, body: Any = None) -> Any:
        return await call_matrix(self.session, method, self.synapse.base_url + path, token, body)

    async def send(self, room_id: str, token: str, text: str) -> str:
        self._txn += 1
        path = f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/cu{self._txn}"
        answer = await self.call("PUT", path, token, {"msgtype": "m.text", "body": text})
        return str(answer["event_id"])

    async def cpu(self) -> CpuSnapshot:
        """CPU seconds so far of Synapse's process and of its database connections."""
        q = f"SELECT pid FROM pg_stat_activity WHERE datname = '{SYNAPSE_DB}'"
        backends = [int(pid) for pid in (await asyncio.to_thread(self.postgres.psql, q)).split()]
        return CpuSnapshot.take({"synapse": [self.synapse.pid or 0], "synapse_db": backends})


async def _each(rooms: Iterable[Any], at_once: int, run: Callable[[Any], Awaitable[T]]) -> list[T]:
    """``run`` for every one of ``rooms``, ``at_once`` at a time."""
    sem = asyncio.Semaphore(at_once)

    async def one(room: Any) -> T:
        async with sem:
            return await run(room)

    return await asyncio.gather(*(one(room) for room in rooms))


async def measure_catchup(
    workdir: Path, postgres: PostgresServer, rooms: int, repeat: int
) -> list[dict[str, Any]]:
    """``repeat`` runs of a catch-up of ``rooms`` active rooms and its two references."""
    reg = write_appservice_registration(
        workdir / "catchup-registration.yaml", id="bench-catchup", url=None,
        sender_localpart=BOT, user_regex=f"@catchup_.*:{SERVER_NAME}",
    )  # fmt: skip
    await asyncio.to_thread(
        postgres.psql,
        f"CREATE DATABASE {SYNAPSE_DB} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' "
        "TEMPLATE template0",
    )
    db_url = await asyncio.to_thread(postgres.create_database, "catchup_bridge")
    synapse = SynapseServer(
        workdir / "catchup-synapse", [reg.path], SERVER_NAME, startup_timeout=180,
        database=postgres_database_config(
            postgres.host, postgres.port, postgres.superuser, SYNAPSE_DB
        ),
    )  # fmt: skip
    await synapse.astart()
    db = Database.create(db_url, upgrade_table=bridge.db.upgrade_table)
    bridge.db.init(db)
    await db.start()
    hs = Homeserver(synapse, postgres, reg.as_token)
    try:
        _, hs.staff_token = await synapse.aregister_user(STAFF, secrets.token_hex(8))
        started = time.monotonic()
        room_ids, lost = await _make_rooms(hs, rooms)
        log.info("catch-up: %d rooms ready in %.1fs", rooms, time.monotonic() - started)
        runs = []
        for rep in range(repeat):
            # As before the first repeat: no room read back, the lost events not recorded.
            await db.execute("UPDATE room_timeline SET checked_at=NULL")
            await db.execute("DELETE FROM matrix_seen WHERE event_id = ANY($1::text[])", lost)
            runs.append(await _repeat(hs, room_ids, len(lost), rep))
        return runs
    finally:
        await hs.session.close()
        await db.stop()
        await synapse.astop()


async def _make_rooms(hs: Homeserver, count: int) -> tuple[list[str], list[str]]:
    """Rooms of the bot with the staff user's messages in them; every event of the staff user
    (its join too) recorded as pushed except the lost ones (returned); every room active. The
    rooms are read back once all are made: Synapse's ``/messages`` may not show yet an event
    stored while others are still being stored."""

    async def one(n: int) -> tuple[str, str | None]:
        body = {"preset": "private_chat", "invite": [STAFF_ID], "name": f"catch-up {n}"}
        made = await hs.call("POST", "/_matrix/client/v3/createRoom", hs.as_token, body)
        room_id = str(made["room_id"])
        await hs.call("POST", f"/_matrix/client/v3/join/{room_id}", hs.staff_token)
        sent = [await hs.send(room_id, hs.staff_token, f"staff {n}.{m}") for m in range(MESSAGES)]
        return room_id, sent[-1] if n % LOST_EVERY == LOST_EVERY - 1 else None

    async def pushed(room: tuple[str, str | None]) -> tuple[str, list[dict[str, Any]], str | None]:
        path = f"/_matrix/client/v3/rooms/{room[0]}/messages?dir=b&limit=100"
        events = [e for e in (await hs.call("GET", path, hs.as_token))["chunk"]
                  if e["sender"] == STAFF_ID and e["event_id"] != room[1]]  # fmt: skip
        assert len(events) == MESSAGES + (room[1] is None), (room, events)  # and the join
        return room[0], events[::-1], room[1]

    began = int(time.time() * 1000)  # the bridge saw the rooms from their start
    rooms = await _each(range(count), SETUP_CONCURRENCY, one)
    made = await _each(rooms, SETUP_CONCURRENCY, pushed)
    recorded = [(f"mx:{room_id}", "matrix", evt) for room_id, pushed, _ in made for evt in pushed]
    for start in range(0, len(recorded), 1000):
        await QueueItem.record_transaction(f"setup-{start}", recorded[start : start + 1000])
    await QueueItem.db.execute("DELETE FROM queue")  # handled, as the bridge would have
    await RoomTimeline.touch(
        (room_id, began, pushed[-1]["event_id"], pushed[-1]["origin_server_ts"])
        for room_id, pushed, _ in made
    )
    return [room_id for room_id, _, _ in made], [lost for _, _, lost in made if lost]


async def _repeat(hs: Homeserver, rooms: list[str], lost: int, rep: int) -> dict[str, Any]:
    """The catch-up and the direct reads, in turn (the order swapped in odd repeats), then the
    sends (which add an event to every room)."""
    config = CatchUpConfig()
    result: dict[str, Any] = {"rooms": len(rooms), "lost": lost}
    runs = {"catchup": _catch_up(hs, config), "reads": _reads(hs, rooms, config)}
    for name in list(runs)[::-1] if rep % 2 else list(runs):
        result[name] = await _measured(hs, runs[name])
    sending = _each(rooms, config.concurrency, lambda room: hs.send(room, hs.as_token, "a send"))
    result["sends"] = await _measured(hs, sending)
    c, r, s = result["catchup"], result["reads"], result["sends"]
    log.info(
        "catch-up %d: %d rooms in %.2fs (%d requests, %.2fs homeserver CPU, %d found); direct "
        "reads %.2fs (%d requests, %.2fs CPU); sends %.2fs CPU", rep + 1, len(rooms), c["wall_s"],
        c["requests"], c["hs_cpu_s"], c["found"], r["wall_s"], r["requests"], r["hs_cpu_s"],
        s["hs_cpu_s"],
    )  # fmt: skip
    return result


async def _measured(hs: Homeserver, run: Awaitable[Any]) -> dict[str, Any]:
    """Wall time, requests and homeserver CPU of ``run`` (and the figures it returns)."""
    await asyncio.sleep(SETTLE)
    hs.reset()
    before = await hs.cpu()
    started = time.perf_counter()
    figures = await run
    wall = time.perf_counter() - started
    used = (await hs.cpu()).used_since(before)
    return {
        "wall_s": wall,
        "requests": hs.requests,
        "rooms_read": len(hs.rooms_read),
        "synapse_cpu_s": used["synapse"],
        "synapse_db_cpu_s": used["synapse_db"],
        "hs_cpu_s": used["synapse"] + used["synapse_db"],
        **(figures if isinstance(figures, dict) else {}),
    }


async def _catch_up(hs: Homeserver, config: CatchUpConfig) -> dict[str, Any]:
    """The bridge's catch-up of every active room, from planning until the queue is empty."""
    metrics = BridgeMetrics()
    api = AppServiceAPI(
        base_url=hs.synapse.base_url, bot_mxid=UserID(BOT_ID), token=hs.as_token,
        state_store=StateStore(), client_session=hs.session,
        log=logging.getLogger("bench.catchup.api"),  # type: ignore[arg-type]
    )  # fmt: skip
    sender = MatrixSender(api, UserID(BOT_ID), metrics)
    queued: list[str] = []

    async def handle(item: QueueItem) -> None:
        if item.kind == KIND:
            await catchup.handle(item)
        else:  # a found event: the bridge would send it on to the customer
            queued.append(str(item.payload.get("event_id")))

    async def queue_key(event: dict[str, Any]) -> str:
        return f"mx:{event['room_id']}"

    async def no_deadline(room_id: str) -> float | None:
        return None

    dispatcher = Dispatcher(handle, metrics=metrics)
    catchup = CatchUp(
        config, sender, dispatcher, Notices(sender), is_own=lambda user: user == BOT_ID,
        queue_key=queue_key, deadline=no_deadline, metrics=metrics,
    )  # fmt: skip
    try:
        planned = await catchup.plan("outage")
        await asyncio.wait_for(dispatcher.wait_idle(), TIMEOUT)
    finally:
        await dispatcher.stop()
    return {"planned": planned, "found": catchup.found, "queued": len(queued)}


async def _reads(hs: Homeserver, rooms: list[str], config: CatchUpConfig) -> dict[str, Any]:
    """The same reads straight from aiohttp: every room newest first, page by page as the
    catch-up pages, at most ``max_pages``, ``concurrency`` rooms at once."""
    query = {"dir": "b", "limit": str(config.page_size), "filter": json.dumps(TIMELINE_FILTER)}
    events = 0

    async def one(room_id: str) -> None:
        nonlocal events
        start: str | None = None
        for _ in range(config.max_pages):
            page = dict(query, **({"from": start} if start else {}))
            path = f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id)}/messages?"
            answer = await hs.call("GET", path + urllib.parse.urlencode(page), hs.as_token)
            chunk, start = answer.get("chunk") or [], answer.get("end")
            events += len(chunk)
            if not chunk or not start:
                return

    await _each(rooms, config.concurrency, one)
    return {"events": events}
