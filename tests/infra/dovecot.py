"""A throwaway Dovecot IMAP server on loopback for tests (no Docker, no system service).

Usage::

    with dovecot_server() as imap:                 # write config + cert, start, stop + delete
        imap.add_user("alice", "secret")           # before or after start
        uid = imap.deliver("alice", raw_bytes)     # IMAP APPEND as alice; returns the new UID
        imap.host, imap.imap_port, imap.imaps_port # plain IMAP (STARTTLS offered) and IMAPS
        imap.set_uidvalidity("alice", "INBOX", 4242)
        imap.restart()                             # same ports, same mail; clients dropped

The master runs as a child process (``dovecot -F -c <config>``) with a config written into
its own temporary directory -- ``/etc/dovecot`` and the system service are never touched.
It listens on 127.0.0.1 only, on free ports; logins are plain-text passwords from a
passwd-file (``disable_plaintext_auth = no``: tests log in without TLS on loopback); mail is
in maildirs under the directory; the TLS certificate is self-signed and generated at start
(see :func:`make_self_signed_cert`).

Users.  As root (CI) Dovecot's own privilege separation is kept: login processes run as
``dovenull``, internal ones as ``dovecot`` (both created by Debian's ``dovecot-core``), and
mail is accessed as an unprivileged mail user (``nobody`` by default) that owns the mail
directory.  As a normal user every process runs as that user (Dovecot's "rootless" mode).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime
import grp
import imaplib
import ipaddress
import math
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

from .ports import LOOPBACK, free_port

__all__ = [
    "DovecotError",
    "DovecotServer",
    "async_dovecot_server",
    "dovecot_server",
    "find_dovecot",
    "make_self_signed_cert",
]


class DovecotError(RuntimeError):
    """The test Dovecot server could not be set up, started or used."""


# ---------------------------------------------------------------------------- helpers


def find_dovecot() -> Path:
    """The ``dovecot`` master binary: ``$DOVECOT_BIN``, ``PATH``, or ``/usr/sbin/dovecot``."""
    candidates = [os.environ.get("DOVECOT_BIN"), shutil.which("dovecot"), "/usr/sbin/dovecot"]
    for cand in candidates:
        if cand and os.access(cand, os.X_OK):
            return Path(cand)
    raise DovecotError(
        "the dovecot binary was not found ($DOVECOT_BIN, PATH, /usr/sbin/dovecot). Install it "
        "with `apt-get install dovecot-imapd` (scripts/test.sh does this when root)."
    )


def _find_doveadm(dovecot: Path) -> Path:
    for cand in (
        os.environ.get("DOVEADM_BIN"),
        str(dovecot.parent / "doveadm"),
        shutil.which("doveadm"),
        "/usr/bin/doveadm",
    ):
        if cand and os.access(cand, os.X_OK):
            return Path(cand)
    raise DovecotError("doveadm not found (it comes with dovecot-core); set $DOVEADM_BIN")


def make_self_signed_cert(
    directory: str | os.PathLike[str],
    hostname: str = "localhost",
    *,
    name: str = "server",
) -> tuple[Path, Path]:
    """Write ``<name>.crt`` and ``<name>.key`` (PEM, EC P-256, valid 7 days) into ``directory``.

    The certificate names ``hostname``, ``localhost`` and ``127.0.0.1`` (subjectAltName), so a
    client that trusts it (``ssl.create_default_context(cafile=cert)``) can verify the server
    at 127.0.0.1.  Uses the ``cryptography`` package when importable, else the ``openssl`` CLI.
    Returns ``(cert_path, key_path)``.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out / f"{name}.crt", out / f"{name}.key"
    try:
        _cert_with_cryptography(cert_path, key_path, hostname)
    except ImportError:
        _cert_with_openssl(cert_path, key_path, hostname)
    key_path.chmod(0o600)
    return cert_path, key_path


def _cert_with_cryptography(cert_path: Path, key_path: Path, hostname: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    names: list[x509.GeneralName] = [
        x509.DNSName(n) for n in dict.fromkeys([hostname, "localhost"])
    ]
    names.append(x509.IPAddress(ipaddress.ip_address(LOOPBACK)))
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _cert_with_openssl(cert_path: Path, key_path: Path, hostname: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise DovecotError(
            "cannot make a TLS certificate: neither the `cryptography` package nor the "
            "`openssl` command is available (apt-get install openssl)"
        )
    san = ",".join(f"DNS:{n}" for n in dict.fromkeys([hostname, "localhost"]))
    cmd = [
        openssl, "req", "-x509", "-nodes", "-days", "7",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", str(key_path), "-out", str(cert_path),
        "-subj", f"/CN={hostname}",
        "-addext", f"subjectAltName={san},IP:{LOOPBACK}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
        "-addext", "extendedKeyUsage=serverAuth",
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise DovecotError(f"openssl req failed ({res.returncode}): {res.stderr.strip()}")


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


# Services that chroot by default (``doveconf -d``); rootless mode must turn that off.
# imap-login is handled in its own block; pop3/submission are not enabled.
_CHROOTED_SERVICES = ("aggregator", "anvil", "director", "imap-urlauth-login", "ipc", "old-stats")


def _imap_quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


_STATUS_ITEM = re.compile(rb"([A-Z]+) (\d+)")

_live_servers: weakref.WeakSet[DovecotServer] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:  # pragma: no cover - only on abnormal test exits
    for server in list(_live_servers):
        with contextlib.suppress(Exception):
            server.stop()


# ---------------------------------------------------------------------------- the server


class DovecotServer:
    """One Dovecot instance (IMAP only) whose config, mail, state and logs live in ``base_dir``.

    ``start()`` writes the config (and a self-signed certificate, once) and starts the master;
    ``stop()`` stops it (and deletes the directory if it was a temporary one, unless
    ``keep_data``); ``restart()`` stops and starts it on the same ports with the same mail,
    which drops every client connection.  Users can be added at any time
    (:meth:`add_user`): Dovecot re-reads the passwd-file when it changes.
    """

    host = LOOPBACK

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
        self.imap_port = imap_port or free_port()
        self.imaps_port = imaps_port or free_port()
        self.startup_timeout = startup_timeout
        self.extra_config = extra_config
        self.start_seconds: float | None = None
        """How long the last :meth:`start` took (config, certificate, master, greeting)."""
        self.users: dict[str, str] = {}
        """name -> password of every user added with :meth:`add_user`."""

        self.is_root = os.geteuid() == 0
        if self.is_root:
            self.login_user = self._need_user("dovenull")
            self.internal_user = self._need_user("dovecot")
            self.mail_user = self._need_user(mail_user)
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
        self._proc: subprocess.Popen[bytes] | None = None
        self._console: Any = None
        self._dovecot_bin: Path | None = None

    @staticmethod
    def _need_user(name: str) -> str:
        try:
            pwd.getpwnam(name)
        except KeyError:
            raise DovecotError(
                f"running as root, but there is no OS user {name!r} for Dovecot; install "
                "`dovecot-core` (it creates dovecot and dovenull) or create the user"
            ) from None
        return name

    # ------------------------------------------------------------------ paths

    def _require_base(self) -> Path:
        if self.base_dir is None:
            self._prepare_dir()
        assert self.base_dir is not None
        return self.base_dir

    @property
    def config_path(self) -> Path:
        return self._require_base() / "dovecot.conf"

    @property
    def passwd_path(self) -> Path:
        return self._require_base() / "passwd"

    @property
    def cert_path(self) -> Path:
        return self._require_base() / "tls" / "server.crt"

    @property
    def key_path(self) -> Path:
        return self._require_base() / "tls" / "server.key"

    @property
    def mail_root(self) -> Path:
        """Users' homes are ``mail_root/<user>``, their maildirs ``.../Maildir``."""
        return self._require_base() / "mail"

    @property
    def run_dir(self) -> Path:
        """Dovecot's ``base_dir`` (runtime sockets, master.pid)."""
        if self._short_run_dir is not None:
            return self._short_run_dir
        return self._require_base() / "run"

    @property
    def state_dir(self) -> Path:
        return self._require_base() / "state"

    @property
    def log_path(self) -> Path:
        """Errors and warnings (``log_path``)."""
        return self._require_base() / "dovecot.log"

    @property
    def info_log_path(self) -> Path:
        """Informational messages, e.g. logins (``info_log_path``)."""
        return self._require_base() / "dovecot-info.log"

    @property
    def console_log_path(self) -> Path:
        """The master's stdout/stderr (config errors before logging is set up)."""
        return self._require_base() / "console.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def dovecot_bin(self) -> Path:
        if self._dovecot_bin is None:
            self._dovecot_bin = find_dovecot()
        return self._dovecot_bin

    def maildir(self, user: str) -> Path:
        return self.mail_root / user / "Maildir"

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (hostname 127.0.0.1 works)."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    # ------------------------------------------------------------------ directory / config

    def _reachable(self, directory: Path) -> bool:
        """Can all of Dovecot's unprivileged users traverse ``directory`` and its parents?"""
        if not self.is_root:
            return True
        for d in [directory, *directory.parents]:
            try:
                st = d.stat()
            except OSError:
                return False
            for user in (self.login_user, self.internal_user, self.mail_user):
                pw = pwd.getpwnam(user)
                if st.st_uid == pw.pw_uid:
                    ok = bool(st.st_mode & 0o100)
                elif st.st_gid == pw.pw_gid:
                    ok = bool(st.st_mode & 0o010)
                else:
                    ok = bool(st.st_mode & 0o001)
                if not ok:
                    return False
        return True

    def _prepare_dir(self) -> None:
        if self.base_dir is not None:
            return
        req = self._requested_dir
        if req is not None:
            req.mkdir(parents=True, exist_ok=True)
        if req is not None and self._reachable(req.parent):  # req itself is chmod'ed below
            base, self._owns_dir = req, False
        else:
            base = Path(tempfile.mkdtemp(prefix="bridge-test-dovecot-"))
            self._owns_dir = True
        # Everyone may traverse; only the files that must be shared are readable.
        base.chmod(0o711)
        for sub in ("tls", "state"):
            (base / sub).mkdir(mode=0o700, exist_ok=True)
        mail = base / "mail"
        mail.mkdir(mode=0o700, exist_ok=True)
        if self.is_root:
            os.chown(mail, self.mail_uid, self.mail_gid)
        self.base_dir = base
        if self.passwd_path.exists():
            # A kept directory: remember its users (a new write must not drop them).
            for line in self.passwd_path.read_text().splitlines():
                name, _, rest = line.partition(":")
                password = rest.split(":", 1)[0].removeprefix("{PLAIN}")
                if name and rest:
                    self.users.setdefault(name, password)
        self._write_passwd()

    def _ensure_run_dir(self) -> None:
        # A unix socket path must fit in 108 bytes; the run dir holds names of up to ~25
        # characters ("token-login/tokenlogin"), so a deep base_dir gets a short one in /tmp.
        if self._short_run_dir is None and len(str(self._require_base() / "run")) > 70:
            self._short_run_dir = Path(tempfile.mkdtemp(prefix="dovecot-run-"))
            self._short_run_dir.chmod(0o755)

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
        self._require_base()
        written = time.time()
        self._write_passwd()
        if self.running:
            # passwd_file_sync() in Dovecot's auth process skips the stat() when it already
            # synced in the current second (ioloop_time); from the next second on it re-reads.
            time.sleep(max(0.0, math.floor(written) + 1 - time.time()) + 0.01)

    async def aadd_user(self, name: str, password: str) -> None:
        """:meth:`add_user` without blocking the event loop."""
        await asyncio.to_thread(self.add_user, name, password)

    def dovecot_config(self) -> str:
        """The dovecot.conf text that :meth:`start` writes."""
        base = self._require_base()
        # Extra settings per service (each service block may appear only once).
        services: dict[str, list[str]] = {
            # No growing delays for repeated failed logins from 127.0.0.1.
            "anvil": ["unix_listener anvil-auth-penalty {\n    mode = 0\n  }"],
        }
        if not self.is_root:
            # Rootless: nothing may chroot (nor switch users, see default_*_user).
            for svc in _CHROOTED_SERVICES:
                services.setdefault(svc, []).append("chroot =")
        service_blocks = "".join(
            f"service {svc} {{\n" + "".join(f"  {line}\n" for line in lines) + "}\n"
            for svc, lines in services.items()
        )
        login_chroot = "" if self.is_root else "  chroot =\n"
        return f"""\
# Generated by tests/infra/dovecot.py -- a throwaway test server, not for production.
protocols = imap
listen = {LOOPBACK}
base_dir = {self.run_dir}
state_dir = {self.state_dir}
instance_name = test-dovecot-{self.imap_port}
log_path = {self.log_path}
info_log_path = {self.info_log_path}
debug_log_path = {self.info_log_path}
log_timestamp = "%Y-%m-%d %H:%M:%S "
login_greeting = Dovecot test server ready.
shutdown_clients = yes

default_internal_user = {self.internal_user}
default_internal_group = {self.internal_group}
default_login_user = {self.login_user}
first_valid_uid = 1
first_valid_gid = 1

ssl = yes
ssl_cert = <{self.cert_path}
ssl_key = <{self.key_path}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_cache_size = 0
# Answer failed logins at once (default: 2 s, growing per IP through anvil's auth penalty).
auth_failure_delay = 0

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd_path}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.passwd_path}
  default_fields = uid={self.mail_uid} gid={self.mail_gid} home={base / "mail"}/%u
}}

mail_location = maildir:~/Maildir
mail_fsync = never
mailbox_idle_check_interval = 1 secs

namespace inbox {{
  inbox = yes
  separator = /
}}

service imap-login {{
  inet_listener imap {{
    address = {LOOPBACK}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = {LOOPBACK}
    port = {self.imaps_port}
    ssl = yes
  }}
{login_chroot}}}
{service_blocks}{self.extra_config}
"""

    def write_config(self) -> Path:
        """Write dovecot.conf (and a new certificate if there is none yet)."""
        base = self._require_base()
        self._ensure_run_dir()
        if not self.cert_path.exists() or not self.key_path.exists():
            make_self_signed_cert(base / "tls", "localhost")
        self.config_path.write_text(self.dovecot_config())
        return self.config_path

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> DovecotServer:
        """Write the config, start the master and wait for the IMAP greeting."""
        if self.running:
            return self
        started = time.monotonic()
        self.write_config()
        self._launch()
        _live_servers.add(self)
        self._wait_ready()
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop the master (and all its children).  A temporary directory is deleted unless
        ``keep_data``; a directory given as ``base_dir`` is always kept."""
        self._shutdown()
        _live_servers.discard(self)
        if self._short_run_dir is not None:
            shutil.rmtree(self._short_run_dir, ignore_errors=True)
            self._short_run_dir = None
        if self._owns_dir and not keep_data and self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def restart(self, *, downtime: float = 0.0) -> None:
        """Stop and start again on the same ports with the same mail (clients are dropped)."""
        self._shutdown()
        if downtime > 0:
            time.sleep(downtime)
        self.start()

    def kill(self) -> None:
        """SIGKILL the master and all its children at once (a crash, not a clean shutdown);
        the mail is kept and :meth:`start` brings the server back."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGUSR2)
        self._shutdown()

    async def astart(self) -> DovecotServer:
        """:meth:`start` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.start)

    async def astop(self, *, keep_data: bool = False) -> None:
        await asyncio.to_thread(self.stop, keep_data=keep_data)

    async def arestart(self, *, downtime: float = 0.0) -> None:
        """:meth:`restart` in a worker thread (``downtime`` does not block the loop)."""
        await asyncio.to_thread(self._shutdown)
        if downtime > 0:
            await asyncio.sleep(downtime)
        await asyncio.to_thread(self.start)

    def __enter__(self) -> DovecotServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _launch(self) -> None:
        cmd = [str(self.dovecot_bin), "-F", "-c", str(self.config_path)]
        self._console = open(self.console_log_path, "ab")  # noqa: SIM115 - closed in _shutdown
        self._console.write(f"\n===== starting: {' '.join(cmd)}\n".encode())
        cmd = [sys.executable, "-I", "-S", "-c", _REAPER, *cmd]
        self._console.flush()
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C"}
        try:
            self._proc = subprocess.Popen(
                cmd,
                cwd=str(self._require_base()),
                stdin=subprocess.DEVNULL,
                stdout=self._console,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            self._close_console()
            raise DovecotError(f"cannot run {cmd[0]}: {exc}") from exc

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error: str = ""
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._shutdown()
                raise DovecotError(
                    f"dovecot exited with code {code} while starting "
                    f"(imap port {self.imap_port}).\n{self.log_tail()}"
                )
            try:
                with socket.create_connection((self.host, self.imap_port), timeout=2) as sock:
                    greeting = sock.makefile("rb").readline()
                    if greeting.startswith(b"* OK"):
                        with contextlib.suppress(OSError):
                            sock.sendall(b"a LOGOUT\r\n")
                        return
                    last_error = f"unexpected greeting {greeting!r}"
            except OSError as exc:
                last_error = str(exc)
            if time.monotonic() > deadline:
                self._shutdown()
                raise DovecotError(
                    f"dovecot did not greet on {self.host}:{self.imap_port} within "
                    f"{self.startup_timeout:.0f}s ({last_error}).\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _shutdown(self, timeout: float = 15.0) -> None:
        """SIGTERM the master and wait until it and all its descendants are gone (the reaper
        wrapper exits last); SIGKILL the whole process group after ``timeout`` seconds."""
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
            # Anything left in the process group (only after a SIGKILL of the wrapper).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            self._proc = None
        self._close_console()

    def _close_console(self) -> None:
        if self._console is not None:
            self._console.close()
            self._console = None

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the master's console output and Dovecot's logs."""
        if self.base_dir is None:
            return "(no dovecot logs)"
        parts = []
        for path in (self.console_log_path, self.log_path, self.info_log_path):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            tail = "\n".join(text.splitlines()[-lines:])
            parts.append(f"--- {path} (tail) ---\n{tail}")
        return "\n".join(parts) or "(no dovecot logs)"

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
        cmd = [str(_find_doveadm(self.dovecot_bin)), "-c", str(self.config_path), *args]
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

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (
            f"<DovecotServer {self.host} imap={self.imap_port} imaps={self.imaps_port} "
            f"{state} dir={self.base_dir}>"
        )


@contextlib.contextmanager
def dovecot_server(**kwargs: Any) -> Iterator[DovecotServer]:
    """Start a :class:`DovecotServer` (kwargs go to its constructor); stop it on exit."""
    server = DovecotServer(**kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def async_dovecot_server(**kwargs: Any) -> AsyncIterator[DovecotServer]:
    """Like :func:`dovecot_server`, starting and stopping in a worker thread."""
    server = DovecotServer(**kwargs)
    await server.astart()
    try:
        yield server
    finally:
        await server.astop()
