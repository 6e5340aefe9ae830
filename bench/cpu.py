"""CPU seconds (user + system) of processes, read before and after a measurement."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import psutil


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of ``pid`` so far; 0 if it is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return float(times.user + times.system)


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / (1024 * 1024)


@dataclass
class CpuSnapshot:
    """CPU seconds per named group of processes (e.g. the bridge and its database backends)."""

    seconds: dict[str, dict[int, float]]

    @classmethod
    def take(cls, groups: Mapping[str, Iterable[int]]) -> CpuSnapshot:
        return cls({name: {p: cpu_seconds(p) for p in pids} for name, pids in groups.items()})

    def used_since(self, before: CpuSnapshot) -> dict[str, float]:
        """Seconds each group used since ``before``; a process that appeared in between
        counts from zero."""
        used: dict[str, float] = {}
        for name, now in self.seconds.items():
            then = before.seconds.get(name, {})
            used[name] = sum(max(sec - then.get(pid, 0.0), 0.0) for pid, sec in now.items())
        return used
