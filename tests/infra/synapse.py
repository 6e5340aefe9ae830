"""A real Synapse homeserver on loopback for end-to-end tests (SQLite, no federation).

Usage::

    reg = write_appservice_registration(tmp / "as.yaml", url="http://127.0.0.1:29999")
    with synapse_server(tmp / "hs", [reg.path]) as hs:
        user_id, token = hs.register_user("staff", "pw", admin=True)
        ...
        hs.restart()        # same data, same port: simulates a homeserver outage

Synapse runs as a subprocess of the current interpreter (``sys.executable -m
synapse.app.homeserver``), so it must be installed in the test venv (the ``test`` extra).
The appservice registration files are passed through untouched: the class does not care who
wrote them (the helper below, or the bridge itself).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ports import LOOPBACK, free_port
from .process import ManagedProcess

__all__ = [
    "E2EE_REGISTRATION",
    "E2EE_SETTINGS",
    "LOCAL_SETTINGS",
    "RELAXED_RATE_LIMITS",
    "AppserviceRegistration",
    "SynapseError",
    "SynapseServer",
    "async_synapse_server",
    "http_json",
    "log_config",
    "loopback_listener",
    "postgres_database_config",
    "synapse_server",
    "write_appservice_registration",
]


class SynapseError(RuntimeError):
    """Synapse could not be configured, started or called."""


def _dump_yaml(data: Any) -> str:
    # JSON is valid YAML 1.2 and Synapse's loader (PyYAML) reads it; no YAML dependency needed.
    return json.dumps(data, indent=2) + "\n"


_FAST = {"per_second": 10000, "burst_count": 100000}

# Rate limits high enough that tests never hit them.
RELAXED_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _FAST,
    "rc_registration": _FAST,
    "rc_registration_token_validity": _FAST,
    "rc_login": {"address": _FAST, "account": _FAST, "failed_attempts": _FAST},
    "rc_admin_redaction": _FAST,
    "rc_joins": {"local": _FAST, "remote": _FAST},
    "rc_joins_per_room": _FAST,
    "rc_3pid_validation": _FAST,
    "rc_invites": {"per_room": _FAST, "per_user": _FAST, "per_issuer": _FAST},
    "rc_third_party_invite": _FAST,
    "rc_media_create": _FAST,
    "rc_presence": {"per_user": _FAST},
    "rc_delayed_event_mgmt": _FAST,
    "rc_room_creation": _FAST,
    "rc_reports": _FAST,
    "rc_user_directory": _FAST,
    "rc_profile": _FAST,
    "rc_key_requests": _FAST,
}

LOCAL_SETTINGS: dict[str, Any] = {
    "report_stats": False,
    "enable_registration": False,
    "enable_metrics": False,
    "trusted_key_servers": [],
    "suppress_key_server_warning": True,
    "url_preview_enabled": False,
    "presence": {"enabled": False},
    "federation_domain_whitelist": [],
    "allow_public_rooms_over_federation": False,
    "user_directory": {"enabled": True, "search_all_users": True},
    "auto_join_rooms": [],
    "require_auth_for_profile_requests": False,
    **RELAXED_RATE_LIMITS,
}
"""The settings of a throwaway homeserver (the tests' and the demo's): no federation, no
registration, no reporting home, every user findable, rate limits out of the way."""


E2EE_SETTINGS: dict[str, Any] = {
    "encryption_enabled_by_default_for_room_type": "all",
    "experimental_features": {
        "msc2409_to_device_messages_enabled": True,
        "msc3202_transaction_extensions": True,
    },
}
"""``extra_config`` for a homeserver where every new room is encrypted and an appservice can
run its own E2EE devices: to-device messages for its users in its transactions (MSC2409 /
MSC4203) and device list changes, one-time key counts and fallback key usage (MSC3202).
Each appservice must opt in too, in its registration (:data:`E2EE_REGISTRATION`).  Creating a
device with ``PUT /_matrix/client/v3/devices/{id}?user_id=...`` (MSC4190) needs no homeserver
setting: this Synapse lets any appservice do it; the registration flag only changes
``/register`` (no access token) and device deletion (no UIA)."""

E2EE_REGISTRATION: dict[str, Any] = {
    "receive_ephemeral": True,
    "org.matrix.msc3202": True,
    "io.element.msc4190": True,
}
"""Registration keys (``extra`` of :func:`write_appservice_registration`) with which an
appservice opts in to what :data:`E2EE_SETTINGS` enables: ephemeral events and to-device
messages in transactions (``receive_ephemeral``; Synapse sends the to-device list as
``de.sorunome.msc2409.to_device`` either way, and the legacy ``de.sorunome.msc2409.push_ephemeral``
would add every ephemeral event a second time under its unstable key), MSC3202 device lists
and key counts, MSC4190 device management."""


def loopback_listener(port: int) -> dict[str, Any]:
    """A plain HTTP client listener on the loopback interface; it also answers the OpenID
    userinfo endpoint (``openid``), with which the bridge checks a user's OpenID token."""
    return {
        "port": port,
        "bind_addresses": [LOOPBACK],
        "type": "http",
        "tls": False,
        "x_forwarded": False,
        "resources": [{"names": ["client", "openid"], "compress": False}],
    }


def log_config(filename: Path) -> dict[str, Any]:
    """Synapse's logging config: one log file, ``filename``."""
    return {
        "version": 1,
        "formatters": {
            "precise": {
                "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                "%(request)s - %(message)s"
            }
        },
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "precise",
                "filename": str(filename),
                "encoding": "utf8",
            }
        },
        "loggers": {
            "synapse": {"level": "INFO"},
            "synapse.storage.SQL": {"level": "WARNING"},
            "synapse.access": {"level": "INFO"},
            "twisted": {"level": "WARNING"},
        },
        "root": {"level": "INFO", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }


def http_json(
    method: str,
    url: str,
    body: Any = None,
    *,
    token: str | None = None,
    timeout: float = 30.0,
) -> Any:
    """Minimal blocking JSON HTTP call; raises :class:`SynapseError` with the body on errors."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        exc.close()
        raise SynapseError(f"{method} {url} -> HTTP {exc.code}: {detail}") from None
    return json.loads(raw) if raw else None


def postgres_database_config(
    host: str, port: int, user: str, dbname: str, *, cp_max: int = 10
) -> dict[str, Any]:
    """Synapse's ``database`` section for PostgreSQL (needs ``psycopg2``).  The database must
    have been created with ``ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0``."""
    return {
        "name": "psycopg2",
        "args": {
            "user": user,
            "host": host,
            "port": port,
            "dbname": dbname,
            "cp_min": 1,
            "cp_max": cp_max,
        },
    }


class SynapseServer(ManagedProcess):
    """A Synapse homeserver whose config, SQLite database, media and logs live in ``workdir``.

    :param workdir: directory for all of Synapse's files (created if missing).
    :param appservice_registration_files: registration YAML files to load
        (``app_service_config_files``); they must exist by the time :meth:`start` is called.
    :param server_name: the Matrix server name (user ids end in ``:server_name``).
    :param port: HTTP port on 127.0.0.1; free one if None.  Kept across restarts.
    :param extra_config: merged (shallowly) over the generated ``homeserver.yaml``.
    :param startup_timeout: seconds to wait for ``/_matrix/client/versions`` to answer.
    :param database: Synapse's ``database`` section; SQLite in ``workdir`` if None.  For
        PostgreSQL see :func:`postgres_database_config`.
    """

    name = "Synapse"
    error = SynapseError
    poll_interval = 0.1

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        appservice_registration_files: Sequence[str | os.PathLike[str]] = (),
        server_name: str = "localhost",
        *,
        port: int | None = None,
        extra_config: dict[str, Any] | None = None,
        startup_timeout: float = 60.0,
        database: dict[str, Any] | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.appservice_registration_files = [
            Path(p).resolve() for p in appservice_registration_files
        ]
        self.server_name = server_name
        self.port = port or free_port()
        self.extra_config = dict(extra_config or {})
        super().__init__(startup_timeout)
        self.database = database
        self.registration_shared_secret = secrets.token_hex(16)

    # ------------------------------------------------------------------ paths

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "homeserver.yaml"

    @property
    def log_path(self) -> Path:
        """Synapse's own log (homeserver.log); stdout/stderr go to ``console_log_path``."""
        return self.workdir / "homeserver.log"

    @property
    def console_log_path(self) -> Path:
        return self.workdir / "console.log"

    @property
    def database_path(self) -> Path:
        return self.workdir / "homeserver.db"

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    # ------------------------------------------------------------------ config

    def homeserver_config(self) -> dict[str, Any]:
        """The homeserver.yaml contents (as a dict) that :meth:`write_config` writes."""
        wd = self.workdir
        config: dict[str, Any] = {
            "server_name": self.server_name,
            "public_baseurl": self.base_url + "/",
            "pid_file": str(wd / "homeserver.pid"),
            "listeners": [loopback_listener(self.port)],
            "database": self.database
            or {"name": "sqlite3", "args": {"database": str(self.database_path)}},
            "log_config": str(wd / "log.config"),
            "media_store_path": str(wd / "media_store"),
            "signing_key_path": str(wd / "signing.key"),
            "registration_shared_secret": self.registration_shared_secret,
            "macaroon_secret_key": self._persistent_secret("macaroon"),
            "form_secret": self._persistent_secret("form"),
            "app_service_config_files": [str(p) for p in self.appservice_registration_files],
            **LOCAL_SETTINGS,
        }
        config.update(self.extra_config)
        return config

    def _persistent_secret(self, name: str) -> str:
        # Stable across restarts (a changed macaroon key would invalidate login tokens).
        path = self.workdir / f".{name}_secret"
        if not path.exists():
            path.write_text(secrets.token_hex(32))
        return path.read_text().strip()

    def write_config(self) -> Path:
        """Write homeserver.yaml, log.config and the signing key (if missing)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "media_store").mkdir(exist_ok=True)
        for reg in self.appservice_registration_files:
            if not reg.is_file():
                raise SynapseError(f"appservice registration file {reg} does not exist")
        (self.workdir / "log.config").write_text(_dump_yaml(log_config(self.log_path)))
        self.config_path.write_text(_dump_yaml(self.homeserver_config()))
        self._ensure_signing_key()
        return self.config_path

    def _ensure_signing_key(self) -> None:
        key_path = self.workdir / "signing.key"
        if key_path.exists():
            return
        # signedjson is a dependency of Synapse; no need for `--generate-keys` (slow: 1-2 s).
        from signedjson.key import generate_signing_key, write_signing_keys

        with open(key_path, "w") as fh:
            write_signing_keys(fh, [generate_signing_key("a_" + secrets.token_hex(2))])

    # ------------------------------------------------------------------ process

    def _prepare(self) -> None:
        self.write_config()

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)]

    def _popen_kwargs(self) -> dict[str, Any]:
        env = dict(os.environ)
        env.pop("PYTHONWARNINGS", None)  # pytest's warning filters must not leak into Synapse
        return {"cwd": self.workdir, "env": env}

    def _probe(self) -> str | None:
        url = self.base_url + "/_matrix/client/versions"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return None
                return f"{url} answered {resp.status}"
        except (OSError, urllib.error.URLError) as exc:
            return f"{url}: {exc}"

    def _where(self) -> str:
        return self.base_url

    def log_paths(self) -> list[Path]:
        return [self.console_log_path, self.log_path]

    def log_tail(self, lines: int = 80) -> str:
        return super().log_tail(lines)

    # ------------------------------------------------------------------ API helpers

    def api(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> Any:
        """Blocking JSON call; ``path`` starts with ``/_matrix`` or ``/_synapse``."""
        return http_json(method, self.base_url + path, body, token=token)

    def register_user(
        self,
        localpart: str,
        password: str,
        admin: bool = False,
        *,
        displayname: str | None = None,
    ) -> tuple[str, str]:
        """Register a user with the shared-secret admin API; return ``(user_id, access_token)``."""
        url = "/_synapse/admin/v1/register"
        nonce = self.api("GET", url)["nonce"]
        mac = hmac.new(self.registration_shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(nonce.encode() + b"\x00" + localpart.encode() + b"\x00")
        mac.update(password.encode() + b"\x00" + (b"admin" if admin else b"notadmin"))
        body: dict[str, Any] = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        if displayname is not None:
            body["displayname"] = displayname
        res = self.api("POST", url, body)
        return res["user_id"], res["access_token"]

    async def aregister_user(
        self, localpart: str, password: str, admin: bool = False, *, displayname: str | None = None
    ) -> tuple[str, str]:
        """:meth:`register_user` in a worker thread."""
        return await asyncio.to_thread(
            self.register_user, localpart, password, admin, displayname=displayname
        )

    def login(self, user_id: str, password: str) -> str:
        """Password login; returns a new access token."""
        res = self.api(
            "POST",
            "/_matrix/client/v3/login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user_id},
                "password": password,
            },
        )
        return str(res["access_token"])

    def whoami(self, token: str, *, as_user: str | None = None) -> dict[str, Any]:
        """``/account/whoami`` with ``token`` (optionally masquerading as ``as_user``)."""
        path = "/_matrix/client/v3/account/whoami"
        if as_user:
            path += "?user_id=" + urllib.parse.quote(as_user)
        result: dict[str, Any] = self.api("GET", path, token=token)
        return result

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<SynapseServer {self.server_name} {self.base_url} {state} workdir={self.workdir}>"


@dataclass
class AppserviceRegistration:
    """An appservice registration as written by :func:`write_appservice_registration`."""

    path: Path
    id: str
    url: str | None
    as_token: str
    hs_token: str
    sender_localpart: str
    user_regex: str
    alias_regex: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def sender_user_id(self, server_name: str = "localhost") -> str:
        return f"@{self.sender_localpart}:{server_name}"


def write_appservice_registration(
    path: str | os.PathLike[str],
    *,
    id: str = "test-bridge",  # noqa: A002 - the registration field is called id
    url: str | None = None,
    as_token: str | None = None,
    hs_token: str | None = None,
    sender_localpart: str = "bridgebot",
    user_regex: str = r"@bridge_.*:localhost",
    alias_regex: str | None = None,
    rate_limited: bool = False,
    extra: dict[str, Any] | None = None,
) -> AppserviceRegistration:
    """Write an appservice registration YAML file (for tests that don't use the bridge's own).

    ``url=None`` means Synapse pushes no transactions.  Tokens are random unless given.
    """
    as_token = as_token or secrets.token_hex(24)
    hs_token = hs_token or secrets.token_hex(24)
    namespaces: dict[str, Any] = {
        "users": [{"regex": user_regex, "exclusive": True}],
        "aliases": [],
        "rooms": [],
    }
    if alias_regex:
        namespaces["aliases"] = [{"regex": alias_regex, "exclusive": True}]
    data: dict[str, Any] = {
        "id": id,
        "url": url,
        "as_token": as_token,
        "hs_token": hs_token,
        "sender_localpart": sender_localpart,
        "namespaces": namespaces,
        "rate_limited": rate_limited,
    }
    data.update(extra or {})
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_dump_yaml(data))
    return AppserviceRegistration(
        path=out.resolve(),
        id=id,
        url=url,
        as_token=as_token,
        hs_token=hs_token,
        sender_localpart=sender_localpart,
        user_regex=user_regex,
        alias_regex=alias_regex,
        extra=dict(extra or {}),
    )


def synapse_server(
    workdir: str | os.PathLike[str],
    appservice_registration_files: Sequence[str | os.PathLike[str]] = (),
    server_name: str = "localhost",
    **kwargs: Any,
) -> SynapseServer:
    """A :class:`SynapseServer` for ``with`` (started on entry, stopped on exit; ``workdir`` is
    left for inspection) or ``async with`` (the same in a worker thread)."""
    return SynapseServer(workdir, appservice_registration_files, server_name, **kwargs)


async_synapse_server = synapse_server
