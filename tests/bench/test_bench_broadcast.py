"""The broadcast part of the benchmark alone, tiny (200 recipients, and 50 for the reference) on
both databases: it writes its figures, and every simulated recipient got the broadcast exactly
once; a run where one got nothing or got it twice fails the benchmark."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench.broadcast import FIRST_USER, BroadcastFailure, check

from .test_bench_smoke import REPO

KINDS = ("postgres", "sqlite")
BROADCAST_FIGURES = {
    f"broadcast_{kind}_{figure}"
    for kind in KINDS
    for figure in ("per_second", "rss_mb", "snapshot_s", "cpu_ms")
}


def test_the_broadcast_part_runs_alone_on_both_databases(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    skips = [arg for part in ("traffic", "media", "scale", "inbox-e2e", "encrypted", "inbox")
             for arg in ("--skip", part)]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out), *skips,
         "--broadcast-recipients", "200", "--broadcast-reference", "50",
         "--broadcast-db", "sqlite", "--broadcast-db", "postgres"],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    assert BROADCAST_FIGURES <= set(data["figures"])
    for key in BROADCAST_FIGURES:
        figure = data["figures"][key]
        for side in ("bridge", "reference"):
            assert math.isfinite(figure[side]) and figure[side] > 0, (key, side)
        if figure["goal"] is not None:
            assert figure["met"] in (True, False), key
    assert data["figures"]["broadcast_sqlite_per_second"]["reference"] == 1000
    for kind in KINDS:
        for size, run in (("full", 200), ("reference", 50)):
            measured = data["broadcast"][kind][size]
            assert measured["counts"] == {"sent": run}
            assert measured["recipients"] == measured["messages"] == run
            assert measured["rss_peak_mb"] >= measured["rss_before_mb"] > 0
    assert "broadcast msg/s, 200 recipients (postgres)" in result.stdout


def test_a_recipient_missed_or_sent_twice_fails_the_benchmark() -> None:
    users = [FIRST_USER + n for n in range(10)]
    sent = {"counts": {"sent": 10}}
    assert check(10, sent, Counter(users)) == {"recipients": 10, "messages": 10}
    with pytest.raises(BroadcastFailure, match="1 got it more than once"):
        check(10, sent, Counter([*users, users[3]]))
    with pytest.raises(BroadcastFailure, match="1 got nothing"):
        check(10, sent, Counter(users[1:]))
    with pytest.raises(BroadcastFailure, match="the engine counted"):
        check(10, {"counts": {"sent": 9, "failed": 1}}, Counter(users))
