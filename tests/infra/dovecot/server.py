"""The Dovecot master as a managed child process, under a reaper that leaves nothing behind."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from ..ports import free_port
from ..process import ManagedProcess
from .config import DovecotError, DovecotFiles, need_os_user
from .mailboxes import DovecotMailboxes

__all__ = ["DovecotServer", "dovecot_server"]

# The master runs under this tiny wrapper (``python -I -S -c _REAPER dovecot -F -c conf``).
# Dovecot's master exits on SIGTERM (after ~1 s) without waiting for its last children: log
# and stats are orphaned -- under an init that does not reap (some sandboxes) they would stay
# behind as zombies -- and imap processes serving a client go on for ~10 s more.  The wrapper
# is a child subreaper: it forwards signals to the master; once the master has exited it
# SIGTERMs what is left of its process group (imap says "BYE Server shutting down" and exits;
# SIGKILL after 5 s), reaps every descendant, and exits with the master's status only when
# all of them are gone.  SIGUSR2 to the wrapper SIGKILLs the whole group but itself (a crash).
_REAPER = """
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
master = os.fork()
if master == 0:
    os.execv(sys.argv[1], sys.argv[1:])
def signal_group(sig):
    me, group = os.getpid(), os.getpgrp()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me:
            try:
                with open("/proc/" + entry + "/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[2]) == group:
                        os.kill(int(entry), sig)
            except (OSError, ValueError, IndexError):
                pass
def on_signal(signum, frame):
    if signum in (signal.SIGUSR2, signal.SIGALRM):
        signal_group(signal.SIGKILL)
    else:
        try:
            os.kill(master, signum)
        except ProcessLookupError:
            pass
for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
               signal.SIGALRM):
    signal.signal(signum, on_signal)
code = 1
while True:
    try:
        pid, status = os.waitpid(-1, 0)
    except ChildProcessError:
        break
    if pid == master:
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
        # Processes serving clients outlive the master (by ~10 s): end them now, kill at 5 s.
        signal_group(signal.SIGTERM)
        signal.alarm(5)
sys.exit(code)
"""


class DovecotServer(DovecotMailboxes, DovecotFiles, ManagedProcess):
    """One Dovecot instance (IMAP only) whose config, mail, state and logs live in ``base_dir``.

    ``start()`` writes the config (and a self-signed certificate, once) and starts the master;
    ``stop()`` stops it (and deletes the directory if it was a temporary one, unless
    ``keep_data``); ``restart()`` stops and starts it on the same ports with the same mail,
    which drops every client connection.  Users can be added at any time
    (:meth:`add_user`): Dovecot re-reads the passwd-file when it changes.
    """

    name = "dovecot"
    error = DovecotError

    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        *,
        imap_port: int | None = None,
        imaps_port: int | None = None,
        mail_user: str = "nobody",
        startup_timeout: float = 30.0,
        extra_config: str = "",
    ) -> None:
        """
        :param base_dir: directory for everything (config, passwd-file, certificate, mail,
            runtime sockets, state, logs); created if missing and kept on :meth:`stop`.
            None (the default) makes a temporary directory that :meth:`stop` deletes.  As
            root, Dovecot's unprivileged users must be able to traverse every parent of it;
            when they can't (pytest's ``tmp_path`` is under a root-only directory) a
            temporary directory is used instead, as for None.
        :param imap_port: plain IMAP port (STARTTLS offered); a free one if None.
        :param imaps_port: IMAPS (implicit TLS) port; a free one if None.
        :param mail_user: OS user that owns and accesses the mail when running as root
            (ignored otherwise).  Its primary group is used as the mail group.
        :param startup_timeout: seconds to wait for the IMAP greeting.
        :param extra_config: text appended to the generated dovecot.conf.
        """
        super().__init__(startup_timeout)
        self.imap_port = imap_port or free_port()
        self.imaps_port = imaps_port or free_port()
        self.extra_config = extra_config
        self.users: dict[str, str] = {}
        """name -> password of every user added with :meth:`add_user`."""

        self.is_root = os.geteuid() == 0
        if self.is_root:
            self.login_user = need_os_user("dovenull")
            self.internal_user = need_os_user("dovecot")
            self.mail_user = need_os_user(mail_user)
        else:
            me = pwd.getpwuid(os.geteuid()).pw_name
            self.login_user = self.internal_user = self.mail_user = me
        mail_pw = pwd.getpwnam(self.mail_user)
        self.mail_uid, self.mail_gid = mail_pw.pw_uid, mail_pw.pw_gid
        internal_pw = pwd.getpwnam(self.internal_user)
        self.internal_group = grp.getgrgid(internal_pw.pw_gid).gr_name

        self._requested_dir = Path(base_dir).resolve() if base_dir is not None else None
        self.base_dir: Path | None = None
        self._owns_dir = False
        self._short_run_dir: Path | None = None
        self._passwd_mtime = 0
        self._dovecot_bin: Path | None = None

    # ------------------------------------------------------------------ process

    def _prepare(self) -> None:
        self.write_config()

    def _command(self) -> list[str]:
        return [str(self.dovecot_bin), "-F", "-c", str(self.config_path)]

    def _launcher(self) -> list[str]:
        return [sys.executable, "-I", "-S", "-c", _REAPER]

    def _popen_kwargs(self) -> dict[str, Any]:
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C"}
        return {"cwd": str(self._require_base()), "env": env}

    def _probe(self) -> str | None:
        try:
            with socket.create_connection((self.host, self.imap_port), timeout=2) as sock:
                greeting = sock.makefile("rb").readline()
                if greeting.startswith(b"* OK"):
                    with contextlib.suppress(OSError):
                        sock.sendall(b"a LOGOUT\r\n")
                    return None
                return f"unexpected greeting {greeting!r}"
        except OSError as exc:
            return str(exc)

    def _where(self) -> str:
        return f"imap {self.host}:{self.imap_port}"

    def log_paths(self) -> list[Path]:
        if self.base_dir is None:
            return []
        return [self.console_log_path, self.log_path, self.info_log_path]

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop the master (and all its children).  A temporary directory is deleted unless
        ``keep_data``; a directory given as ``base_dir`` is always kept."""
        super().stop()
        if self._short_run_dir is not None:
            shutil.rmtree(self._short_run_dir, ignore_errors=True)
            self._short_run_dir = None
        if self._owns_dir and not keep_data and self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def kill(self) -> None:
        """SIGKILL the master and all its children at once (a crash, not a clean shutdown);
        the mail is kept and :meth:`start` brings the server back."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGUSR2)  # the reaper SIGKILLs the group
        self._shutdown()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (
            f"<DovecotServer {self.host} imap={self.imap_port} imaps={self.imaps_port} "
            f"{state} dir={self.base_dir}>"
        )


def dovecot_server(**kwargs: Any) -> DovecotServer:
    """A :class:`DovecotServer` (kwargs go to its constructor) for ``with`` (started on entry,
    stopped on exit) or ``async with`` (the same in a worker thread)."""
    return DovecotServer(**kwargs)


async_dovecot_server = dovecot_server
