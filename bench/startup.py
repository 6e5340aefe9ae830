"""Start-up: seconds from starting the bridge process until its listener answers and it has
reached the homeserver (a stub here, which answers what the bridge asks at start-up), with an
account of every connector type configured (webhook, Telegram, WhatsApp, email, VK, MAX).
References measured in the same run: the same start with only a webhook account, and a bare
interpreter start (``python -c pass``).

The connectors' far ends are closed ports or the stub: what is timed is the bridge's own start,
not a network's. A first, untimed start creates the database schema and the compiled modules
(in the work directory), as an installed bridge has them."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from ruamel.yaml import YAML

from tests.infra.ports import LOOPBACK, free_port

from .cpu import cpu_seconds
from .report import Figure, Goal
from .stats import median

log = logging.getLogger("bench.startup")

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 60.0
POLL = 0.005
AS_TOKEN = "bench-startup-as-token-0123456789"
HS_TOKEN = "bench-startup-hs-token-0123456789"


class StubHomeserver:
    """Answers the client-server API calls of a starting bridge; notes when the bridge first
    registered its bot (the last call before the bridge counts the homeserver as reached)."""

    def __init__(self) -> None:
        self.reached: float | None = None
        self._runner: web.AppRunner | None = None
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.Response:
        path = request.path
        if path == "/_matrix/client/versions":
            return web.json_response({"versions": ["v1.11"], "unstable_features": {}})
        if path.endswith("/register"):
            if self.reached is None:
                self.reached = time.perf_counter()
            return web.json_response({"errcode": "M_USER_IN_USE", "error": "taken"}, status=400)
        if "/appservice/" in path and path.endswith("/ping"):
            return web.json_response({"duration_ms": 1})
        if path.startswith("/_matrix/"):
            return web.json_response({})
        return web.json_response({"ok": False, "description": "not here"}, status=404)


def _config(workdir: Path, name: str, hs: StubHomeserver, every_type: bool) -> tuple[Path, int]:
    """The example config on ``hs`` and a database in ``workdir``, every far end local."""
    data: Any = YAML(typ="safe").load((REPO / "example-config.yaml").read_text())
    port = free_port()
    closed = free_port()  # nothing listens: the connectors retry in the background
    data["homeserver"]["address"] = hs.url
    data["appservice"].update(
        address=f"http://{LOOPBACK}:{port}", hostname=LOOPBACK, port=port,
        as_token=AS_TOKEN, hs_token=HS_TOKEN,
    )  # fmt: skip
    data["database"]["url"] = f"sqlite:{workdir / f'{name}.db'}"
    data["logging"] = {"version": 1, "root": {"level": "WARNING", "handlers": []}}
    channels = data["channels"]
    channels["support-webhook"]["outbound_url"] = f"http://{LOOPBACK}:{closed}/inbox"
    channels["support-telegram"]["api_url"] = hs.url
    channels["support-whatsapp"]["base_url"] = hs.url
    channels["support-vk"]["base_url"] = hs.url
    channels["support-max"]["api_url"] = hs.url
    mail = channels["support-email"]
    for side in ("imap", "smtp"):
        mail[side].update(host=LOOPBACK, port=closed, security="none")
    if not every_type:
        data["channels"] = {"support-webhook": channels["support-webhook"]}
    path = workdir / f"{name}.yaml"
    with path.open("w") as f:
        YAML().dump(data, f)
    return path, port


async def _answers(session: aiohttp.ClientSession, port: int) -> bool:
    try:
        async with session.get(f"http://{LOOPBACK}:{port}/_matrix/app/v1/users/x") as resp:
            await resp.read()
            return True
    except aiohttp.ClientError:
        return False


async def _start_once(
    config: Path, port: int, hs: StubHomeserver, log_path: Path
) -> tuple[float, float]:
    """Seconds from starting the process until it listens and has reached ``hs``, and the CPU
    seconds it used until then (less disturbed by other work on the machine)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    # Compiled modules, as an installed bridge has them (kept in the work directory).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(log_path.parent / "pycache")
    hs.reached = None
    with log_path.open("ab") as out:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", "-c", str(config),
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
            listening: float | None = None
            while listening is None or hs.reached is None:
                if listening is None and await _answers(session, port):
                    listening = time.perf_counter()
                if proc.returncode is not None:
                    raise RuntimeError(f"the bridge exited, see {log_path}")
                if time.perf_counter() - started > TIMEOUT:
                    raise TimeoutError(f"the bridge did not start, see {log_path}")
                await asyncio.sleep(POLL)
        cpu = cpu_seconds(proc.pid)
        return max(listening, hs.reached) - started, cpu
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _bare_interpreter() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


async def measure_startup(workdir: Path, times: int) -> dict[str, list[float]]:
    """``times`` timed starts of each kind (after an untimed first start of each), taking
    turns so that drift on a shared machine favours neither."""
    hs = StubHomeserver()
    await hs.start()
    try:
        kinds = {
            "every_type": _config(workdir, "startup-all", hs, True),
            "webhook_only": _config(workdir, "startup-webhook", hs, False),
        }
        log_path = workdir / "bridge-startup.log"
        for config, port in kinds.values():
            await _start_once(config, port, hs, log_path)  # the schema; files in the OS cache
        result: dict[str, list[float]] = {}
        order = list(kinds.items())
        for rep in range(times):
            for kind, (config, port) in order[::-1] if rep % 2 else order:
                wall, cpu = await _start_once(config, port, hs, log_path)
                result.setdefault(kind, []).append(wall)
                result.setdefault(f"{kind}_cpu", []).append(cpu)
            result.setdefault("interpreter", []).append(await asyncio.to_thread(_bare_interpreter))
        log.info(
            "start-up: every connector type %.2fs (%.2fs CPU), webhook only %.2fs, "
            "interpreter %.3fs", median(result["every_type"]), median(result["every_type_cpu"]),
            median(result["webhook_only"]), median(result["interpreter"]),
        )  # fmt: skip
        return result
    finally:
        await hs.stop()


def startup_figures(result: dict[str, list[float]]) -> list[Figure]:
    """The figures of ``measure_startup``'s result (none if the part was skipped)."""
    if not result:
        return []
    every, webhook = result["every_type"], result["webhook_only"]
    return [
        Figure("startup_all_types_s", "start-up, every connector type", "s", every, webhook,
               "only a webhook account", "ratio", Goal("bridge", "<", 1.0, "< 1 s")),
        Figure("startup_all_types_cpu_s", "start-up CPU, every connector type", "s",
               result["every_type_cpu"], result["webhook_only_cpu"],
               "only a webhook account", "ratio"),
        Figure("startup_webhook_s", "start-up, only a webhook account", "s", webhook,
               result["interpreter"], "python -c pass", "added"),
    ]  # fmt: skip
