"""Periodic jobs: each runs at its interval (at start when asked), and one that fails runs
again at its next time without stopping the others."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bridge.core.jobs import JobRunner
from bridge.seams import PeriodicJob


async def test_jobs_run_at_their_interval_and_survive_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: dict[str, int] = {"steady": 0, "flaky": 0, "late": 0}

    async def steady() -> None:
        runs["steady"] += 1

    async def flaky() -> None:
        runs["flaky"] += 1
        raise RuntimeError("database gone")

    async def late() -> None:
        runs["late"] += 1

    runner = JobRunner()
    runner.start([
        PeriodicJob("steady", 0.02, steady, at_start=True),
        PeriodicJob("flaky", 0.02, flaky, at_start=True),
        PeriodicJob("late", 10.0, late),
    ])  # fmt: skip
    with caplog.at_level(logging.ERROR, "bridge.jobs"):
        await asyncio.sleep(0.2)
        await runner.stop()
    assert runs["steady"] >= 3 and runs["flaky"] >= 3
    assert runs["late"] == 0  # first run one interval after start
    assert "Periodic job flaky failed" in caplog.text
    stopped = dict(runs)
    await asyncio.sleep(0.05)
    assert runs == stopped
