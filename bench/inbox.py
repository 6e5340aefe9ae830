"""The team inbox's figures (issue 12): what routing and assignment add to the first message of
a conversation, and the assignment flood. Both run in this process, on a database of each kind
(SQLite, and a database on the run's PostgreSQL) opened as the bridge opens its own.

What routing and assignment add to a first message
    Measured in-process; ``bench.inbox_e2e`` times the first message end to end with the
    inbox off and on, but cannot judge 2 ms: the core calls the inbound hooks after the message
    was sent into its room (``bridge/core/pipeline.py``), so of the inbox only the room namer's
    one read lies on that path (the hook holds up the conversation's next item, not this one),
    and the room's creation on that path takes hundreds of milliseconds on Synapse with a
    spread of tens. So here each first contact is timed through what the bridge runs for it:
    the room namer (as the room is made), then the inbox's inbound hook: the routing rules
    (keywords among them), the conversation's row, round-robin or least-open assignment in its
    locked transaction, the team room's stored rows. The core's services are a stand-in that
    makes no Matrix call (invitations, notices, names: homeserver round trips, not routing or
    assignment) but reads what the real ones read. The reference, taken in turn with it: the
    same first contacts through a no-op inbound hook and the plain room name.

The assignment flood
    100 new conversations at once over five members, as the test of the engine does
    (``tests/features/inbox/test_assignment.py``): 100 tasks on five connections, each storing
    its conversation and then running ``assign_next``. Timed until all are assigned; then
    checked: every conversation assigned once, 20 to each member, nothing left in the queue;
    otherwise the benchmark fails. The reference, in the same run and the same shape: the same
    100 rows stored and given to the same members by plain updates, without the team's lock,
    the row locks and ``SKIP LOCKED``. A flood takes a few hundred milliseconds, so each repeat
    takes the two in turn several times (``--inbox-floods``) and keeps the median of each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mautrix.util.async_db import Database

from bridge import db as dbm
from bridge.config import Config, parse
from bridge.core.bridge import _db_args
from bridge.db.inbox import InboxConversation
from bridge.events import RemoteChat, RemoteMessage, RemoteUser
from bridge.features.inbox.assignment import Assigned, Assignment
from bridge.features.inbox.module import INBOX
from bridge.seams import ConversationRef, Inbound, Seams
from bridge.types import AccountID, MessageID, RemoteChatID, RemoteUserID
from tests.infra.bridge_proc import write_bridge_config
from tests.infra.ports import LOOPBACK
from tests.infra.postgres import PostgresServer

from .stack import ACCOUNT, SERVER_NAME
from .stats import median, percentile

log = logging.getLogger("bench.inbox")

MEMBERS = tuple(f"@agent{n}:{SERVER_NAME}" for n in range(1, 6))
FLOOD = 100
FLOOD_POOL = {"min_size": 5, "max_size": 5}
"""Five connections, so that the flood's assignments really run at once on both backends."""
MODES = ("round_robin", "least_open")
WARM_UP = 5
SECTION: dict[str, Any] = {
    "teams": {
        "support": {"members": list(MEMBERS), "assignment": "round_robin"},
        "billing": {"members": list(MEMBERS[:3]), "assignment": "least_open"},
        "sales": {"members": list(MEMBERS[3:]), "assignment": "round_robin"},
    },
    "accounts": {ACCOUNT: "support"},
    "routing": [
        {"team": "billing", "keywords": ["invoice", "refund", "payment failed"]},
        {"team": "sales", "keywords": ["price", "quote", "discount"]},
    ],
}
FIRST_TEXTS = (
    "Hello, my parcel has not arrived yet",  # no keyword: the account's team
    "The invoice for May shows the wrong address",
    "What is the price for ten seats?",
)


class FloodFailure(RuntimeError):
    """The flood did not give every conversation once, 20 to each member."""


class StandIn:
    """The core's services for the inbox without a homeserver: what would be a Matrix call
    returns at once; a rename reads the room's name through the room namer, as the core's
    does before it sets it."""

    def __init__(self) -> None:
        self.namer: Callable[[ConversationRef, str], Awaitable[str]] | None = None

    async def send_text(self, *args: Any, **kwargs: Any) -> bool:
        return True

    async def notice(self, room_id: str, text: str, *, txn: str | None = None) -> str | None:
        return "$notice"

    async def invite(self, room_id: str, user: str, account: str) -> bool:
        return True

    async def displayname(self, room_id: str, user: str) -> str:
        return user[1:].split(":")[0]

    def level(self, actor: str, account: str | None = None) -> str:
        return "staff"

    async def bot_room(
        self, key: str, name: str, topic: str, invite: list[str], *, space: bool = False
    ) -> str:
        return f"!{key}:{SERVER_NAME}"

    async def join_room(self, alias_or_id: str) -> str:
        return alias_or_id

    async def set_state(
        self, room_id: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> None:
        return None

    async def edit_notice(self, room_id: str, event_id: str, text: str, *, txn: str) -> None:
        return None

    async def rename(self, conversation: ConversationRef) -> None:
        if self.namer is not None:
            await self.namer(conversation, conversation.chat)


class NoHook:
    async def on_inbound(self, inbound: Inbound) -> None:
        return None


def bridge_config(workdir: Path, db_url: str) -> Config:
    """The bench's bridge config with the inbox of ``SECTION``, on ``db_url``."""
    data = write_bridge_config(
        workdir / "config-inbox.yaml", hs_url=f"http://{LOOPBACK}:1", domain=SERVER_NAME,
        db_url=db_url, staff=[], admins=[], outbound_url=f"http://{LOOPBACK}:1/inbox",
        secret="bench-inbox-secret-bench-inbox-secret", features={"inbox": SECTION},
    )  # fmt: skip
    return parse(data)


async def open_db(config: Config, pool: dict[str, int] | None = None) -> Database:
    """The database of ``config``, opened with the bridge's own arguments (and ``pool``)."""
    db = Database.create(
        config.db_url,
        upgrade_table=dbm.upgrade_table,
        db_args={**_db_args(config), **(pool or {})},
        log=log,  # type: ignore[arg-type]
    )
    dbm.init(db)
    await db.start()
    return db


def first_contact(chat: str, text: str) -> Inbound:
    event = RemoteMessage(
        chat=RemoteChat(RemoteChatID(chat)),
        sender=RemoteUser(RemoteUserID(f"customer-{chat}"), f"Customer {chat}"),
        message_id=MessageID(f"first-{chat}"),
        text=text,
    )
    ref = ConversationRef(AccountID(ACCOUNT), RemoteChatID(chat), f"!{chat}:{SERVER_NAME}")
    return Inbound(ref, event, first_contact=True)


def _latency(ms: list[float]) -> dict[str, float]:
    return {
        "messages": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "mean_ms": sum(ms) / len(ms) if ms else float("nan"),
    }


async def first_contacts(config: Config, tag: str, count: int) -> dict[str, dict[str, float]]:
    """``count`` first contacts through the inbox and as many through a no-op hook, taken in
    turn (the no-op first on odd ones); their latencies in ms."""
    options = INBOX.parse_config(config.features["inbox"], config)
    assert options is not None
    services = StandIn()
    inbox = Seams(config, services)
    INBOX.setup(inbox, options)
    namer = inbox.room_namer
    assert namer is not None
    services.namer = namer
    plain = Seams(config, StandIn())
    plain.add_inbound_hook(NoHook())

    async def with_inbox(inbound: Inbound) -> None:
        await namer(inbound.conversation, inbound.conversation.chat)
        await inbox.inbound(inbound)

    async def without(inbound: Inbound) -> None:
        await plain.inbound(inbound)

    paths: dict[str, Callable[[Inbound], Awaitable[None]]] = {
        "inbox": with_inbox,
        "noop": without,
    }
    for n in range(WARM_UP):
        for name, run in paths.items():
            await run(first_contact(f"{tag}-warm-{name}-{n}", FIRST_TEXTS[n % len(FIRST_TEXTS)]))
    ms: dict[str, list[float]] = {name: [] for name in paths}
    for n in range(count):
        order = list(paths.items())
        for name, run in order[::-1] if n % 2 else order:
            inbound = first_contact(f"{tag}-{name}-{n}", FIRST_TEXTS[n % len(FIRST_TEXTS)])
            started = time.perf_counter()
            await run(inbound)
            ms[name].append((time.perf_counter() - started) * 1000)
    return {name: _latency(samples) for name, samples in ms.items()}


@dataclass(frozen=True)
class FloodTeam:
    name: str
    members: tuple[str, ...]
    mode: str
    limit: int | None = None


async def _clear() -> None:
    for table in ("inbox_conversation", "inbox_pause", "inbox_team", "inbox_agent"):
        await InboxConversation.db.execute(f"DELETE FROM {table}")


async def flood(mode: str, tag: str) -> tuple[float, list[Assigned]]:
    """100 new conversations at once, each stored and then ``assign_next`` run; the wall time
    (ms) until every task is done, and what was assigned."""
    team = FloodTeam(f"flood-{mode}", MEMBERS, mode)
    engine = Assignment([team])

    async def arrive(n: int) -> list[Assigned]:
        await InboxConversation.create(ACCOUNT, f"{tag}-{n}", team.name, n + 1)
        return await engine.assign_next(team.name)

    started = time.perf_counter()
    results = await asyncio.gather(*(arrive(n) for n in range(FLOOD)))
    took = (time.perf_counter() - started) * 1000
    return took, [a for result in results for a in result]


async def plain(mode: str, tag: str) -> tuple[float, list[Assigned]]:
    """The reference: the same 100 rows stored and given to the same members in turn by plain
    updates, no locks, with the same concurrency."""
    team = f"flood-{mode}"

    async def arrive(n: int) -> Assigned:
        chat, member = f"{tag}-{n}", MEMBERS[n % len(MEMBERS)]
        await InboxConversation.create(ACCOUNT, chat, team, n + 1)
        await InboxConversation.assign(ACCOUNT, chat, member, n + 1)
        return ACCOUNT, chat, member

    started = time.perf_counter()
    assigned = await asyncio.gather(*(arrive(n) for n in range(FLOOD)))
    return (time.perf_counter() - started) * 1000, list(assigned)


async def check(mode: str, assigned: list[Assigned]) -> dict[str, int]:
    """Every conversation assigned once, 20 to each member, also as stored; else fail."""
    each = FLOOD // len(MEMBERS)
    counts = Counter(mxid for *_, mxid in assigned)
    chats = Counter(chat for _, chat, _ in assigned)
    twice = sorted(chat for chat, n in chats.items() if n > 1)
    if len(chats) != FLOOD or twice or counts != dict.fromkeys(MEMBERS, each):
        raise FloodFailure(
            f"{mode}: {len(chats)} of {FLOOD} conversations assigned, twice: {twice}, "
            f"per member: {dict(counts)}"
        )
    stored = await InboxConversation.open_counts(MEMBERS)
    waiting = await InboxConversation.queue(f"flood-{mode}")
    if stored != dict.fromkeys(MEMBERS, each) or waiting:
        raise FloodFailure(f"{mode}: stored per member {stored}, {len(waiting)} still queued")
    return dict(counts)


async def floods(config: Config, rounds: int) -> dict[str, dict[str, Any]]:
    """Each mode's flood and its reference, taken in turn ``rounds`` times (the reference
    first in odd rounds), every one checked; the median time of each, and each one's."""
    db = await open_db(config, FLOOD_POOL)
    out: dict[str, dict[str, Any]] = {}
    try:
        for mode in MODES:
            times: dict[str, list[float]] = {"assign": [], "plain": []}
            result: dict[str, Any] = {}
            for n in range(rounds):
                runs = [("assign", flood), ("plain", plain)]
                for name, run in runs[::-1] if n % 2 else runs:
                    await _clear()
                    took, assigned = await run(mode, f"{name}{n}")
                    times[name].append(took)
                    result[f"{name}_counts"] = await check(mode, assigned)
            for name, ms in times.items():
                result[f"{name}_ms"] = median(ms)
                result[f"{name}_rounds_ms"] = ms
            out[mode] = result
    finally:
        await db.stop()
    return out


async def measure_inbox(
    workdir: Path,
    postgres: PostgresServer | None,
    kinds: list[str],
    first: int,
    rounds: int,
    rep: int,
) -> dict[str, Any]:
    """One repeat of both measurements on each database kind in ``kinds``: ``first`` first
    contacts each way, ``rounds`` floods of each mode and as many references."""
    result: dict[str, Any] = {"first": {}, "flood": {}}
    for kind in kinds:
        urls = {}
        for use in ("first", "flood"):
            name = f"bench_inbox_{use}_{rep}"
            if kind == "postgres":
                assert postgres is not None
                urls[use] = await asyncio.to_thread(postgres.create_database, name)
            else:
                urls[use] = f"sqlite:{workdir / f'{name}.db'}"
        started = time.monotonic()
        config = bridge_config(workdir, urls["first"])
        db = await open_db(config)
        try:
            first_ms = await first_contacts(config, f"r{rep}", first)
        finally:
            await db.stop()
        result["first"][kind] = first_ms
        result["flood"][kind] = flooded = await floods(
            bridge_config(workdir, urls["flood"]), rounds
        )
        log.info(
            "repeat %d inbox on %s: first message p50 %.2f ms (no-op hook %.3f ms); flood %s "
            "(%.1fs)",
            rep + 1, kind, first_ms["inbox"]["p50_ms"], first_ms["noop"]["p50_ms"],
            ", ".join(
                f"{mode} {r['assign_ms']:.0f} ms vs plain {r['plain_ms']:.0f} ms, "
                f"{sorted(r['assign_counts'].values())}"
                for mode, r in flooded.items()
            ),
            time.monotonic() - started,
        )  # fmt: skip
    return result
