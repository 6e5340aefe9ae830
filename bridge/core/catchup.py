"""Catch-up from room timelines: staff events the homeserver stored but never pushed.

Synapse keeps an appservice's events in memory between advancing its stream position and
storing the transaction it makes of them: killed in between, it never pushes them. The bridge
remembers per room when it last saw or sent something there and up to when it has read the
room back (``room_timeline``), and every event id it recorded (``matrix_seen``). When the
homeserver may have lost events, every room active within ``catch_up.active_window`` gets a
catch-up item in its conversation's queue:

* when a request to the homeserver fails after it answered (the item is queued then, before
  the homeserver is back, so it stands ahead of everything pushed after the restart);
* when the homeserver numbers its transactions anew (Synapse on SQLite does after a restart);
* at the bridge's start;
* every ``catch_up.interval``, for the rooms active since their last read (an outage nobody
  noticed).

The item, when its turn comes, waits for the homeserver, reads the room back as the bot
(``/messages``, newest first, at most ``max_pages`` pages, down to its last read) and queues
every event of a user that is not the bridge's and that it never recorded, in their order, at
its own place in the queue: ahead of what was pushed after it. Deduplication by event id makes
a later push of a found event a no-op. A message found older than its channel's delivery
deadline is not sent; the room is told."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..catchup_config import CatchUpConfig
from ..db import QueueItem, RoomTimeline
from ..db.queue import event_id_of
from ..logsafe import pii
from ..metrics.registry import BridgeMetrics
from .appservice import MAX_ID_LENGTH, clean_event
from .dispatcher import Dispatcher, GiveUp
from .notices import Notices
from .sender import MatrixSender, Refused
from .util import txn_id

log = logging.getLogger("bridge.catchup")

KIND = "catchup"
SLACK_MS = 60_000
"""Read this much further back than the last read: clocks of servers differ."""
FIRST_SLACK_MS = 2_000
"""Read this much further back than the room's first activity (the bridge's clock and the
homeserver's)."""
FLUSH_INTERVAL = 2.0
"""Seconds between writes of the rooms' activity (kept in memory meanwhile)."""
PROBE_INTERVAL = 1.0
"""Seconds between two probes of a homeserver that is down, while catch-ups wait for it."""
MESSAGE_TYPES = frozenset({"m.room.message", "m.room.encrypted", "m.sticker"})
"""Events that are messages to someone: found too late, they are not sent."""

TRIGGERS = {
    "outage": "the homeserver stopped answering",
    "restart": "the homeserver numbered its transactions anew (it restarted)",
    "start": "the bridge started",
    "periodic": "the periodic look at rooms active since their last read",
}

QueueKey = Callable[[dict[str, Any]], Awaitable[str]]
Deadline = Callable[[str], Awaitable[float | None]]
"""The delivery deadline (seconds) of a room's channel account; None: the room is no portal."""


class CatchUp:
    def __init__(
        self,
        config: CatchUpConfig,
        sender: MatrixSender,
        dispatcher: Dispatcher,
        notices: Notices,
        *,
        is_own: Callable[[str], bool],
        queue_key: QueueKey,
        deadline: Deadline,
        metrics: BridgeMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.sender = sender
        self.dispatcher = dispatcher
        self.notices = notices
        self.is_own = is_own
        self.queue_key = queue_key
        self.deadline = deadline
        self.metrics = metrics
        self.clock = clock
        self._activity: dict[str, tuple[int, str | None, int | None]] = {}
        """Rooms seen or sent to since the last flush: when, the last event recorded, its ts."""
        self._planning: asyncio.Task[None] | None = None
        self._since = 0
        """When the bridge began recording event ids: events before are not looked at."""
        self._last_txn: int | None = None
        self._reads = asyncio.Semaphore(config.concurrency)
        self._probe = asyncio.Lock()
        self.found = 0
        """Events found by catch-ups since the start (and queued or told late)."""

    # ------------------------------------------------------------------ activity

    def recorded(self, items: list[QueueItem]) -> None:
        """Events the appservice listener recorded: their rooms are active."""
        now = self._now()
        for item in items:
            room_id = item.payload.get("room_id")
            if item.kind != "matrix" or not isinstance(room_id, str):
                continue
            if len(room_id.encode()) > MAX_ID_LENGTH:
                continue  # names no room (a key that long would not fit the index either)
            ts = item.payload.get("origin_server_ts")
            event_id = event_id_of(item.payload)
            self._activity[room_id] = (
                now,
                event_id,
                ts if isinstance(ts, int) and event_id else None,
            )

    def sent(self, room_id: str) -> None:
        """The bridge sent an event to ``room_id``."""
        _, event_id, ts = self._activity.get(room_id, (0, None, None))
        self._activity[room_id] = (self._now(), event_id, ts)

    async def flush(self) -> None:
        """Write the rooms' activity (the job every ``FLUSH_INTERVAL``, and at stop)."""
        if not self._activity:
            return
        batch, self._activity = self._activity, {}
        try:
            await RoomTimeline.touch((room, *values) for room, values in batch.items())
        except Exception:
            for room, values in batch.items():
                self._activity.setdefault(room, values)
            raise

    # ------------------------------------------------------------------ triggers

    async def start(self) -> None:
        """Before the listener accepts transactions: one catch-up of every active room
        (the homeserver may have lost events while the bridge was away)."""
        self._since = await RoomTimeline.recording_since()
        await self.plan("start")

    def watch(self, reachable: bool) -> None:
        """A transition of the homeserver's reachability: when it stops answering, the
        catch-ups are queued at once, ahead of whatever it pushes once it is back."""
        if not reachable:
            self.trigger("outage")

    def trigger(self, reason: str, *, unchecked: bool = False) -> None:
        """Plan the catch-ups for ``reason`` (a key of ``TRIGGERS``) in the background, after
        a planning under way (a periodic look is covered by any planning under way)."""
        previous = self._planning
        if previous is not None and previous.done():
            previous = None
        if previous is not None and unchecked:
            return
        self._planning = asyncio.create_task(
            self._plan_after(previous, reason, unchecked), name="catch-up:plan"
        )

    async def _plan_after(
        self, previous: asyncio.Task[None] | None, reason: str, unchecked: bool
    ) -> None:
        if previous is not None:
            await asyncio.shield(previous)  # it logs its own failure
        try:
            await self.plan(reason, unchecked=unchecked)
        except Exception:
            log.exception("Could not queue the catch-ups (%s); the next look will", reason)

    async def before_record(self, txn: str) -> None:
        """Before a transaction's events are recorded: a transaction numbered lower than the
        last one means the homeserver restarted (and may have lost events), so the catch-ups
        are queued first; a planning under way is awaited (its items go first). The same
        number again is a transaction resent (its answer was lost), no restart."""
        number = int(txn) if txn.isdigit() and len(txn) < 19 else None
        if number is not None:
            if self._last_txn is not None and number < self._last_txn:
                self.trigger("restart")
            self._last_txn = number
        planning = self._planning
        if planning is not None and not planning.done():
            await asyncio.shield(planning)

    async def periodic(self) -> None:
        """The job every ``catch_up.interval``: rooms active since their last read."""
        self.trigger("periodic", unchecked=True)
        if self._planning is not None:
            await asyncio.shield(self._planning)

    async def plan(self, reason: str, *, unchecked: bool = False) -> int:
        """For ``reason`` (a key of ``TRIGGERS``), queue a catch-up for every room active
        within the window (with ``unchecked``: active since its last read) that has none
        queued; returns how many were queued."""
        await self.flush()
        now = self._now()
        since = now - int(self.config.active_window * 1000)
        rooms = await RoomTimeline.active(since, unchecked=unchecked)
        # Rooms with a catch-up in the queue (also one that failed and is retried) get none.
        waiting = {p.get("room_id") for p in await QueueItem.payloads(KIND)}
        queued = 0
        for room in rooms:
            if room.room_id in waiting:
                continue
            key = await self.queue_key({"room_id": room.room_id})
            payload = {"room_id": room.room_id, "reason": reason, "planned_at": now}
            item = await QueueItem.enqueue(key, KIND, payload)
            self.dispatcher.submit(item)
            queued += 1
        if queued:
            log.info("Queued a catch-up of %d room(s): %s", queued, TRIGGERS[reason])
        self.metrics.catch_up_planned(reason, queued)
        return queued

    # ------------------------------------------------------------------ the queue item

    async def handle(self, item: QueueItem) -> None:
        room_id = item.payload.get("room_id")
        planned_at = item.payload.get("planned_at")
        if not isinstance(room_id, str) or not isinstance(planned_at, int):
            raise GiveUp("unreadable catch-up item")
        async with self._reads:
            await self._homeserver_up()
            timeline = await RoomTimeline.get(room_id)
            floor = planned_at - int(self.config.active_window * 1000)
            if timeline is not None and timeline.checked_at is not None:
                floor = max(floor, timeline.checked_at)
            floor = max(floor - SLACK_MS, self._since)
            if timeline is not None:
                floor = max(floor, timeline.first_at - FIRST_SLACK_MS)
            events = await self._read_back(room_id, floor)
        people = self._people(events)
        seen = await QueueItem.seen([str(e["event_id"]) for e in people])
        new = [e for e in people if e["event_id"] not in seen]
        send, late = await self._split_late(room_id, new)
        # Each found event goes right after the event it followed in the room when that one is
        # still queued (pushed after the outage, waiting behind this item), else here.
        queued = {
            event_id_of(i.payload): i
            for i in await QueueItem.pending_for(item.queue_key, item.id)
            if i.kind == "matrix"
        }
        sending = {id(e) for e in send}
        anchor, found = item, []
        for evt in people:
            if evt["event_id"] in queued:
                anchor = queued[evt["event_id"]]
            elif id(evt) in sending:
                found.append((evt, _accepted_at(evt, self._now()), anchor))
        for evt in late:
            await self._tell_late(room_id, evt)
        told = [str(evt["event_id"]) for evt in late]
        items = await RoomTimeline.caught_up(item, room_id, found, told, planned_at)
        self.found += len(new)
        self.metrics.caught_up(len(send), len(late))
        if new:
            log.warning(
                "Catch-up of %s found %d event(s) the homeserver never pushed (%d too late)",
                pii(room_id), len(new), len(late),
            )  # fmt: skip
        after = {evt["event_id"]: anchor.id for evt, _, anchor in found}
        groups: dict[int, list[QueueItem]] = {}
        for queued_item in items:
            groups.setdefault(after[queued_item.payload["event_id"]], []).append(queued_item)
        for anchor_id, group in groups.items():
            self.dispatcher.submit_after(anchor_id, group)

    async def _homeserver_up(self) -> None:
        """Return once the homeserver answers; while it is down one probe a second serves
        every waiting catch-up."""
        reach = self.metrics.reachability
        while reach.reachable is False:
            async with self._probe:
                if reach.reachable is not False:
                    return
                try:
                    await self.sender.versions()
                except Exception:
                    await asyncio.sleep(PROBE_INTERVAL)

    async def _read_back(self, room_id: str, floor: int) -> list[dict[str, Any]]:
        """The room's events newer than ``floor`` (ms), oldest first, at most ``max_pages``
        pages of them."""
        events: list[dict[str, Any]] = []
        start: str | None = None
        for _ in range(self.config.max_pages):
            try:
                chunk, start = await self.sender.timeline(room_id, start, self.config.page_size)
            except Refused as e:
                log.info("Cannot read %s back (%s): nothing to catch up", pii(room_id), e)
                return []
            for evt in chunk:
                ts = evt.get("origin_server_ts")
                if isinstance(ts, int) and ts < floor:
                    return events[::-1]
                events.append(evt)
            if start is None:
                return events[::-1]
        log.warning(
            "Catch-up of %s read %d pages and stopped; older events were not looked at",
            pii(room_id), self.config.max_pages,
        )  # fmt: skip
        return events[::-1]

    def _people(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The events of people (not the bridge's users), cleaned as pushed ones are."""
        people = []
        for evt in events:
            sender = evt.get("sender")
            if not isinstance(sender, str) or self.is_own(sender) or event_id_of(evt) is None:
                continue
            cleaned = clean_event(evt)
            if cleaned is not None:
                people.append(cleaned)
        return people

    async def _split_late(
        self, room_id: str, events: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if not events:
            return [], []
        deadline = await self.deadline(room_id)
        if deadline is None:
            return events, []
        now = self._now()
        send: list[dict[str, Any]] = []
        late: list[dict[str, Any]] = []
        for evt in events:
            ts = evt.get("origin_server_ts")
            too_old = isinstance(ts, int) and now - ts > deadline * 1000
            (late if too_old and evt.get("type") in MESSAGE_TYPES else send).append(evt)
        return send, late

    async def _tell_late(self, room_id: str, evt: dict[str, Any]) -> None:
        event_id = str(evt["event_id"])
        ts = evt.get("origin_server_ts")
        minutes = (self._now() - ts) // 60_000 if isinstance(ts, int) else None
        after = f" {minutes} minutes after it was sent" if minutes is not None else ""
        reason = (
            f"the homeserver lost this message in a restart; the bridge found it{after}, past "
            "the channel's delivery deadline. Send it again if it still applies."
        )
        await self.notices.failure(room_id, event_id, reason, txn=txn_id("late", event_id))

    def _now(self) -> int:
        return int(self.clock() * 1000)


def _accepted_at(evt: dict[str, Any], now: int) -> int:
    """When a found event counts as accepted: when it was sent (its delivery deadline counts
    from there), never later than now."""
    ts = evt.get("origin_server_ts")
    return min(ts, now) if isinstance(ts, int) and ts > 0 else now
