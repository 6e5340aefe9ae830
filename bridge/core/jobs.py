"""Runs the periodic jobs registered with ``bridge.seams`` (the core's housekeeping among
them): each in a task of its own, every ``interval`` seconds; a failure is logged and the job
runs again at its next time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from ..seams import PeriodicJob
from ..tasks import cancel_and_wait

log = logging.getLogger("bridge.jobs")


class JobRunner:
    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, jobs: Iterable[PeriodicJob]) -> None:
        for job in jobs:
            self._tasks.append(asyncio.create_task(self._loop(job), name=f"job:{job.name}"))

    @staticmethod
    async def _loop(job: PeriodicJob) -> None:
        if not job.at_start:
            await asyncio.sleep(job.interval)
        while True:
            try:
                await job.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "Periodic job %s failed; it runs again in %gs", job.name, job.interval
                )
            await asyncio.sleep(job.interval)

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)
