"""The bridge under test as a real process (``python -m bridge -c config.yaml``), so tests can
kill it with SIGKILL and start it again on the same database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from .ports import LOOPBACK, free_port
from .process import ManagedProcess

REPO = Path(__file__).resolve().parents[2]
STARTED = "Bridge started"


def write_bridge_config(
    path: Path,
    *,
    hs_url: str,
    domain: str,
    db_url: str,
    staff: list[str],
    admins: list[str],
    outbound_url: str,
    secret: str,
    delivery_deadline: float = 60,
    port: int | None = None,
    address: str | None = None,
    extra_channels: dict[str, Any] | None = None,
    features: dict[str, Any] | None = None,
    encryption: dict[str, Any] | None = None,
    permissions: dict[str, Any] | None = None,
    metrics: str | None = None,
    sections: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a bridge config (tokens 'generate': run ``-g`` next) from the example config.
    ``address`` is where the homeserver reaches the bridge (default: its own listener);
    ``encryption`` is merged over the ``encryption`` section, ``permissions`` over the
    default permissions (the homeserver's domain staff, ``admins`` admin); ``metrics`` is
    ``metrics.listen`` (host:port); ``sections`` replace the config's top-level sections of
    their names."""
    yaml = YAML()
    data = yaml.load((REPO / "example-config.yaml").read_text())
    port = port or free_port()
    data["homeserver"]["address"] = hs_url
    data["homeserver"]["domain"] = domain
    data["appservice"]["address"] = address or f"http://{LOOPBACK}:{port}"
    data["appservice"]["port"] = port
    data["database"]["url"] = db_url
    data["metrics"]["listen"] = metrics
    data["permissions"] = {
        "*": "none",
        domain: "staff",
        **{a: "admin" for a in admins},
        **(permissions or {}),
    }
    data["channels"] = {
        "hooks": {
            "type": "webhook",
            "staff": staff,
            "secret": secret,
            "outbound_url": outbound_url,
            "delivery_deadline": delivery_deadline,
            "request_timeout": 5,
            "title": "Webhook",
            # The peer serves attachment files on loopback, which is refused unless listed.
            "fetch_allow_hosts": [LOOPBACK],
        },
        # Outbound goes nowhere (a closed port) and gives up fast: for deadline tests.
        "dead-end": {
            "type": "webhook",
            "staff": staff,
            "secret": secret,
            "outbound_url": f"http://{LOOPBACK}:{free_port()}/inbox",
            "delivery_deadline": 3,
            "request_timeout": 2,
            "title": "Dead end",
        },
        **(extra_channels or {}),
    }
    if features:
        data["features"] = features
    for key, value in (encryption or {}).items():
        data["encryption"][key] = value
    data.update(sections or {})
    data["logging"]["root"]["level"] = "DEBUG" if os.environ.get("BRIDGE_TEST_DEBUG") else "INFO"
    with path.open("w") as f:
        yaml.dump(data, f)
    return data


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


class BridgeProcess(ManagedProcess):
    """The bridge as a child process, its output appended to ``log_path``; ready once it
    logged that it started and its HTTP listener answers."""

    name = "bridge"
    stop_signals = ((signal.SIGTERM, 20.0),)
    poll_interval = 0.1

    def __init__(
        self, config_path: Path, port: int, log_path: Path, *, startup_timeout: float = 60.0
    ) -> None:
        super().__init__(startup_timeout)
        self.config_path = config_path
        self.port = port
        self.log_path = log_path
        self.starts = 0
        self._started_before = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self._proc

    @property
    def console_log_path(self) -> Path:
        return self.log_path

    def _prepare(self) -> None:
        self._started_before = self.log_text().count(STARTED)

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "bridge", "-c", str(self.config_path)]

    def _popen_kwargs(self) -> dict[str, Any]:
        return {"cwd": REPO}

    def _launch(self) -> None:
        super()._launch()
        self.starts += 1

    def _probe(self) -> str | None:
        if self.log_text().count(STARTED) == self._started_before:
            return f"{STARTED!r} not logged yet"
        try:
            with urllib.request.urlopen(f"{self.url}/_matrix/mau/live", timeout=1) as r:
                return None if r.status == 200 else f"/_matrix/mau/live answered {r.status}"
        except OSError as exc:
            return f"/_matrix/mau/live: {exc}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        return super().log_tail(lines)
