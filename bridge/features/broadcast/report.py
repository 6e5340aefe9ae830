"""What a broadcast tells its room: the progress notice (posted when the worker starts and
edited in place every few seconds: sent, failed, skipped, left, the expected end), the final
report (with the failures by reason), ``status`` and ``recipients`` answers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
import zoneinfo
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ...db.broadcast import Broadcast, Recipient
from ...seams_metrics import FeatureMetrics

if TYPE_CHECKING:
    from .engine import Engine, Run

SENT = ("sent", "delivered", "read")
STARTED = ("running", "paused", "cancelled", "done")
LISTED = 50
MAX_REASONS = 10


async def report_progress(metrics: FeatureMetrics, lists: list[str]) -> None:
    """The recipients of each list's latest broadcast by status, for the metrics."""
    for list_ in lists:
        found = await Broadcast.latest(list_, STARTED)
        if found is not None:
            metrics.broadcast(list_, await Recipient.counts(found.id))


class Reporter:
    def __init__(self, engine: Engine, every: float) -> None:
        self.engine = engine
        self.every = every
        self._shown: dict[str, str] = {}
        """Progress event -> the text it shows: an edit only when it changed (a paused
        broadcast makes no edits)."""

    def title(self, found: Broadcast) -> str:
        item = self.engine.config.lists.get(found.list)
        return f"Broadcast {found.id} ({item.title if item else found.list})"

    async def summary(self, found: Broadcast, counts: dict[str, int]) -> str:
        sent = sum(counts.get(s, 0) for s in SENT)
        total = sum(counts.values())
        parts = [f"{sent} sent"]
        if counts.get("delivered") or counts.get("read"):
            parts[0] += f" ({counts.get('delivered', 0)} delivered, {counts.get('read', 0)} read)"
        parts += [f"{counts.get('failed', 0)} failed", f"{counts.get('skipped', 0)} skipped"]
        left = counts.get("pending", 0) + counts.get("sending", 0)
        if left:
            parts.append(f"{left} left")
        return f"{self.title(found)}, {found.state}: " + ", ".join(parts) + f" of {total}"

    @contextlib.asynccontextmanager
    async def progress(self, run: Run) -> AsyncIterator[None]:
        """The progress notice, kept current while the worker runs."""
        found = run.broadcast
        if not found.room_id:
            yield
            return
        event = found.progress_event
        if event is None:
            text = await self._progress_text(run, None)
            event = await self.engine.services.notice(
                found.room_id, text, txn=f"broadcast-{found.id}-progress"
            )
            if event is not None:
                await Broadcast.set(found.id, progress_event=event)
        task = None
        if event is not None:
            task = asyncio.create_task(self._keep(run, found.room_id, event))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if event is not None:
            await self._edit(run, found.room_id, event, None)

    async def _keep(self, run: Run, room_id: str, event: str) -> None:
        start = (time.monotonic(), (await self._counts(run.id))[2])
        while True:
            await asyncio.sleep(self.every)
            with contextlib.suppress(Exception):  # the next edit tries again
                await self._edit(run, room_id, event, start)

    async def _edit(
        self, run: Run, room_id: str, event: str, start: tuple[float, int] | None
    ) -> None:
        text = await self._progress_text(run, start)
        if self._shown.get(event) == text:
            return
        txn = f"broadcast-{run.id}-progress-{time.time_ns()}"
        await self.engine.services.edit_notice(room_id, event, text, txn=txn)
        self._shown[event] = text
        if start is None:  # the last edit: the end state
            self._shown.pop(event, None)

    async def _counts(self, id_: int) -> tuple[dict[str, int], int, int]:
        counts = await Recipient.counts(id_)
        left = counts.get("pending", 0) + counts.get("sending", 0)
        return counts, left, sum(counts.values()) - left

    async def _progress_text(self, run: Run, start: tuple[float, int] | None) -> str:
        found = await Broadcast.get(run.id) or run.broadcast
        counts, left, done = await self._counts(run.id)
        text = "📣 " + await self.summary(found, counts)
        if left and found.state == "running":
            rate = 0.0
            if start is not None and time.monotonic() > start[0]:
                rate = (done - start[1]) / (time.monotonic() - start[0])
            if rate <= 0:
                open_ = await Recipient.counts_by_account(run.id, ("pending", "sending"))
                rate = sum(self.engine.rate(a) for a in open_) or 1.0
            text += f"; expected end {self.clock_time(time.time() + left / rate)}"
        return text + "."

    def clock_time(self, at: float) -> str:
        zone = zoneinfo.ZoneInfo(self.engine.config.timezone)
        return datetime.datetime.fromtimestamp(at, zone).strftime("%Y-%m-%d %H:%M:%S %Z")

    async def final(self, id_: int, state: str) -> None:
        """Post the final report of a broadcast ending in ``state`` (``done``, ``cancelled``)."""
        found = await Broadcast.get(id_)
        if found is None or not found.room_id:
            return
        text = await self.report(found, state)
        await self.engine.services.notice(found.room_id, text, txn=f"broadcast-{id_}-report")

    async def report(self, found: Broadcast, state: str | None = None) -> str:
        """The final report: the counts, the failures and skips by reason, and the messages
        that were in flight at a stop."""
        counts = await Recipient.counts(found.id)
        state = state or found.state
        what = "finished" if state == "done" else state
        lines = [f"📣 {self.title(found)} {what}: " + (await self.summary(found, counts))
                 .split(": ", 1)[1] + "."]  # fmt: skip
        for status in ("failed", "skipped"):
            reasons = await Recipient.reasons(found.id, status)
            if reasons:
                shown = "; ".join(f"{n} × {r or 'no reason'}" for r, n in reasons[:MAX_REASONS])
                extra = len(reasons) - MAX_REASONS
                more = f" and {extra} more" if extra > 0 else ""
                lines.append(f"{status.capitalize()}: {shown}{more}.")
        if found.in_flight:
            lines.append(
                f"{found.in_flight} were in flight at a stop and may have got it twice "
                "(their channel cannot recognise a repeat)."
            )
        if found.in_flight_keyed:
            lines.append(
                f"{found.in_flight_keyed} were in flight at a stop and were sent again with "
                "the same key (their channel recognises the repeat)."
            )
        return "\n".join(lines)

    async def status(self, found: Broadcast) -> str:
        counts = await Recipient.counts(found.id)
        text = await self.summary(found, counts)
        if found.state == "scheduled" and found.scheduled_at:
            text += f"; starts {self.clock_time(found.scheduled_at / 1000)}"
        return text + "."

    async def recipients(self, found: Broadcast, status: str | None) -> str:
        """Counts per status and channel; with ``status``, up to 50 such recipients."""
        if status is None:
            lines = [f"{self.title(found)}:"]
            for name in ("pending", "sending", "sent", "delivered", "read", "failed", "skipped"):
                per = await Recipient.counts_by_account(found.id, (name,))
                if per:
                    shown = ", ".join(
                        f"{n} on {self.engine.services.channel_title(a)} ({a})"
                        for a, n in sorted(per.items())
                    )
                    lines.append(f"{name}: {shown}")
            return "\n".join(lines) if len(lines) > 1 else f"{self.title(found)}: no recipients."
        rows = await Recipient.page(found.id, (0, ""), LISTED + 1, (status,))
        if not rows:
            return f"{self.title(found)}: no recipient is {status}."
        lines = [f"{self.title(found)}, {status}:"]
        for row in rows[:LISTED]:
            channel = self.engine.services.channel_title(row.account)
            reason = f": {row.reason}" if row.reason else ""
            lines.append(f"contact {row.contact} on {channel} ({row.chat}){reason}")
        if len(rows) > LISTED:
            lines.append(f"(only the first {LISTED} are listed)")
        return "\n".join(lines)
