"""The metrics part of the benchmark alone, small (500 portals, 10 scrapes): it writes the
scrape figure, with the absolute time in its name, against a trivial GET on the listener."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from bench.cli import LOCAL_PARTS, STACK_PARTS

from .test_bench_smoke import REPO


def test_the_metrics_part_runs_alone(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    skips = [arg for part in (*STACK_PARTS, *LOCAL_PARTS) if part != "metrics"
             for arg in ("--skip", part)]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out), *skips,
         "--portals", "500", "--metrics-scrapes", "10"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    figure = data["figures"]["metrics_scrape_ms"]
    for side in ("bridge", "reference"):
        assert math.isfinite(figure[side]) and figure[side] > 0, side
    assert figure["met"] in (True, False) and figure["goal"] == "scrape < 10 ms"
    assert f"{figure['bridge']:.2f} ms" in figure["name"] and "500 portals" in figure["name"]
    [run] = data["metrics"]
    assert run["portals"] == 500 and run["scrapes"] == 10 and run["scrape_bytes"] > 1000
    assert "scrape /metrics, 500 portals" in result.stdout
