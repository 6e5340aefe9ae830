"""The broadcast engine: drafts, the snapshot of the recipients and the worker that sends.

Start (``start``)
    The list's confirmed subscribers on each of its channel accounts are written to
    ``broadcast_recipient`` page by page (``Registry.subscribers``; never all in memory), one
    row per contact and account, then the worker sends. The snapshot is redone after a crash
    (rows already written stay as they are) until it is complete.

The worker (one asyncio task per running broadcast)
    Reads the open rows (``pending``, ``sending``) in batches, in contact order, and keeps at
    most ``in_flight`` of them going at once. For each: the consent is checked right before
    sending (withdrawn meanwhile: ``skipped``, so an opt-out during a broadcast holds), the
    row becomes ``sending``, the message goes out through ``Services.send_direct`` with the
    key ``broadcast:<id>:<contact>:<account>``, and the row becomes ``sent`` with the remote
    message id. A ``sending`` row found by a later run was in flight at a crash: it is sent
    again with the same key, and counted (the webhook and email channels recognise the key;
    Telegram and WhatsApp cannot, so those may have got it twice, as the final report says).
    Temporary errors are retried with backoff (a ``retry_after`` holds the whole account's
    sending for that long) up to ``max_attempts``, then ``failed`` with the reason; permanent
    errors are ``failed`` at once. ``pause`` and ``cancel`` are durable states the worker
    looks at before every message and between batches.

Pacing: a ``Pacer`` per channel account at its rate (``features.broadcast.rates``, else the
channel's documented overall limit, else ``DEFAULT_RATES``).

Durability: a periodic job (``supervise``) starts a worker for every broadcast left
``running`` (after a SIGKILL, a database restart or a worker's error) and every scheduled one
that is due; stopping the bridge cancels the workers, whose rows stay as recorded.

For a benchmark or a script: ``await engine.broadcast(list_, Content(text), by=...)`` starts
one and returns its id, ``await engine.wait(id)`` waits for its end and returns its counts."""

from __future__ import annotations

import asyncio
import contextlib
import html as htmllib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from ...connector import PermanentDeliveryError, TemporaryDeliveryError
from ...db import Conversation
from ...db.broadcast import ACTIVE, OPEN, Broadcast, Recipient
from ...logsafe import pii
from ...seams import DirectMessage, MediaRef, Services
from ..consent.links import Links
from ..consent.registry import Registry, erased
from .config import BroadcastConfig, BroadcastList
from .pacing import Pacer
from .report import Reporter

log = logging.getLogger("bridge.broadcast")

BATCH = 200
IN_FLIGHT = 32
MAX_ATTEMPTS = 6
BACKOFF = 2.0
MAX_BACKOFF = 300.0
SUPERVISE_INTERVAL = 5.0
SNAPSHOT_PAGE = 500
DEFAULT_RATES = {"email": 5.0, "webhook": 50.0, "telegram": 30.0, "whatsapp": 80.0}
KEYED = ("webhook",)
"""Channel types whose far end recognises a repeat by its key (an SMTP server does not:
a mail in flight at a stop may arrive twice)."""
WINDOW = 24 * 3600.0
NO_TEMPLATE = "outside the 24-hour window and no template"
WITHDRAWN = "consent withdrawn"
ERASED = "erased (privacy)"
CANCELLED = "cancelled"
IN_FLIGHT_AT_STOP = "in flight at a stop"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Content:
    """What a broadcast says: a text (with HTML), or a file with the text as its caption."""

    text: str
    html: str | None = None
    media: MediaRef | None = None

    def dump(self) -> dict[str, Any]:
        return {
            "text": self.text, "html": self.html,
            "media": asdict(self.media) if self.media is not None else None,
        }  # fmt: skip

    @classmethod
    def load(cls, data: dict[str, Any]) -> Content:
        media = data.get("media")
        return cls(data["text"], data.get("html"), MediaRef(**media) if media else None)


class BroadcastError(ValueError):
    """A step refused (no draft, another broadcast running...): its text is for people."""


class Run:
    """A running broadcast's worker state in this process."""

    broadcast: Broadcast
    """Read when the worker starts."""

    def __init__(self, id_: int) -> None:
        self.id = id_
        self.state = "running"
        self.task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()

    def set(self, state: str) -> None:
        self.state = state
        self.changed.set()


class Engine:
    def __init__(
        self,
        config: BroadcastConfig,
        registry: Registry,
        services: Services,
        *,
        clock: Callable[[], int] = now_ms,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        in_flight: int = IN_FLIGHT,
        batch: int = BATCH,
        max_attempts: int = MAX_ATTEMPTS,
        progress_every: float = 5.0,
    ) -> None:
        self.config = config
        self.registry = registry
        self.services = services
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.in_flight = in_flight
        self.batch = batch
        self.max_attempts = max_attempts
        self.links = Links(config.consent)
        self.reporter = Reporter(self, progress_every)
        self.runs: dict[int, Run] = {}
        self.pacers: dict[str, Pacer] = {}

    # Drafts and commands

    def list(self, list_: str) -> BroadcastList:
        item = self.config.lists.get(list_)
        if item is None:
            raise BroadcastError(f"there is no broadcast list {list_!r}")
        return item

    async def draft(self, list_: str, room_id: str, content: Content, by: str) -> Broadcast:
        """A new draft of ``list_`` (an unconfirmed one before it is discarded)."""
        self.list(list_)
        await Broadcast.discard_drafts(list_)
        return await Broadcast.create(list_, room_id, content.dump(), by, self.clock())

    async def counts(self, list_: str) -> dict[str, int]:
        """The subscribers a broadcast of ``list_`` would go to now, per channel account."""
        counts: dict[str, int] = {}
        for account in self.list(list_).accounts:
            n = 0
            async for subscriber in self.registry.subscribers(list_, account):
                n += bool(subscriber.identities)
            counts[account] = n
        return counts

    async def current(self, list_: str) -> Broadcast | None:
        """The list's scheduled, running or paused broadcast."""
        return await Broadcast.latest(list_, ACTIVE)

    async def start(self, id_: int, at: int | None = None) -> Broadcast:
        """Send the draft ``id_`` now, or schedule it for ``at`` (ms since the epoch)."""
        found = await Broadcast.get(id_)
        if found is None:
            raise BroadcastError(f"there is no broadcast {id_}")
        active = await self.current(found.list)
        if active is not None and active.id != id_:
            raise BroadcastError(
                f"broadcast {active.id} of this list is {active.state}: cancel it first"
            )
        if at is not None:
            if not await Broadcast.move(id_, ("draft",), "scheduled", scheduled_at=at):
                raise BroadcastError(f"broadcast {id_} is no draft")
        elif not await Broadcast.move(
            id_, ("draft", "scheduled"), "running", started_at=self.clock()
        ):
            raise BroadcastError(f"broadcast {id_} is {found.state}, no draft")
        else:
            self._spawn(id_)
        return await Broadcast.get(id_) or found

    async def broadcast(self, list_: str, content: Content, *, by: str, room_id: str = "") -> int:
        """Start a broadcast of ``content`` to ``list_`` now (no draft step); its id."""
        draft = await self.draft(list_, room_id, content, by)
        await self.start(draft.id)
        return draft.id

    async def wait(self, id_: int) -> dict[str, int]:
        """Wait until the run of ``id_`` in this process ended; the recipients' counts."""
        run = self.runs.get(id_)
        if run is not None and run.task is not None:
            await asyncio.shield(run.task)
        return await Recipient.counts(id_)

    async def pause(self, id_: int) -> bool:
        return await self._move(id_, ("running",), "paused")

    async def resume(self, id_: int) -> bool:
        if not await self._move(id_, ("paused",), "running"):
            return False
        if id_ not in self.runs:
            self._spawn(id_)
        return True

    async def cancel(self, id_: int) -> bool:
        if not await self._move(id_, ("scheduled", "running", "paused"), "cancelled"):
            return False
        if id_ not in self.runs:  # nothing sends: close its rows here
            await self._finish(id_)
        return True

    async def _move(self, id_: int, states: tuple[str, ...], to: str) -> bool:
        if not await Broadcast.move(id_, states, to):
            return False
        run = self.runs.get(id_)
        if run is not None:
            run.set(to)
        return True

    # The worker

    async def supervise(self) -> None:
        """Keep a worker going for every running broadcast and start due scheduled ones, until
        cancelled (the bridge stops): then the workers are cancelled too."""
        try:
            while True:
                try:
                    await self.tick()
                except Exception:  # a database blip: the workers go on, the next tick retries
                    log.exception("Broadcast supervision failed; trying again")
                await self.sleep(SUPERVISE_INTERVAL)
        finally:
            await self.stop()

    async def tick(self) -> None:
        for found in await Broadcast.in_states(("running", "scheduled", "cancelled")):
            if found.state == "cancelled":
                if found.finished_at is None and found.id not in self.runs:
                    await self._finish(found.id)  # cancelled, then killed before its end
            elif found.state == "scheduled":
                if (found.scheduled_at or 0) <= self.clock():
                    with contextlib.suppress(BroadcastError):
                        await self.start(found.id)
            elif found.id not in self.runs:
                self._spawn(found.id)

    async def stop(self) -> None:
        runs = [r.task for r in self.runs.values() if r.task is not None]
        for task in runs:
            task.cancel()
        for task in runs:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.runs.clear()

    def _spawn(self, id_: int) -> None:
        if id_ in self.runs:
            return
        run = Run(id_)
        self.runs[id_] = run
        run.task = asyncio.create_task(self._run(run), name=f"broadcast:{id_}")

    async def _run(self, run: Run) -> None:
        try:
            found = await Broadcast.get(run.id)
            if found is None:
                return
            run.broadcast, run.state = found, found.state
            if not found.snapshot_done:
                await self._snapshot(found)
            async with self.reporter.progress(run):
                await self._work(run)
                await self._finish(run.id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Broadcast %d stopped; it is resumed in a moment", run.id)
        finally:
            self.runs.pop(run.id, None)

    async def _snapshot(self, found: Broadcast) -> None:
        for account in self.list(found.list).accounts:
            page: list[Recipient] = []
            async for subscriber in self.registry.subscribers(found.list, account):
                if subscriber.identities:  # one message per person and account
                    chat = subscriber.identities[0].chat
                    now = self.clock()
                    page.append(
                        Recipient(found.id, subscriber.contact, account, chat, updated=now)
                    )
                if len(page) >= SNAPSHOT_PAGE:
                    await Recipient.add_many(page)
                    page = []
            await Recipient.add_many(page)
        await Broadcast.set(found.id, snapshot_done=True)

    async def _work(self, run: Run) -> None:
        while True:
            if run.state == "paused":
                run.changed.clear()
                await run.changed.wait()
                continue
            if run.state != "running":
                return
            await self._pass(run)
            if run.state == "running" and not await Recipient.page(run.id, (0, ""), 1):
                return

    async def _pass(self, run: Run) -> None:
        """One pass over the open rows (a pause ends it early)."""
        slots = asyncio.Semaphore(self.in_flight)
        after: tuple[int, str] = (0, "")
        async with asyncio.TaskGroup() as group:
            while run.state == "running":
                rows = await Recipient.page(run.id, after, self.batch, OPEN)
                if not rows:
                    return
                for row in rows:
                    await slots.acquire()
                    if run.state != "running":
                        slots.release()
                        return
                    group.create_task(self._one(run, row, slots))
                after = (rows[-1].contact, rows[-1].account)
                found = await Broadcast.get(run.id)  # a change by another process
                if found is not None and found.state != run.state:
                    run.set(found.state)

    async def _one(self, run: Run, row: Recipient, slots: asyncio.Semaphore) -> None:
        try:
            await self._deliver(run, row)
        finally:
            slots.release()

    def pacer(self, account: str) -> Pacer:
        found = self.pacers.get(account)
        if found is None:
            found = self.pacers[account] = Pacer(self.rate(account), self.monotonic, self.sleep)
        return found

    def rate(self, account: str) -> float:
        """Messages a second on ``account``: configured, else the channel's overall limit."""
        if account in self.config.rates:
            return self.config.rates[account]
        capabilities = self.services.capabilities(account)
        limits = capabilities.rate_limits if capabilities is not None else {}
        for name in ("global", "number"):
            if limits.get(name):
                return float(limits[name])
        return DEFAULT_RATES.get(self.config.channel_types.get(account, ""), 10.0)

    async def _deliver(self, run: Run, row: Recipient) -> None:
        list_ = run.broadcast.list
        if row.status == "sending":
            keyed = self.config.channel_types.get(row.account) in KEYED
            await Broadcast.add_in_flight(run.id, int(not keyed), int(keyed))
            await row.mark("pending", self.clock(), reason=IN_FLIGHT_AT_STOP)  # counted once
        pacer = self.pacer(row.account)
        while True:
            if await erased(row.account, row.chat):
                await row.mark("skipped", self.clock(), reason=ERASED)
                return
            if not (await self.registry.state(row.contact, list_, row.account)).confirmed:
                await row.mark("skipped", self.clock(), reason=WITHDRAWN)
                return
            message, problem = await self._message(run, row)
            if message is None:
                await row.mark("failed", self.clock(), reason=problem)
                return
            await pacer.take()
            if run.state != "running":
                return  # paused or cancelled: the row stays open
            if not (await self.registry.state(row.contact, list_, row.account)).confirmed:
                # Withdrawn while this one waited for its turn (the pacer, a retry_after):
                # checked again right before it goes, so an opt-out during a broadcast holds.
                await row.mark("skipped", self.clock(), reason=WITHDRAWN)
                return
            attempts = row.attempts + 1
            await row.mark("sending", self.clock(), attempts=attempts)
            try:
                sent = await self.services.send_direct(row.account, row.chat, message)
            except PermanentDeliveryError as e:
                await row.mark("failed", self.clock(), reason=str(e) or "refused")
                return
            except Exception as e:
                reason = str(e) or type(e).__name__
                retry_after = getattr(e, "retry_after", None)
                limited = isinstance(e, TemporaryDeliveryError) and bool(retry_after)
                if attempts >= self.max_attempts and not limited:
                    await row.mark("failed", self.clock(), reason=reason)
                    return
                # A rate limit is the channel's pace, not the recipient's failure: it does not
                # use up an attempt.
                await row.mark("pending", self.clock(), reason=reason,
                               attempts=attempts - 1 if limited else attempts)  # fmt: skip
                if limited:
                    assert retry_after is not None
                    pacer.hold(retry_after)
                    await self.sleep(retry_after)
                else:
                    if not isinstance(e, TemporaryDeliveryError):
                        log.warning("Broadcast %d: sending failed: %s", run.id, pii(reason))
                    await self.sleep(min(BACKOFF * 2 ** (attempts - 1), MAX_BACKOFF))
                continue
            await row.mark("sent", self.clock(), message_id=sent, reason=None)
            return

    async def _message(self, run: Run, row: Recipient) -> tuple[DirectMessage | None, str]:
        """What ``row`` gets on its channel, or why it cannot get anything."""
        item = self.list(run.broadcast.list)
        content = Content.load(run.broadcast.content)
        key = f"broadcast:{run.id}:{row.contact}:{row.account}"
        kind = self.config.channel_types.get(row.account)
        if kind == "email":
            link = self.links.unsubscribe(row.contact, row.chat, item.name, row.account)
            text = f"{content.text}\n\n-- \nUnsubscribe: {link}"
            html = content.html and (
                f'{content.html}<hr><p><a href="{htmllib.escape(link)}">Unsubscribe</a></p>'
            )
            headers = (
                ("List-Unsubscribe", f"<{link}>"),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            )
            return DirectMessage(text, html, content.media, headers=headers, key=key), ""
        if kind == "whatsapp" and not await self._in_window(row.account, row.chat):
            template = item.whatsapp_template
            if template is None:
                return None, NO_TEMPLATE
            # WhatsApp refuses parameters with line breaks, tabs or runs of spaces (132018)
            param = " ".join(content.text.split())
            return DirectMessage(
                content.text, template=template.name, template_params=(param,), key=key
            ), ""  # fmt: skip
        hint = self.config.hint(item.language)
        text = f"{content.text}\n\n{hint}" if content.text else hint
        html = content.html and f"{content.html}<p>{htmllib.escape(hint)}</p>"
        return DirectMessage(text, html, content.media, key=key), ""

    async def _in_window(self, account: str, chat: str) -> bool:
        """Whether the customer wrote in the last 24 hours (WhatsApp's window)."""
        last = (await Conversation.data(account, chat)).get("last_inbound_at")
        return isinstance(last, int | float) and self.clock() / 1000 - last <= WINDOW

    async def _finish(self, id_: int) -> None:
        found = await Broadcast.get(id_)
        if found is None or found.state not in ("running", "cancelled"):
            return
        # The report goes first (its notice has a fixed transaction id, so a repeat posts
        # nothing new); then the end is recorded. A kill in between repeats both at the next
        # start: a running broadcast's worker finds nothing left, a cancelled one without its
        # end is finished by the supervisor.
        if found.state == "cancelled":
            await Recipient.close_open(id_, CANCELLED, self.clock())
            await self.reporter.final(id_, "cancelled")
        else:
            await self.reporter.final(id_, "done")
            await Broadcast.move(id_, ("running",), "done", finished_at=self.clock())
        if found.finished_at is None:
            await Broadcast.set(id_, finished_at=self.clock())
