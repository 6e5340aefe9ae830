"""The benchmark in its quickest mode, so that ``python -m bench`` cannot rot: it must run
through and write every figure."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INBOX_FIGURES = {
    f"inbox_{figure}"
    for kind in ("postgres", "sqlite")
    for figure in (f"first_{kind}_p50_ms", f"first_{kind}_p99_ms",
                   f"flood_{kind}_round_robin_ms", f"flood_{kind}_least_open_ms")
}  # fmt: skip
ENCRYPTED_FIGURES = {
    f"enc_{direction}_{figure}"
    for direction in ("r2m", "m2r")
    for figure in ("per_second", "p50_ms", "cpu_ms")
}
FIGURES = {
    "r2m_1room_per_second", "r2m_1room_p50_ms", "r2m_1room_p99_ms", "r2m_1room_vs_in_order",
    "r2m_rooms_per_second", "r2m_rooms_p50_ms", "r2m_rooms_p99_ms",
    "r2m_seq_p50_ms", "r2m_seq_p99_ms", "m2r_p50_ms", "m2r_p99_ms",
    "cpu_per_1000", "cpu_per_1000_with_db", "media_r2m_rss_mb", "media_m2r_rss_mb",
    "scale_sqlite_startup_s", "scale_sqlite_rss_mb", "scale_sqlite_lookup_key_ms",
    "scale_sqlite_lookup_room_ms", "scale_sqlite_lookup_cached_ms",
    "inbox_e2e_first_p50_ms", "inbox_e2e_first_p99_ms", *INBOX_FIGURES,
    "broadcast_sqlite_per_second", "broadcast_sqlite_rss_mb", "broadcast_sqlite_snapshot_s",
    "broadcast_sqlite_cpu_ms", "metrics_scrape_ms", *ENCRYPTED_FIGURES,
    "startup_all_types_s", "startup_all_types_cpu_s", "startup_webhook_s",
    "catchup_wall_s", "catchup_hs_cpu_s", "catchup_hs_cpu_vs_sends", "catchup_requests",
}  # fmt: skip


def test_quick_benchmark_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "figure" in result.stdout and "goal" in result.stdout
    data = json.loads(out.read_text())
    assert FIGURES <= set(data["figures"])
    for key in FIGURES:
        figure = data["figures"][key]
        for side in ("bridge", "reference"):
            value = figure[side]
            assert isinstance(value, float | int) and math.isfinite(value), (key, side, value)
            assert value >= 0, (key, side, value)
        if figure["goal"] is not None:
            assert figure["met"] in (True, False), key
    assert len(data["runs"]) == 1
    assert data["scale"]["sqlite"][-1]["portals"] == data["options"]["portals"]
    # The encrypted run: both kinds of rooms each way (its arrivals were checked in the run).
    [encrypted] = data["encrypted"]
    for direction in ("r2m", "m2r"):
        for kind in ("plain", "encrypted"):
            assert encrypted[direction][kind]["messages"] == data["options"]["enc_messages"]
    # The metrics scrape, with its absolute time in the figure's name.
    [metrics] = data["metrics"]
    assert metrics["portals"] == data["options"]["portals"] and metrics["scrape_bytes"] > 1000
    scrape = data["figures"]["metrics_scrape_ms"]
    assert f"{scrape['bridge']:.2f} ms" in scrape["name"] and scrape["goal"] == "scrape < 10 ms"
    # The catch-up: every active room read back, as often as the direct reads read, and the
    # one lost event of every tenth room found and queued; the homeserver did some work.
    [catchup] = data["catchup"]
    rooms = data["options"]["catchup_rooms"]
    assert catchup["rooms"] == rooms and catchup["lost"] == rooms // 10 > 0
    run, reads = catchup["catchup"], catchup["reads"]
    assert run["planned"] == run["rooms_read"] == reads["rooms_read"] == rooms
    assert run["found"] == run["queued"] == catchup["lost"]
    assert run["requests"] == reads["requests"] >= rooms
    assert catchup["sends"]["requests"] == rooms
    for part in ("catchup", "reads", "sends"):
        assert catchup[part]["hs_cpu_s"] > 0, part
