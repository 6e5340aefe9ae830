"""Loading and validating the bridge config (``example-config.yaml`` is the documented schema)."""

from __future__ import annotations

import builtins
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from string import Formatter
from typing import Any

from mautrix.util.config import BaseFileConfig, ConfigUpdateHelper
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from yarl import URL

from .catchup_config import CatchUpConfig, parse_catch_up
from .connector import ConfigError, NetworkConnector
from .connectors import connector_class
from .metrics.config import MetricsConfig, parse_metrics
from .provisioning.config import ProvisioningConfig, parse_provisioning
from .types import SAFE_LOCALPART_CHARS, AccountID

ENV_PREFIX = "BRIDGE_"
SECTIONS = (
    "homeserver", "appservice", "database", "bot", "ghosts", "portals", "permissions",
    "channels", "logging", "webhooks", "queue", "log_personal_data", "encryption",
)  # fmt: skip
LEVELS = ("none", "staff", "admin")
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LOCALPART = re.compile(r"^[a-z0-9._=/+-]+$")
_MXID = re.compile(r"^@[^:]+:.+$")


class FileConfig(BaseFileConfig):
    """The raw YAML, comments kept, so that ``-g`` can write tokens back into the file."""

    def do_update(self, helper: ConfigUpdateHelper) -> None:  # pragma: no cover - unused
        raise NotImplementedError


Grant = str | dict[str, str]
"""A permission entry: a level on every account, or channel account (or ``*``) -> level."""


@dataclass(frozen=True)
class ChannelAccountConfig:
    id: AccountID
    type: str
    staff: tuple[str, ...]
    connector: builtins.type[NetworkConnector]
    options: Any
    """The connector's own parsed config."""


@dataclass(frozen=True)
class ListenerLimits:
    """What one HTTP listener allows a client: slower or more connections are cut off."""

    header_timeout: float = 10.0
    """Seconds from a connection (or the first byte of a keep-alive request) to full headers."""
    body_timeout: float = 60.0
    """Seconds from the headers to the end of the body."""
    max_connections: int = 256
    """Connections open at once; more are answered 503 and closed at once."""


TRUST_LEVELS = (
    "blacklisted", "unverified", "cross-signed-untrusted", "cross-signed-tofu",
    "cross-signed-trusted", "verified",
)  # fmt: skip
"""Device trust levels, lowest first (mautrix's ``TrustState`` names)."""


@dataclass(frozen=True)
class EncryptionConfig:
    """End-to-bridge encryption (``encryption`` section; the example config documents it)."""

    allow: bool = False
    default: bool = False
    require: bool = False
    allow_key_sharing: bool = True
    receive: str = "unverified"
    """Lowest trust of a staff device the bridge shares the keys of its messages with."""
    send: str = "unverified"
    """Lowest trust of a staff device whose messages the bridge takes."""
    share: str = "cross-signed-tofu"
    """Lowest trust of a device whose key requests the bridge answers."""
    pickle_key: str = "business-bridge"


@dataclass(frozen=True)
class ListenerConfig:
    hostname: str
    port: int
    limits: ListenerLimits = ListenerLimits()


@dataclass(frozen=True)
class Config:
    hs_address: URL
    hs_domain: str
    hs_verify_ssl: bool
    as_address: URL
    as_hostname: str
    as_port: int
    as_id: str
    as_token: str
    hs_token: str
    max_body_size: int
    db_url: str
    db_args: dict[str, Any]
    bot_username: str
    bot_displayname: str
    command_prefix: str
    ghost_username_template: str
    ghost_displayname_template: str
    sender_prefix_template: str
    topic_template: str
    permissions: dict[str, Grant]
    """User ID, domain or ``*`` -> a level on every account, or a level per account."""
    channels: dict[AccountID, ChannelAccountConfig]
    logging: dict[str, Any] = field(default_factory=dict)
    log_personal_data: bool = False
    """Phone numbers, addresses, names and texts in full in the log (debugging only)."""
    as_limits: ListenerLimits = ListenerLimits()
    webhook_listener: ListenerConfig | None = None
    """A listener of its own for ``/connectors/``; None: on the appservice listener."""
    queue_max_attempts: int = 10
    queue_max_age: int = 900
    features: dict[str, Any] = field(default_factory=dict)
    """The ``features`` section as written: each feature module reads and checks its own."""
    encryption: EncryptionConfig = EncryptionConfig()
    hs_admin_token: str | None = None
    """A homeserver admin's access token: lets the bridge delete media through Synapse's admin
    API (data protection erasure and retention); None: it cannot."""
    metrics: MetricsConfig | None = None
    catch_up: CatchUpConfig = field(default_factory=CatchUpConfig)
    """The metrics and status listener (``metrics.listen``); None: off."""
    provisioning: ProvisioningConfig | None = None
    """The provisioning API; None: off (no shared secret)."""

    @property
    def bot_mxid(self) -> str:
        return f"@{self.bot_username}:{self.hs_domain}"

    def permission_level(self, mxid: str, account: str | None = None) -> str:
        """The level of a Matrix user on channel ``account``; without an account, their highest
        level on any account (what the bot's own features, such as ``help``, go by)."""
        return permission_level(self.permissions, mxid, account)

    def visible_accounts(self, mxid: str) -> list[AccountID]:
        """The channel accounts whose conversations ``mxid`` may see and act in."""
        return [a for a in self.channels if self.permission_level(mxid, a) != "none"]


def permission_level(permissions: Mapping[str, Grant], mxid: str, account: str | None) -> str:
    """The most specific entry decides: the user's own, else their domain's, else ``*``'s. A
    level string grants that level on every account; a mapping grants the levels of the
    accounts it names (its ``*`` key: every other account) and nothing else."""
    domain = mxid.split(":", 1)[1] if ":" in mxid else ""
    grant = next(
        (permissions[k] for k in (mxid, domain) if k and k in permissions),
        permissions.get("*", "none"),
    )
    if isinstance(grant, str):
        return grant
    if account is not None:
        return grant.get(account, grant.get("*", "none"))
    return max([*grant.values(), "none"], key=LEVELS.index)


def load_raw(path: str) -> FileConfig:
    """Read the YAML file with comments; errors name the file and the line."""
    raw = FileConfig(path, "pkg://bridge/example-config.yaml")
    try:
        raw.load()
    except FileNotFoundError as e:
        raise ConfigError("(file)", f"{path} does not exist") from e
    except YAMLError as e:
        raise ConfigError("(file)", f"{path} is not valid YAML: {e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError("(file)", f"{path} is not UTF-8 text: {e}") from e
    except RecursionError as e:
        raise ConfigError("(file)", f"{path} is not valid YAML: nested too deeply") from e
    except OSError as e:
        raise ConfigError("(file)", f"{path} cannot be read: {e}") from e
    except Exception as e:  # noqa: BLE001 - ruamel fails on some input with plain errors
        raise ConfigError("(file)", f"{path} is not valid YAML: {type(e).__name__}: {e}") from e
    if not isinstance(raw._data, Mapping):
        raise ConfigError("(file)", f"{path} must contain a mapping at the top level")
    return raw


def apply_env(data: dict[str, Any], environ: Mapping[str, str] = os.environ) -> None:
    """Override keys from ``BRIDGE_A__B=value`` variables (values parsed as YAML)."""
    yaml = YAML(typ="safe")
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        raw_path = name[len(ENV_PREFIX) :].split("__")
        if not all(raw_path) or raw_path[0].lower() not in SECTIONS:
            continue
        node = data
        path: list[str] = []
        for index, raw in enumerate(raw_path):
            part = _match_key(node, raw)
            path.append(part)
            if index == len(raw_path) - 1:
                break
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        try:
            parsed = yaml.load(value) if value else ""
        except YAMLError as e:
            raise ConfigError(".".join(path), f"environment variable {name}: {e}") from e
        node[path[-1]] = parsed


def _match_key(node: Mapping[str, Any], raw: str) -> str:
    """The existing key an environment name part stands for: compared without case, and with
    ``_`` standing for ``-`` (shells cannot export names with dashes). New keys are lower case.
    """
    for key in node:
        if key.lower() == raw.lower():
            return key
    for key in node:
        if key.lower().replace("-", "_") == raw.lower():
            return key
    return raw.lower()


def _plain(value: Any) -> Any:
    """ruamel's commented containers as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class _Reader:
    """Typed access to nested keys; every error names the dotted key."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def get(self, key: str, default: Any = ...) -> Any:
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                if default is ...:
                    raise ConfigError(key, "is missing")
                return default
            node = node[part]
        if node is None and default is ...:
            raise ConfigError(key, "is missing")
        return default if node is None else node

    def str(self, key: str, default: Any = ..., *, empty_ok: bool = False) -> builtins.str:
        value = self.get(key, default)
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, not {type(value).__name__}")
        if not value and not empty_ok:
            raise ConfigError(key, "must not be empty")
        return value

    def int(
        self,
        key: builtins.str,
        default: Any = ...,
        *,
        minimum: int = 1,
        maximum: int | None = None,
    ) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"must be an integer, not {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum else f"at least {minimum}"
            raise ConfigError(key, f"must be {bound}, not {value}")
        return value

    def bool(self, key: builtins.str, default: Any = ...) -> builtins.bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, not {value!r}")
        return value

    def url(self, key: builtins.str, schemes: tuple[builtins.str, ...] = ("http", "https")) -> URL:
        value = self.str(key)
        url = _url(value, key)
        if url.scheme not in schemes or not url.host:
            raise ConfigError(key, f"must be a {'/'.join(schemes)} URL with a host, not {value!r}")
        return url

    def mapping(self, key: builtins.str, default: Any = ...) -> Mapping[builtins.str, Any]:
        value = self.get(key, default)
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"must be a mapping, not {type(value).__name__}")
        return value


def _url(value: str, key: str) -> URL:
    try:
        return URL(value)
    except ValueError as e:
        raise ConfigError(key, f"{value!r} is not a valid URL: {e}") from e


def _limits(r: _Reader, section: str) -> ListenerLimits:
    default = ListenerLimits()

    def seconds(name: str, fallback: float) -> float:
        key = f"{section}.{name}"
        value = r.get(key, fallback)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e6:
            raise ConfigError(key, f"must be a number of seconds greater than 0, not {value!r}")
        return float(value)

    return ListenerLimits(
        header_timeout=seconds("header_timeout", default.header_timeout),
        body_timeout=seconds("body_timeout", default.body_timeout),
        max_connections=r.int(f"{section}.max_connections", default.max_connections),
    )


def _webhook_listener(r: _Reader) -> ListenerConfig | None:
    if r.get("webhooks.port", None) is None:
        return None
    return ListenerConfig(
        hostname=r.str("webhooks.hostname", "0.0.0.0"),
        port=r.int("webhooks.port", minimum=1, maximum=65535),
        limits=_limits(r, "webhooks"),
    )


def _check_template(
    key: str, template: str, names: tuple[str, ...], required: tuple[str, ...]
) -> None:
    try:
        fields = [f for _, f, spec, conv in Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise ConfigError(key, f"bad template {template!r}: {e}") from e
    for field_name in fields:
        if field_name not in names:
            allowed = ", ".join("{" + n + "}" for n in names)
            raise ConfigError(
                key, f"bad template {template!r}: unknown field {{{field_name}}} (use {allowed})"
            )
    for name in required:
        if "{" + name + "}" not in template:
            raise ConfigError(key, f"must contain {{{name}}}")


def parse(data: Mapping[str, Any]) -> Config:
    """Validate the whole config, raising ``ConfigError`` for the first bad key."""
    r = _Reader(data)
    domain = r.str("homeserver.domain")
    db_url = r.str("database.url", "sqlite:bridge.db")
    if _url(db_url, "database.url").scheme not in ("sqlite", "sqlite3", "postgres", "postgresql"):
        raise ConfigError(
            "database.url", f"must start with sqlite: or postgres://, not {db_url!r}"
        )
    bot_username = r.str("bot.username", "bridgebot")
    if not _LOCALPART.match(bot_username):
        raise ConfigError("bot.username", f"{bot_username!r} is not a valid Matrix localpart")
    ghost_user = r.str("ghosts.username_template", "bridge_{account}_{user}")
    _check_template(
        "ghosts.username_template", ghost_user, ("account", "user"), ("account", "user")
    )
    if not _LOCALPART.match(ghost_user.replace("{account}", "a").replace("{user}", "u")):
        raise ConfigError("ghosts.username_template", "has characters not allowed in a localpart")
    between = (
        ghost_user.split("{account}")[1].split("{user}")[0]
        if (ghost_user.index("{account}") < ghost_user.index("{user}"))
        else ghost_user.split("{user}")[1].split("{account}")[0]
    )
    if not set(between) - SAFE_LOCALPART_CHARS:
        # Inside the fields every character but [a-z0-9.-/+] is escaped, so a separator with
        # one other character ("_", "=") keeps the ghosts of different accounts apart.
        raise ConfigError(
            "ghosts.username_template",
            "needs a separator with a character such as '_' between {account} and {user}",
        )
    ghost_name = r.str("ghosts.displayname_template", "{name} ({channel})")
    _check_template("ghosts.displayname_template", ghost_name, ("name", "channel"), ("name",))
    prefix = r.str("portals.sender_prefix_template", "{displayname}: ", empty_ok=True)
    _check_template("portals.sender_prefix_template", prefix, ("displayname", "mxid"), ())
    topic = r.str("portals.topic_template", "{channel} conversation via {account} ({chat})")
    _check_template("portals.topic_template", topic, ("channel", "account", "chat"), ())

    channels: dict[AccountID, ChannelAccountConfig] = {}
    for account_id, section in r.mapping("channels", {}).items():
        key = f"channels.{account_id}"
        if not _ACCOUNT_ID.match(account_id):
            raise ConfigError(key, "account ids may use only letters, digits, '-' and '_'")
        if not isinstance(section, Mapping):
            raise ConfigError(key, "must be a mapping")
        ctype = r.str(f"{key}.type")
        cls = connector_class(ctype)
        if cls is None:
            raise ConfigError(f"{key}.type", f"unknown channel type {ctype!r}")
        staff = section.get("staff", [])
        if staff is None:
            staff = []
        if not isinstance(staff, list) or not all(
            isinstance(s, str) and _MXID.match(s) for s in staff
        ):
            raise ConfigError(f"{key}.staff", "must be a list of Matrix user IDs")
        options = cls.parse_config(section, key)
        channels[AccountID(account_id)] = ChannelAccountConfig(
            id=AccountID(account_id),
            type=ctype,
            staff=tuple(staff),
            connector=cls,
            options=options,
        )

    webhook_listener = _webhook_listener(r)
    if webhook_listener is not None and webhook_listener.port == r.get("appservice.port", None):
        raise ConfigError("webhooks.port", "must differ from appservice.port")
    permissions = _permissions(r.mapping("permissions"), channels)
    for account_id, channel in channels.items():
        for user in channel.staff:
            if permission_level(permissions, user, account_id) == "none":
                raise ConfigError(
                    f"channels.{account_id}.staff",
                    f"{user} has no permission on {account_id}: it would be invited into its"
                    " conversations (grant it in permissions)",
                )

    as_token = r.str("appservice.as_token", empty_ok=True)  # refused by load: run -g
    hs_token = r.str("appservice.hs_token", empty_ok=True)
    log_config = r.get("logging", {})
    return Config(
        hs_address=r.url("homeserver.address"),
        hs_domain=domain,
        hs_verify_ssl=r.bool("homeserver.verify_ssl", True),
        as_address=r.url("appservice.address"),
        as_hostname=r.str("appservice.hostname", "127.0.0.1"),
        as_port=r.int("appservice.port", minimum=1, maximum=65535),
        as_id=r.str("appservice.id"),
        as_token=as_token,
        hs_token=hs_token,
        max_body_size=r.int("appservice.max_body_size", 16 * 1024 * 1024, minimum=8 * 1024 * 1024),
        db_url=db_url,
        db_args=dict(r.mapping("database.args", {})),
        bot_username=bot_username,
        bot_displayname=r.str("bot.displayname", "Business Bridge"),
        command_prefix=r.str("bot.command_prefix", "!bridge"),
        ghost_username_template=ghost_user,
        ghost_displayname_template=ghost_name,
        sender_prefix_template=prefix,
        topic_template=topic,
        permissions=permissions,
        channels=channels,
        logging=log_config if isinstance(log_config, dict) else {},
        log_personal_data=r.bool("log_personal_data", False),
        as_limits=_limits(r, "appservice"),
        webhook_listener=webhook_listener,
        queue_max_attempts=r.int("queue.max_attempts", 10),
        queue_max_age=r.int("queue.max_age", 900, minimum=0),
        features=_plain(r.mapping("features", {})),
        hs_admin_token=_admin_token(r),
        metrics=parse_metrics(
            data, (r.get("appservice.port", None), r.get("webhooks.port", None))
        ),
        encryption=_encryption(r),
        provisioning=parse_provisioning(data),
        catch_up=parse_catch_up(data),
    )


def _encryption(r: _Reader) -> EncryptionConfig:
    r.mapping("encryption", {})
    allow = r.bool("encryption.allow", False)
    default = r.bool("encryption.default", False)
    require = r.bool("encryption.require", False)
    for key, on in (("default", default), ("require", require)):
        if on and not allow:
            raise ConfigError(f"encryption.{key}", "needs encryption.allow: true")
    levels = {}
    for name, fallback in (("receive", "unverified"), ("send", "unverified"),
                           ("share", "cross-signed-tofu")):  # fmt: skip
        key = f"encryption.verification_levels.{name}"
        level = r.str(key, fallback)
        if level not in TRUST_LEVELS:
            raise ConfigError(key, f"must be one of {', '.join(TRUST_LEVELS)}, not {level!r}")
        levels[name] = level
    return EncryptionConfig(
        allow=allow,
        default=default,
        require=require,
        allow_key_sharing=r.bool("encryption.allow_key_sharing", True),
        pickle_key=r.str("encryption.pickle_key", "business-bridge"),
        **levels,
    )


def _admin_token(r: _Reader) -> str | None:
    if r.get("homeserver.admin_token", None) is None:
        return None
    token = r.str("homeserver.admin_token")
    if is_placeholder(token):
        raise ConfigError("homeserver.admin_token", "must be an access token, or null")
    return token


def _permissions(
    section: Mapping[str, Any], channels: Mapping[AccountID, ChannelAccountConfig]
) -> dict[str, Grant]:
    permissions: dict[str, Grant] = {}
    choices = f"must be one of {', '.join(LEVELS)}"
    for who, grant in section.items():
        key = f"permissions.{who}"
        if who != "*" and who.startswith("@") and not _MXID.match(who):
            raise ConfigError(key, f"{who!r} is not a Matrix user ID")
        if isinstance(grant, Mapping):
            per_account: dict[str, str] = {}
            for account, level in grant.items():
                if account != "*" and account not in channels:
                    raise ConfigError(
                        f"{key}.{account}", f"there is no channel account {account!r}"
                    )
                if level not in LEVELS:
                    raise ConfigError(f"{key}.{account}", f"{choices}, not {level!r}")
                per_account[account] = level
            permissions[who] = per_account
        elif grant in LEVELS:
            permissions[who] = grant
        else:
            raise ConfigError(
                key, f"{choices} or a mapping of channel accounts to levels, not {grant!r}"
            )
    return permissions


PLACEHOLDERS = frozenset(
    {"generate", "changeme", "change-me", "change_me", "replaceme", "replace-me", "replace_me"}
    | {"token", "secret", "todo", "xxx", "...", "null", "none"}
)
"""Token values that stand for a token still to be made (``generate`` is the example's)."""


def is_placeholder(token: str) -> bool:
    """Whether ``token`` is a placeholder: empty, a word of ``PLACEHOLDERS`` (any case), or a
    template left unfilled (``<as_token>``, ``${AS_TOKEN}``, ``{{ as_token }}``)."""
    value = token.strip().lower()
    return (
        value in PLACEHOLDERS
        or not value
        or (value[0], value[-1]) == ("<", ">")
        or (value.startswith(("${", "{{")) and value.endswith("}"))
    )


def load(
    path: str, environ: Mapping[str, str] = os.environ, *, need_tokens: bool = True
) -> Config:
    """Load, override from the environment and validate ``path``."""
    data = _plain(load_raw(path)._data)
    apply_env(data, environ)
    if not need_tokens:
        data.setdefault("appservice", {})
        for name in ("as_token", "hs_token"):
            data["appservice"].setdefault(name, "generate")
    config = parse(data)
    if need_tokens:
        for name in ("as_token", "hs_token"):
            if is_placeholder(getattr(config, name)):
                raise ConfigError(
                    f"appservice.{name}",
                    f"is a placeholder ({getattr(config, name)!r}), not a token: run the bridge "
                    "with -g to write fresh tokens and the registration first",
                )
    return config


__all__ = [
    "ChannelAccountConfig",
    "Config",
    "ConfigError",
    "ListenerConfig",
    "ListenerLimits",
    "is_placeholder",
    "load",
    "load_raw",
    "parse",
]
