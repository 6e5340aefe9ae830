"""Dovecot's files: where everything lives under the server's directory, who may reach it,
and the generated ``dovecot.conf``."""

from __future__ import annotations

import os
import pwd
import shutil
import ssl
import tempfile
from pathlib import Path

from ..ports import LOOPBACK
from ..process import reachable_by
from ..tls import make_self_signed_cert

__all__ = ["DovecotError", "DovecotFiles", "find_doveadm", "find_dovecot", "need_os_user"]


class DovecotError(RuntimeError):
    """The test Dovecot server could not be set up, started or used."""


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


def find_doveadm(dovecot: Path) -> Path:
    for cand in (
        os.environ.get("DOVEADM_BIN"),
        str(dovecot.parent / "doveadm"),
        shutil.which("doveadm"),
        "/usr/bin/doveadm",
    ):
        if cand and os.access(cand, os.X_OK):
            return Path(cand)
    raise DovecotError("doveadm not found (it comes with dovecot-core); set $DOVEADM_BIN")


def need_os_user(name: str) -> str:
    """``name``, if that OS user exists (as root, Dovecot's processes switch to such users)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise DovecotError(
            f"running as root, but there is no OS user {name!r} for Dovecot; install "
            "`dovecot-core` (it creates dovecot and dovenull) or create the user"
        ) from None
    return name


# Services that chroot by default (``doveconf -d``); rootless mode must turn that off.
# imap-login is handled in its own block; pop3/submission are not enabled.
_CHROOTED_SERVICES = ("aggregator", "anvil", "director", "imap-urlauth-login", "ipc", "old-stats")


class DovecotFiles:
    """The directory, paths and configuration of a :class:`~.server.DovecotServer`."""

    host = LOOPBACK
    imap_port: int
    imaps_port: int
    extra_config: str
    is_root: bool
    login_user: str
    internal_user: str
    internal_group: str
    mail_user: str
    mail_uid: int
    mail_gid: int
    users: dict[str, str]
    base_dir: Path | None
    _requested_dir: Path | None
    _owns_dir: bool
    _short_run_dir: Path | None
    _dovecot_bin: Path | None

    def _load_users(self) -> None:
        """Called once the directory exists (see :class:`~.mailboxes.DovecotMailboxes`)."""

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
        for user in (self.login_user, self.internal_user, self.mail_user):
            pw = pwd.getpwnam(user)
            if not reachable_by(directory, pw.pw_uid, pw.pw_gid):
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
        self._load_users()

    def _ensure_run_dir(self) -> None:
        # A unix socket path must fit in 108 bytes; the run dir holds names of up to ~25
        # characters ("token-login/tokenlogin"), so a deep base_dir gets a short one in /tmp.
        if self._short_run_dir is None and len(str(self._require_base() / "run")) > 70:
            self._short_run_dir = Path(tempfile.mkdtemp(prefix="dovecot-run-"))
            self._short_run_dir.chmod(0o755)

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
# Generated by tests/infra/dovecot -- a throwaway test server, not for production.
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
