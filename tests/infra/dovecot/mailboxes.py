"""Dovecot's users and mailboxes: the passwd-file, mail put in over IMAP, folders, STATUS and
``doveadm`` (a changed UIDVALIDITY)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import imaplib
import math
import os
import pwd
import re
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import DovecotError, find_doveadm

__all__ = ["DovecotMailboxes"]


def _imap_quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


_STATUS_ITEM = re.compile(rb"([A-Z]+) (\d+)")


class DovecotMailboxes:
    """Users and mail of a :class:`~.server.DovecotServer` (blocking, with ``a*`` variants
    that run in a worker thread)."""

    host: str
    imap_port: int
    is_root: bool
    internal_user: str
    users: dict[str, str]
    """name -> password of every user added with :meth:`add_user`."""
    base_dir: Path | None
    _passwd_mtime: int

    if TYPE_CHECKING:  # provided by DovecotFiles and ManagedProcess
        passwd_path: Path
        config_path: Path
        dovecot_bin: Path
        running: bool

        def _require_base(self) -> Path: ...

        def log_tail(self, lines: int = 60) -> str: ...

    # ------------------------------------------------------------------ users

    def _load_users(self) -> None:
        if self.passwd_path.exists():
            # A kept directory: remember its users (a new write must not drop them).
            for line in self.passwd_path.read_text().splitlines():
                name, _, rest = line.partition(":")
                password = rest.split(":", 1)[0].removeprefix("{PLAIN}")
                if name and rest:
                    self.users.setdefault(name, password)
        self._write_passwd()

    def _write_passwd(self) -> None:
        lines = []
        for name, password in self.users.items():
            # user:password:uid:gid:(gecos):home:(shell):extra -- uid/gid come from mail_uid.
            lines.append(f"{name}:{{PLAIN}}{password}::::::\n")
        path = self.passwd_path
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(lines))
        if self.is_root:
            # Read by the auth process, which runs as the internal user.
            os.chown(tmp, 0, pwd.getpwnam(self.internal_user).pw_gid)
        tmp.chmod(0o640)
        # Dovecot re-reads the file when its mtime or size changes: make sure the mtime does.
        stamp = max(int(time.time()), self._passwd_mtime + 1)
        os.utime(tmp, (stamp, stamp))
        self._passwd_mtime = stamp
        os.replace(tmp, path)

    def add_user(self, name: str, password: str) -> None:
        """Add (or change the password of) an IMAP user; works before and after :meth:`start`.

        While the server runs this takes up to a second: Dovecot's auth process looks at the
        passwd-file at most once per wall-clock second, so the change is only certainly seen
        from the next second on, and this waits for it.  Add users before :meth:`start` (or
        many at once with :meth:`add_users`) to avoid the wait.
        """
        self.add_users({name: password})

    def add_users(self, users: dict[str, str]) -> None:
        """Add (or change) several users with one passwd-file write (and at most one wait)."""
        for name, password in users.items():
            if not re.fullmatch(r"[A-Za-z0-9._@+-]+", name):
                raise ValueError(f"unsupported user name {name!r}")
            if any(c in password for c in ":\n\r\x00"):
                raise ValueError("the password must not contain ':' or line breaks")
        self.users.update(users)
        if self.base_dir is None:
            return  # the directory, made at the latest by start(), gets the passwd-file then
        written = time.time()
        self._write_passwd()
        if self.running:
            # passwd_file_sync() in Dovecot's auth process skips the stat() when it already
            # synced in the current second (ioloop_time); from the next second on it re-reads.
            time.sleep(max(0.0, math.floor(written) + 1 - time.time()) + 0.01)

    async def aadd_user(self, name: str, password: str) -> None:
        """:meth:`add_user` without blocking the event loop."""
        await asyncio.to_thread(self.add_user, name, password)

    # ------------------------------------------------------------------ IMAP helpers (blocking)

    @contextlib.contextmanager
    def imap_session(self, user: str, *, timeout: float = 30.0) -> Iterator[imaplib.IMAP4]:
        """A logged-in stdlib :class:`imaplib.IMAP4` session as ``user`` (plain IMAP)."""
        if user not in self.users:
            raise DovecotError(f"unknown user {user!r}; add_user() it first")
        if not self.running:
            raise DovecotError("dovecot is not running")
        conn = imaplib.IMAP4(self.host, self.imap_port, timeout=timeout)
        try:
            conn.login(user, self.users[user])
            yield conn
        finally:
            try:
                conn.logout()
            except (imaplib.IMAP4.error, OSError):
                conn.shutdown()

    def deliver(
        self,
        user: str,
        raw_message: bytes,
        folder: str = "INBOX",
        *,
        flags: Iterable[str] = (),
        date: datetime.datetime | None = None,
        create_folder: bool = True,
    ) -> int | None:
        """Put a message into ``user``'s ``folder`` with IMAP APPEND; return its UID.

        Line endings are normalised to CRLF.  The folder is created if missing (unless
        ``create_folder=False``).  Clients IDLEing on the folder see ``* n EXISTS``.
        Returns the UID from the APPENDUID response code (None if the server sent none).
        """
        data = re.sub(rb"\r?\n", b"\r\n", raw_message)
        flag_list = "(" + " ".join(flags) + ")" if flags else None
        when = imaplib.Time2Internaldate(date) if date is not None else None
        with self.imap_session(user) as conn:
            if create_folder and folder.upper() != "INBOX":
                typ, _ = conn.select(_imap_quote(folder), readonly=True)
                if typ != "OK":
                    self._check(conn.create(_imap_quote(folder)), "CREATE", folder)
            typ, resp = conn.append(_imap_quote(folder), flag_list, when, data)
            if typ != "OK":
                raise DovecotError(f"APPEND to {folder!r} as {user!r} failed: {resp!r}")
            match = re.search(rb"APPENDUID \d+ (\d+)", b" ".join(r for r in resp if r))
            return int(match.group(1)) if match else None

    def create_folder(self, user: str, folder: str) -> None:
        with self.imap_session(user) as conn:
            self._check(conn.create(_imap_quote(folder)), "CREATE", folder)

    def delete_folder(self, user: str, folder: str) -> None:
        with self.imap_session(user) as conn:
            self._check(conn.delete(_imap_quote(folder)), "DELETE", folder)

    def folder_status(self, user: str, folder: str = "INBOX") -> dict[str, int]:
        """STATUS of a folder: MESSAGES, UIDNEXT, UIDVALIDITY, UNSEEN."""
        with self.imap_session(user) as conn:
            typ, resp = conn.status(_imap_quote(folder), "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)")
            self._check((typ, resp), "STATUS", folder)
            line = resp[0] if isinstance(resp[0], bytes) else b""
            inner = line[line.rfind(b"(") :]
            return {k.decode(): int(v) for k, v in _STATUS_ITEM.findall(inner)}

    @staticmethod
    def _check(result: tuple[str, Any], command: str, folder: str) -> None:
        typ, resp = result
        if typ != "OK":
            raise DovecotError(f"{command} {folder!r} failed: {resp!r}")

    # ------------------------------------------------------------------ doveadm

    def doveadm(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``doveadm -c <config> <args>`` against this server; return its stdout."""
        cmd = [str(find_doveadm(self.dovecot_bin)), "-c", str(self.config_path), *args]
        res = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd=str(self._require_base())
        )
        if res.returncode != 0:
            raise DovecotError(
                f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}\n"
                + self.log_tail(20)
            )
        return res.stdout

    def set_uidvalidity(self, user: str, folder: str = "INBOX", value: int | None = None) -> int:
        """Change the folder's UIDVALIDITY (to ``value``, default: current + 1); return it.

        Uses ``doveadm mailbox update --uid-validity``.  The messages stay, with the same
        UIDs and UIDNEXT, but clients must treat every UID they know as stale.  A session that
        has the folder selected is not told at once (no untagged response, not even in IDLE);
        at its next command Dovecot disconnects it (logging "dovecot.index reset, view is now
        inconsistent" as an error).  New sessions see the new value on SELECT.
        """
        if value is None:
            value = self.folder_status(user, folder)["UIDVALIDITY"] + 1
        if not 0 < value < 2**32:
            raise ValueError("UIDVALIDITY must be a non-zero 32-bit unsigned number")
        self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(value), folder)
        return value

    # ------------------------------------------------------------------ async variants

    async def adeliver(
        self, user: str, raw_message: bytes, folder: str = "INBOX", **kw: Any
    ) -> int | None:
        """:meth:`deliver` in a worker thread."""
        return await asyncio.to_thread(self.deliver, user, raw_message, folder, **kw)

    async def afolder_status(self, user: str, folder: str = "INBOX") -> dict[str, int]:
        return await asyncio.to_thread(self.folder_status, user, folder)

    async def aset_uidvalidity(
        self, user: str, folder: str = "INBOX", value: int | None = None
    ) -> int:
        return await asyncio.to_thread(self.set_uidvalidity, user, folder, value)

    async def acreate_folder(self, user: str, folder: str) -> None:
        await asyncio.to_thread(self.create_folder, user, folder)
