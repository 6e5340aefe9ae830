"""The lifecycle every test server shares, written once.

``Service`` is the part that does not care how a server runs: ``restart`` (same port, same
data), the ``a*`` variants that run in a worker thread so the test's event loop keeps going,
and use as a (sync or async) context manager.  ``ManagedProcess`` runs the server as a child
process in its own session: it appends the child's output to a console log, waits until a
readiness probe succeeds (or the child dies, or time runs out, and then says why with the tail
of its logs), stops it with a sequence of signals ending in SIGKILL of its whole process group,
and kills what is left of every server at interpreter exit.

A subclass says what to run (``_command``, ``_popen_kwargs``), how to know it is ready
(``_probe``), where its logs are (``console_log_path``, ``log_paths``) and what to prepare
before each start (``_prepare``: configuration, data directories).
"""

from __future__ import annotations

import abc
import asyncio
import atexit
import contextlib
import os
import signal
import subprocess
import time
import weakref
from pathlib import Path
from typing import IO, Any, ClassVar, Self

__all__ = ["ManagedProcess", "Service", "reachable_by"]


class Service(abc.ABC):
    """A server a test starts, stops and restarts (sync or from async code)."""

    @property
    @abc.abstractmethod
    def running(self) -> bool: ...

    @abc.abstractmethod
    def start(self) -> Self:
        """Start serving; return once clients can connect.  A no-op while running."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop serving and clean up what the server made for itself."""

    def _halt(self) -> None:
        """Stop serving but keep everything a later :meth:`start` serves again."""
        self.stop()

    def restart(self, *, downtime: float = 0.0) -> None:
        """Stop and start again on the same port(s) with the same data; clients are dropped.
        ``downtime`` seconds pass with nothing listening."""
        self._halt()
        if downtime > 0:
            time.sleep(downtime)
        self.start()

    async def astart(self) -> Self:
        """:meth:`start` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.start)

    async def astop(self, **kwargs: Any) -> None:
        """:meth:`stop` in a worker thread (keyword arguments are passed on)."""
        await asyncio.to_thread(self.stop, **kwargs)

    async def arestart(self, *, downtime: float = 0.0) -> None:
        """:meth:`restart` in worker threads (``downtime`` does not block the loop)."""
        await asyncio.to_thread(self._halt)
        if downtime > 0:
            await asyncio.sleep(downtime)
        await asyncio.to_thread(self.start)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()


_live: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:  # pragma: no cover - only on abnormal test exits
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.stop()


class ManagedProcess(Service):
    """A server that runs as a child process in a session (and process group) of its own."""

    name: ClassVar[str]
    """What the server is called in error messages."""
    error: ClassVar[type[Exception]] = RuntimeError
    """Raised when the server cannot be started."""
    stop_signals: ClassVar[tuple[tuple[signal.Signals, float], ...]] = ((signal.SIGTERM, 15.0),)
    """Sent in turn to the child, each followed by so many seconds of waiting for it to exit;
    then its whole process group is SIGKILLed."""
    poll_interval: ClassVar[float] = 0.05
    """Seconds between two readiness probes."""

    startup_timeout: float

    def __init__(self, startup_timeout: float) -> None:
        self.startup_timeout = startup_timeout
        self.start_seconds: float | None = None
        """How long the last :meth:`start` took (preparation, launch, readiness)."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._console: IO[bytes] | None = None

    # ------------------------------------------------------------------ what to run

    @abc.abstractmethod
    def _command(self) -> list[str]:
        """The server's command line."""

    def _launcher(self) -> list[str]:
        """A wrapper put before :meth:`_command` (not written to the console log)."""
        return []

    def _popen_kwargs(self) -> dict[str, Any]:
        """More keyword arguments for :class:`subprocess.Popen` (``cwd``, ``env``, ``user``)."""
        return {}

    def _prepare(self) -> None:
        """Called before each launch: write the configuration, make directories."""

    @abc.abstractmethod
    def _probe(self) -> str | None:
        """One readiness check: None when the server is ready, else why it is not yet."""

    @property
    @abc.abstractmethod
    def console_log_path(self) -> Path:
        """Where the child's stdout and stderr go (appended)."""

    def log_paths(self) -> list[Path]:
        """The logs :meth:`log_tail` shows."""
        return [self.console_log_path]

    def _where(self) -> str:
        """Where the server listens, for error messages."""
        return ""

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The child's process id (also its process group's) while it runs."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> Self:
        """Prepare, launch the child and wait until it is ready (see :meth:`_probe`)."""
        if self.running:
            return self
        started = time.monotonic()
        self._prepare()
        self._launch()
        _live.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self._shutdown()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop the child (and everything in its process group)."""
        self._shutdown()
        _live.discard(self)

    def _halt(self) -> None:
        self._shutdown()

    def kill(self) -> None:
        """SIGKILL the child's whole process group at once (a crash, not a clean shutdown);
        its data is kept and :meth:`start` brings the server back."""
        if self.running:
            assert self._proc is not None
            self._kill_all(self._proc)
        self._shutdown()

    def _kill_all(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def _launch(self) -> None:
        command = self._command()
        self._console = open(self.console_log_path, "ab")  # noqa: SIM115 - closed in _shutdown
        self._console.write(f"\n===== starting: {' '.join(command)}\n".encode())
        self._console.flush()
        command = [*self._launcher(), *command]
        try:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._popen_kwargs(),
            )
        except OSError as exc:
            self._close_console()
            raise self.error(f"cannot run {command[0]}: {exc}") from exc

    def _wait_ready(self) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.startup_timeout
        where = f" ({self._where()})" if self._where() else ""
        while True:
            if proc.poll() is not None:
                raise self.error(
                    f"{self.name} exited with code {proc.returncode} while starting{where}.\n"
                    + self.log_tail()
                )
            reason = self._probe()
            if reason is None:
                return
            if time.monotonic() > deadline:
                raise self.error(
                    f"{self.name} was not ready within {self.startup_timeout:.0f}s{where}: "
                    f"{reason}.\n{self.log_tail()}"
                )
            time.sleep(self.poll_interval)

    def _shutdown(self) -> None:
        """Send :attr:`stop_signals` in turn until the child exits, then SIGKILL whatever is
        left of its process group; close the console log."""
        proc = self._proc
        if proc is not None:
            for sig, wait in self.stop_signals:
                if proc.poll() is not None:
                    break
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(wait)
            self._kill_all(proc)
            proc.wait(10)
            self._proc = None
        self._close_console()

    def _close_console(self) -> None:
        if self._console is not None:
            self._console.close()
            self._console = None

    # ------------------------------------------------------------------ logs

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of each of :meth:`log_paths`."""
        parts = []
        for path in self.log_paths():
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            tail = "\n".join(text.splitlines()[-lines:])
            parts.append(f"--- {path} (tail) ---\n{tail}")
        return "\n".join(parts) or f"(no {self.name} logs)"


def reachable_by(directory: Path, uid: int, gid: int) -> bool:
    """Can the OS user ``uid`` (primary group ``gid``) traverse ``directory`` and every one of
    its parents?  (A server that runs as another user than root must reach its files.)"""
    resolved = directory.resolve()
    for d in [resolved, *resolved.parents]:
        try:
            st = d.stat()
        except OSError:
            return False
        if st.st_uid == uid:
            ok = bool(st.st_mode & 0o100)
        elif st.st_gid == gid:
            ok = bool(st.st_mode & 0o010)
        else:
            ok = bool(st.st_mode & 0o001)
        if not ok:
            return False
    return True
