"""The bridge under test as a real process (``python -m bridge -c config.yaml``), so tests can
kill it with SIGKILL and start it again on the same database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from .ports import LOOPBACK, free_port

REPO = Path(__file__).resolve().parents[2]


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
) -> dict[str, Any]:
    """Write a bridge config (tokens 'generate': run ``-g`` next) from the example config.
    ``address`` is where the homeserver reaches the bridge (default: its own listener)."""
    yaml = YAML()
    data = yaml.load((REPO / "example-config.yaml").read_text())
    port = port or free_port()
    data["homeserver"]["address"] = hs_url
    data["homeserver"]["domain"] = domain
    data["appservice"]["address"] = address or f"http://{LOOPBACK}:{port}"
    data["appservice"]["port"] = port
    data["database"]["url"] = db_url
    data["permissions"] = {"*": "none", domain: "staff", **{a: "admin" for a in admins}}
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


class BridgeProcess:
    def __init__(self, config_path: Path, port: int, log_path: Path) -> None:
        self.config_path = config_path
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "bridge already running"
        log = self.log_path.open("ab")
        log.write(f"\n===== start {self.starts} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "-c", str(self.config_path)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.starts += 1

    async def astart(self, timeout: float = 60) -> None:  # noqa: ASYNC109
        """Start and wait until the listener answers and the bridge logged that it started."""
        marker = self.log_text().count("Bridge started")
        self.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"bridge exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            if self.log_text().count("Bridge started") > marker and self._live():
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"bridge did not start in {timeout}s:\n{self.log_tail()}")

    def _live(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/_matrix/mau/live", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])
