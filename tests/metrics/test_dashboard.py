"""The Grafana dashboard shipped with the bridge: it parses, and every metric its PromQL
queries exists in the registry of a configured bridge (features' metrics included)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bridge.config import parse
from bridge.core.bridge import Bridge
from bridge.metrics.registry import metric_names
from tests.test_config import example

DASHBOARD = Path(__file__).resolve().parents[2] / "bridge" / "metrics" / "grafana-dashboard.json"
NAME = re.compile(r"\bbridge_[a-z0-9_]+\b")


def _expressions(panels: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    for panel in panels:
        found += [t["expr"] for t in panel.get("targets", [])]
        found += _expressions(panel.get("panels", []))  # a collapsed row's panels
    return found


def test_every_metric_the_dashboard_queries_exists() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["panels"]
    expressions = _expressions(dashboard["panels"])
    queried = {name for expr in expressions for name in NAME.findall(expr)}

    def configure(data: dict[str, Any]) -> None:
        data["metrics"] = {"listen": "127.0.0.1:9350"}

    bridge = Bridge(parse(example(configure)))
    served = metric_names(bridge.metrics.scrape().decode())
    assert len(queried) >= 15
    assert queried <= served, sorted(queried - served)
    # The feature figures are on the dashboard too.
    for name in ("bridge_inbox_first_response_seconds_bucket", "bridge_consent_given_total",
                 "bridge_broadcast_recipients", "bridge_connector_state"):  # fmt: skip
        assert name in queried
