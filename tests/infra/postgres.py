"""A throwaway PostgreSQL server on loopback for tests (no Docker, no system service).

Usage::

    with postgres_server() as pg:            # initdb + start, stop + delete on exit
        url = pg.create_database("bridge")   # postgres://postgres@127.0.0.1:PORT/bridge
        ...
        pg.restart()                         # every client connection is dropped
        pg.terminate_connections("bridge")   # drop connections without a restart

PostgreSQL refuses to run as root.  When the tests run as root (CI does), the server
binaries run as an unprivileged OS user (``postgres`` by default, which the Debian
``postgresql`` package creates) in a temporary directory owned by that user; otherwise they
run as the current user.  The server listens on 127.0.0.1 only, on a free port, with its unix
socket inside the temporary directory, ``trust`` authentication and ``fsync=off``.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .ports import LOOPBACK, free_port
from .process import ManagedProcess, reachable_by

__all__ = [
    "PostgresError",
    "PostgresServer",
    "async_postgres_server",
    "find_pg_bin_dir",
    "postgres_server",
]

_SERVER_BINARIES = ("initdb", "postgres", "pg_isready", "psql")


class PostgresError(RuntimeError):
    """The test PostgreSQL server could not be set up, started or used."""


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", path.parent.name)) or (0,)


def find_pg_bin_dir() -> Path:
    """Find the directory that holds the PostgreSQL *server* binaries.

    Order: ``$PG_BIN_DIR``; the newest ``/usr/lib/postgresql/*/bin``; the directory of
    ``initdb`` on ``PATH`` (following symlinks).
    """
    candidates: list[Path] = []
    env = os.environ.get("PG_BIN_DIR")
    if env:
        candidates.append(Path(env))
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key)[::-1])
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
        candidates.append(Path(on_path).parent)
    for cand in candidates:
        if all((cand / name).is_file() for name in _SERVER_BINARIES):
            return cand
    raise PostgresError(
        "PostgreSQL server binaries (initdb, postgres, pg_isready, psql) not found in "
        f"{[str(c) for c in candidates] or '/usr/lib/postgresql/*/bin or PATH'}. "
        "Install them with `apt-get install postgresql` (scripts/test.sh does this when root) "
        "or point PG_BIN_DIR at them."
    )


class PostgresServer(ManagedProcess):
    """One PostgreSQL cluster in a temporary directory, served on ``127.0.0.1:port``.

    ``start()`` runs initdb (once) and starts the server; ``stop()`` stops it and deletes the
    data (``stop(keep_data=True)`` keeps it, so a later ``start()`` serves the same data);
    ``restart()`` stops and starts it on the same port with the same data, which drops every
    client connection.
    """

    host = LOOPBACK
    name = "PostgreSQL"
    error = PostgresError
    # SIGINT is a "fast" shutdown: disconnect clients, checkpoint, exit; SIGQUIT an immediate one.
    stop_signals = ((signal.SIGINT, 20.0), (signal.SIGQUIT, 5.0))

    def __init__(
        self,
        parent_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        superuser: str = "postgres",
        bin_dir: str | os.PathLike[str] | None = None,
        os_user: str | None = None,
        startup_timeout: float = 30.0,
        settings: dict[str, Any] | None = None,
    ) -> None:
        """
        :param parent_dir: where the server's temporary directory is made (default: the
            system temp dir).  When running as root and ``os_user`` cannot reach it (pytest's
            ``tmp_path`` lives under a root-only directory), the system temp dir is used instead.
        :param port: TCP port; a free one is picked when None.
        :param superuser: name of the database superuser (no password, trust auth).
        :param bin_dir: PostgreSQL server binaries; found by :func:`find_pg_bin_dir` if None.
        :param os_user: OS user that runs the server when the current user is root
            (default ``postgres``).  Ignored when not root.
        :param startup_timeout: seconds to wait for the server to accept connections.
        :param settings: extra server settings (``-c key=value``),
            e.g. ``{"max_connections": 300}``.
        """
        self.port = port or free_port()
        self.superuser = superuser
        self._bin_dir = Path(bin_dir) if bin_dir else None
        self._parent_dir = os.fspath(parent_dir) if parent_dir else None
        super().__init__(startup_timeout)
        self.settings: dict[str, Any] = {
            "listen_addresses": LOOPBACK,
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": 200,
            "shared_buffers": "32MB",
            "log_min_messages": "warning",
            "log_min_error_statement": "panic",
            "logging_collector": "off",
        }
        if settings:
            self.settings.update(settings)

        self._run_as: tuple[int, int] | None = None
        if os.geteuid() == 0:
            name = os_user or "postgres"
            try:
                pw = pwd.getpwnam(name)
            except KeyError:
                raise PostgresError(
                    f"running as root, but there is no OS user {name!r} to run PostgreSQL as; "
                    "install the `postgresql` package (it creates the user) or pass os_user="
                ) from None
            self._run_as = (pw.pw_uid, pw.pw_gid)

        self.base_dir: Path | None = None

    # ------------------------------------------------------------------ paths / urls

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_pg_bin_dir()
        return self._bin_dir

    @property
    def data_dir(self) -> Path:
        return self._require_base() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._require_base() / "sock"

    @property
    def log_path(self) -> Path:
        return self._require_base() / "postgres.log"

    def url(self, dbname: str = "postgres") -> str:
        """``postgres://superuser@127.0.0.1:port/dbname``"""
        return f"postgres://{self.superuser}@{self.host}:{self.port}/{dbname}"

    @property
    def dsn_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``asyncpg.connect`` (add ``database=``)."""
        return {"host": self.host, "port": self.port, "user": self.superuser}

    def _require_base(self) -> Path:
        if self.base_dir is None:
            raise PostgresError("PostgreSQL server has not been started")
        return self.base_dir

    @property
    def console_log_path(self) -> Path:
        return self.log_path

    def log_paths(self) -> list[Path]:
        return [] if self.base_dir is None else [self.log_path]

    # ------------------------------------------------------------------ lifecycle

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop the server (fast shutdown) and, unless ``keep_data``, delete its directory."""
        if keep_data:
            self._shutdown()  # still registered: deleted at exit unless stopped again before
            return
        super().stop()
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    # ------------------------------------------------------------------ SQL helpers

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL with psql as the superuser; return its (unaligned, tuples-only) output."""
        cmd = [
            str(self.bin_dir / "psql"),
            "-X", "-q", "-A", "-t",
            "-v", "ON_ERROR_STOP=1",
            "-h", self.host,
            "-p", str(self.port),
            "-U", self.superuser,
            "-d", dbname,
            "-c", sql,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(PGSSLMODE="disable", PGCONNECT_TIMEOUT="5")
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
        if res.returncode != 0:
            raise PostgresError(
                f"psql failed ({res.returncode}) for {sql!r}: {res.stderr.strip()}"
            )
        return res.stdout

    @staticmethod
    def _ident(name: str) -> str:
        if not name or "\x00" in name:
            raise ValueError(f"bad identifier {name!r}")
        return '"' + name.replace('"', '""') + '"'

    def create_database(self, name: str) -> str:
        """Create database ``name`` (owned by the superuser) and return its URL."""
        self.psql(f"CREATE DATABASE {self._ident(name)}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {self._ident(name)} WITH (FORCE)")

    def terminate_connections(self, dbname: str | None = None) -> int:
        """Kill every client backend (of ``dbname`` if given) except psql's own; return count."""
        cond = "backend_type = 'client backend' AND pid <> pg_backend_pid()"
        if dbname is not None:
            cond += " AND datname = '" + dbname.replace("'", "''") + "'"
        out = self.psql(
            f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {cond}"
        )
        return int(out.strip() or 0)

    # ------------------------------------------------------------------ internals

    def _popen_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"cwd": str(self._require_base())}
        if self._run_as is not None:
            uid, gid = self._run_as
            kwargs.update(user=uid, group=gid, extra_groups=[])
        # A locale the server binaries certainly know; inherit nothing PG-specific.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_"))}
        env.update(LANG="C", LC_ALL="C")
        if self._run_as is not None:
            env["HOME"] = str(self._require_base())
        kwargs["env"] = env
        return kwargs

    def _initdb(self) -> None:
        if self.base_dir is None:
            parent = self._parent_dir
            if parent is not None and not self._reachable(Path(parent)):
                parent = None  # e.g. /tmp/pytest-of-root is 0700: postgres can't get in
            base = Path(tempfile.mkdtemp(prefix="bridge-test-pg-", dir=parent))
            self.base_dir = base
        base = self.base_dir
        base.chmod(0o700)
        (base / "sock").mkdir(mode=0o700, exist_ok=True)
        if self._run_as is not None:
            uid, gid = self._run_as
            os.chown(base, uid, gid)
            os.chown(base / "sock", uid, gid)
        cmd = [
            str(self.bin_dir / "initdb"),
            "-D", str(self.data_dir),
            "-U", self.superuser,
            "-A", "trust",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]  # fmt: skip
        try:
            res = subprocess.run(
                cmd, capture_output=True, text=True, timeout=120, **self._popen_kwargs()
            )
        except PermissionError as exc:
            raise PostgresError(
                f"cannot run initdb from {self.bin_dir} (as {self._who()}): {exc}. "
                f"Is the directory {base} reachable by that user?"
            ) from exc
        if res.returncode != 0:
            raise PostgresError(
                f"initdb failed with exit code {res.returncode} (as {self._who()}):\n"
                f"{res.stdout}\n{res.stderr}"
            )

    def _reachable(self, directory: Path) -> bool:
        """Can the OS user that runs the server traverse every ancestor of ``directory``?"""
        return self._run_as is None or reachable_by(directory, *self._run_as)

    def _who(self) -> str:
        if self._run_as is None:
            return pwd.getpwuid(os.geteuid()).pw_name
        return pwd.getpwuid(self._run_as[0]).pw_name

    def _prepare(self) -> None:
        """Create the cluster unless there is one."""
        if self.base_dir is None or not (self.data_dir / "PG_VERSION").exists():
            self._initdb()

    def _command(self) -> list[str]:
        cmd = [
            str(self.bin_dir / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-k", str(self.socket_dir),
        ]  # fmt: skip
        for key, value in self.settings.items():
            cmd += ["-c", f"{key}={value}"]
        return cmd

    def _probe(self) -> str | None:
        cmd = [
            str(self.bin_dir / "pg_isready"),
            "-q",
            "-h", self.host,
            "-p", str(self.port),
            "-U", self.superuser,
            "-d", "postgres",
            "-t", "2",
        ]  # fmt: skip
        if subprocess.run(cmd, stdin=subprocess.DEVNULL, timeout=30).returncode == 0:
            return None
        return "pg_isready: no connection"

    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<PostgresServer {self.host}:{self.port} {state} dir={self.base_dir}>"


def postgres_server(**kwargs: Any) -> PostgresServer:
    """A :class:`PostgresServer` (kwargs go to its constructor) for ``with`` (started on
    entry, stopped and deleted on exit) or ``async with`` (the same in a worker thread)."""
    return PostgresServer(**kwargs)


async_postgres_server = postgres_server
