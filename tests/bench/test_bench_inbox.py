"""The in-process inbox part of the benchmark alone (it needs no Synapse, only a PostgreSQL it
starts itself): it runs on both databases, writes its figures, and fails when a flood shares its
conversations unevenly."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.inbox import FLOOD, MEMBERS, FloodFailure, check

from .test_bench_smoke import INBOX_FIGURES, REPO


def test_the_inbox_part_runs_alone_on_both_databases(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--inbox-first", "5", "--json", str(out),
         "--skip", "traffic", "--skip", "media", "--skip", "scale", "--skip", "inbox-e2e",
         "--skip", "encrypted"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    assert INBOX_FIGURES <= set(data["figures"])
    for key in INBOX_FIGURES:
        figure = data["figures"][key]
        for side in ("bridge", "reference"):
            assert math.isfinite(figure[side]) and figure[side] > 0, (key, side)
    [run] = data["inbox"]
    assert run["first"]["sqlite"]["inbox"]["messages"] == 5
    for kind in ("postgres", "sqlite"):
        for mode in ("round_robin", "least_open"):
            flood = run["flood"][kind][mode]
            assert flood["assign_counts"] == dict.fromkeys(MEMBERS, FLOOD // len(MEMBERS))
    assert "routing + assignment per first message p50 (postgres)" in result.stdout


async def test_an_uneven_flood_fails_the_benchmark() -> None:
    even = [("hooks", f"chat-{n}", MEMBERS[n % len(MEMBERS)]) for n in range(FLOOD)]
    twice = [*even[:-1], even[0]]
    with pytest.raises(FloodFailure, match="twice: \\['chat-0'\\]"):
        await check("round_robin", twice)
    uneven = [(acc, chat, MEMBERS[0]) if n < 2 else (acc, chat, who)
              for n, (acc, chat, who) in enumerate(even)]  # fmt: skip
    with pytest.raises(FloodFailure, match="per member"):
        await check("least_open", uneven)
