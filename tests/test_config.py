"""Loading and validating the bridge config: every bad value names its dotted key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from yarl import URL

from bridge.catchup_config import CatchUpConfig
from bridge.config import ConfigError, ListenerConfig, ListenerLimits, load, parse
from bridge.connectors.telegram import TelegramConfig, TelegramConnector
from bridge.connectors.webhook import WebhookConfig, WebhookConnector
from bridge.types import AccountID

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "example-config.yaml"
AS_TOKEN = "as-token-for-tests"
HS_TOKEN = "hs-token-for-tests"
NO_ENV: dict[str, str] = {}
WEBHOOK = AccountID("support-webhook")

Mutation = Callable[[dict[str, Any]], None]


def example(mutate: Mutation | None = None) -> dict[str, Any]:
    """The example config as plain data, with tokens, changed by ``mutate``."""
    data: dict[str, Any] = YAML(typ="safe").load(EXAMPLE.read_text())
    data["appservice"]["as_token"] = AS_TOKEN
    data["appservice"]["hs_token"] = HS_TOKEN
    if mutate:
        mutate(data)
    return data


def write(path: Path, data: Any) -> Path:
    with path.open("w") as f:
        YAML().dump(data, f)
    return path


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write(tmp_path / "config.yaml", example())


def error_of(mutate: Mutation) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(example(mutate))
    return info.value


# ---------------------------------------------------------------------------- the example


def test_example_config_loads(config_path: Path) -> None:
    config = load(str(config_path), NO_ENV)
    assert config.hs_address == URL("http://127.0.0.1:8008")
    assert config.hs_domain == "example.com"
    assert config.hs_verify_ssl is True
    assert config.as_address == URL("http://127.0.0.1:29340")
    assert (config.as_hostname, config.as_port, config.as_id) == (
        "127.0.0.1", 29340, "business-bridge",
    )  # fmt: skip
    assert (config.as_token, config.hs_token) == (AS_TOKEN, HS_TOKEN)
    assert config.max_body_size == 16 * 1024 * 1024
    assert config.db_url == "sqlite:bridge.db"
    assert config.db_args == {}
    assert config.bot_mxid == "@bridgebot:example.com"
    assert config.bot_displayname == "Business Bridge"
    assert config.command_prefix == "!bridge"
    assert config.ghost_username_template == "bridge_{account}_{user}"
    assert config.permissions == {
        "*": "none", "example.com": "staff", "@admin:example.com": "admin",
    }  # fmt: skip
    assert list(config.channels) == [
        "support-webhook", "support-telegram", "support-whatsapp", "support-email",
        "support-vk",
        "support-max",
    ]  # fmt: skip
    telegram = config.channels[AccountID("support-telegram")]
    assert telegram.connector is TelegramConnector
    assert isinstance(telegram.options, TelegramConfig)
    assert telegram.options.mode == "polling" and telegram.options.webhook_url is None
    channel = config.channels[WEBHOOK]
    assert channel.type == "webhook"
    assert channel.connector is WebhookConnector
    assert channel.staff == ("@admin:example.com",)
    assert isinstance(channel.options, WebhookConfig)
    assert channel.options.secret == "change-me-to-a-long-random-string"
    assert channel.options.outbound_url == "http://127.0.0.1:8090/inbox"
    assert config.logging["root"]["level"] == "INFO"
    # The documented catch-up values are the defaults; a config without the section has them.
    assert config.catch_up == CatchUpConfig()
    assert parse(example(_delete("catch_up"))).catch_up == CatchUpConfig()
    tuned = parse(example(_set("catch_up", {"active_window": 3600, "concurrency": 2})))
    assert (tuned.catch_up.active_window, tuned.catch_up.concurrency) == (3600.0, 2)


def test_example_config_without_tokens_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(EXAMPLE.read_text())
    with pytest.raises(ConfigError) as info:
        load(str(path), NO_ENV)
    assert info.value.key == "appservice.as_token"
    assert "-g" in info.value.message
    # Without tokens required (as -g does) everything else validates.
    assert load(str(path), NO_ENV, need_tokens=False).as_token == "generate"


def test_hs_token_still_generate_is_refused(tmp_path: Path) -> None:
    data = example(lambda d: d["appservice"].__setitem__("hs_token", "generate"))
    with pytest.raises(ConfigError) as info:
        load(str(write(tmp_path / "c.yaml", data)), NO_ENV)
    assert info.value.key == "appservice.hs_token"


def test_optional_keys_have_defaults() -> None:
    def strip(d: dict[str, Any]) -> None:
        for section in ("bot", "ghosts", "portals", "database", "logging", "channels"):
            del d[section]
        for key in ("hostname", "max_body_size"):
            del d["appservice"][key]
        del d["homeserver"]["verify_ssl"]

    config = parse(example(strip))
    assert config.bot_username == "bridgebot"
    assert config.ghost_username_template == "bridge_{account}_{user}"
    assert config.sender_prefix_template == "{displayname}: "
    assert config.db_url == "sqlite:bridge.db"
    assert config.as_hostname == "127.0.0.1"
    assert config.max_body_size == 16 * 1024 * 1024
    assert config.channels == {}
    assert config.hs_verify_ssl is True


def test_personal_data_is_masked_in_the_log_unless_set(config_path: Path) -> None:
    assert parse(example()).log_personal_data is False
    assert parse(example(_delete("log_personal_data"))).log_personal_data is False
    assert parse(example(_set("log_personal_data", True))).log_personal_data is True
    assert load(str(config_path), {"BRIDGE_LOG_PERSONAL_DATA": "true"}).log_personal_data


# ---------------------------------------------------------------------------- bad values


def _set(path: str, value: Any) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node = d
        for p in parents:
            node = node[p]
        node[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node = d
        for p in parents:
            node = node[p]
        del node[last]

    return mutate


CHANNEL = "channels/support-webhook"
DELETE = object()
USERNAME = "ghosts/username_template"
DISPLAYNAME = "ghosts/displayname_template"

# (test id, path to change, new value or DELETE, the key the error must name; None: the path)
BAD_VALUES: list[tuple[str, str, Any, str | None]] = [
    ("missing homeserver.domain", "homeserver/domain", DELETE, None),
    ("empty homeserver.domain", "homeserver/domain", "", None),
    ("missing homeserver section", "homeserver", DELETE, "homeserver.domain"),
    ("homeserver.address not http", "homeserver/address", "ftp://hs", None),
    ("homeserver.address no host", "homeserver/address", "http://", None),
    ("verify_ssl not a bool", "homeserver/verify_ssl", "yes", None),
    ("port as a string", "appservice/port", "29340", None),
    ("port as a float", "appservice/port", 29340.5, None),
    ("port as a bool", "appservice/port", True, None),
    ("port zero", "appservice/port", 0, None),
    ("port too large", "appservice/port", 65536, None),
    ("port negative", "appservice/port", -1, None),
    ("missing appservice.id", "appservice/id", DELETE, None),
    ("max_body_size below 8 MiB", "appservice/max_body_size", 1024, None),
    ("database url mysql", "database/url", "mysql://u@h/db", None),
    ("database url a path", "database/url", "/var/lib/bridge.db", None),
    ("database args a list", "database/args", [1], None),
    ("bot username upper case", "bot/username", "BridgeBot", None),
    ("bot username with colon", "bot/username", "bot:x", None),
    ("permission level unknown", "permissions/example.com", "root", "permissions.example.com"),
    ("permission level a list", "permissions/*", ["admin"], None),
    ("permission bad user id", "permissions/@nodomain", "admin", None),
    ("permissions missing", "permissions", DELETE, None),
    ("permissions a list", "permissions", ["@a:b"], None),
    ("channels a list", "channels", ["x"], None),
    ("unknown channel type", f"{CHANNEL}/type", "fax", None),
    ("missing channel type", f"{CHANNEL}/type", DELETE, None),
    ("channel section a string", CHANNEL, "webhook", None),
    ("bad account id", "channels/bad.id", {"type": "webhook"}, "channels.bad.id"),
    ("staff a string", f"{CHANNEL}/staff", "@admin:example.com", None),
    ("staff with a bad id", f"{CHANNEL}/staff", ["admin"], None),
    ("staff with a number", f"{CHANNEL}/staff", [5], None),
    ("connector key invalid", f"{CHANNEL}/secret", "short", None),
    ("connector key unknown", f"{CHANNEL}/colour", "red", None),
    ("ghost template without {user}", USERNAME, "bridge_{account}", None),
    ("ghost template without {account}", USERNAME, "bridge_{user}", None),
    ("ghost template open brace", USERNAME, "bridge_{account}_{user", None),
    ("ghost template nested brace", USERNAME, "b_{account_{user}", None),
    ("ghost template stray close", USERNAME, "b}_{account}_{user}", None),
    ("ghost template unknown field", USERNAME, "{a}_{account}_{user}", None),
    ("ghost template positional", USERNAME, "{}_{account}_{user}", None),
    ("ghost template upper case", USERNAME, "Br_{account}_{user}", None),
    ("ghost template attribute", USERNAME, "b_{account}_{user.real}", None),
    ("ghost template index", USERNAME, "b_{account}_{user[x]}", None),
    ("displayname template without {name}", DISPLAYNAME, "{channel}", None),
    ("displayname template attribute", DISPLAYNAME, "{name.x}", None),
    ("topic template unknown field", "portals/topic_template", "{room}", None),
    ("prefix template broken", "portals/sender_prefix_template", "{displayname", None),
    ("database url not a URL", "database/url", "postgres://[::1/db", None),
    ("homeserver address not a URL", "homeserver/address", "http://[::1", None),
    ("log_personal_data a string", "log_personal_data", "yes", None),
    ("log_personal_data a number", "log_personal_data", 1, None),
    ("encryption a list", "encryption", ["allow"], None),
    ("encryption.allow a string", "encryption/allow", "yes", None),
    ("encryption.default without allow", "encryption/default", True, None),
    ("encryption.require without allow", "encryption/require", True, None),
    ("encryption level unknown", "encryption/verification_levels/share", "trusted", None),
    ("encryption level a number", "encryption/verification_levels/send", 1, None),
    ("encryption pickle_key empty", "encryption/pickle_key", "", None),
    ("catch_up a list", "catch_up", [1], None),
    ("catch_up window beyond the dedup retention", "catch_up/active_window", 31 * 86400, None),
    ("catch_up window a string", "catch_up/active_window", "1d", None),
    ("catch_up interval too short", "catch_up/interval", 1, None),
    ("catch_up page_size zero", "catch_up/page_size", 0, None),
    ("catch_up max_pages a fraction", "catch_up/max_pages", 1.5, None),
    ("catch_up concurrency a boolean", "catch_up/concurrency", True, None),
    ("catch_up unknown option", "catch_up/window", 60, None),
]


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [(p, v, k or p.replace("/", ".")) for _, p, v, k in BAD_VALUES],
    ids=[name for name, *_ in BAD_VALUES],
)
def test_bad_value_names_its_key(path: str, value: Any, key: str) -> None:
    error = error_of(_delete(path) if value is DELETE else _set(path, value))
    assert error.key == key
    assert f"'{key}'" in str(error)


def test_channel_type_of_the_wrong_type_names_the_channel_key() -> None:
    for value in (None, 5):
        error = error_of(_set(f"{CHANNEL}/type", value))
        assert error.key == "channels.support-webhook.type", value


def test_ghost_template_must_keep_ghosts_of_different_accounts_apart() -> None:
    # Account ids may contain "-", which escape_localpart keeps, so with "-" (or nothing)
    # between the fields account "a-b" + user "c" and account "a" + user "b-c" would both
    # become @a-b-c:...; the default "_" separator is always escaped in the fields.
    for template in ("{account}{user}", "x{account}-{user}"):
        error = error_of(_set("ghosts/username_template", template))
        assert error.key == "ghosts.username_template", template


# ---------------------------------------------------------------------------- the file


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path / "nope.yaml"), NO_ENV)
    assert info.value.key == "(file)"
    assert "nope.yaml" in info.value.message


@pytest.mark.parametrize(
    "text",
    ["homeserver: [unclosed\n", "a: b\n  c: d\n", "key: 'open\n", "\t- tab\n"],
    ids=["flow", "indent", "quote", "tab"],
)
def test_invalid_yaml(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(str(path), NO_ENV)
    assert info.value.key == "(file)"
    assert "not valid YAML" in info.value.message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n", ""])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(str(path), NO_ENV)
    assert info.value.key == "(file)"
    assert "mapping" in info.value.message


# ---------------------------------------------------------------------------- environment


def test_env_overrides_nested_keys(config_path: Path) -> None:
    env = {
        "BRIDGE_HOMESERVER__ADDRESS": "https://matrix.example.org",
        "BRIDGE_APPSERVICE__PORT": "1234",
        "BRIDGE_HOMESERVER__VERIFY_SSL": "false",
        "BRIDGE_DATABASE__URL": "postgres://bridge@db/bridge",
        "BRIDGE_CHANNELS__SUPPORT-WEBHOOK__SECRET": "a-secret-from-the-environment",
        "BRIDGE_PERMISSIONS__PARTNER.ORG": "staff",
        "OTHER_APPSERVICE__PORT": "1",
    }
    config = load(str(config_path), env)
    assert config.hs_address == URL("https://matrix.example.org")
    assert config.as_port == 1234 and isinstance(config.as_port, int)
    assert config.hs_verify_ssl is False
    assert config.db_url == "postgres://bridge@db/bridge"
    assert config.channels[WEBHOOK].options.secret == "a-secret-from-the-environment"
    assert config.permissions["partner.org"] == "staff"
    # untouched keys keep their file values
    assert config.hs_domain == "example.com"
    assert config.channels[WEBHOOK].options.title == "Webhook"


def test_env_values_are_validated_and_name_the_key(config_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(str(config_path), {"BRIDGE_APPSERVICE__PORT": "99999"})
    assert info.value.key == "appservice.port"
    with pytest.raises(ConfigError) as info:
        load(str(config_path), {"BRIDGE_APPSERVICE__PORT": "[unclosed"})
    assert info.value.key == "appservice.port"
    assert "BRIDGE_APPSERVICE__PORT" in info.value.message


def test_env_can_supply_the_tokens(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(EXAMPLE.read_text())  # tokens are "generate" in the file
    env = {"BRIDGE_APPSERVICE__AS_TOKEN": "from-env-as", "BRIDGE_APPSERVICE__HS_TOKEN": "hs"}
    config = load(str(path), env)
    assert (config.as_token, config.hs_token) == ("from-env-as", "hs")


def test_env_ignores_unrelated_and_malformed_names(config_path: Path) -> None:
    env = {
        "BRIDGE_NOSECTION__X": "1",
        "BRIDGE_APPSERVICE____PORT": "1",
        "BRIDGE_": "1",
        "BRIDGEAPPSERVICE__PORT": "1",
    }
    assert load(str(config_path), env).as_port == 29340


def test_env_reaches_accounts_whose_id_has_upper_case(tmp_path: Path) -> None:
    def rename(d: dict[str, Any]) -> None:
        d["channels"] = {"Support": d["channels"]["support-webhook"]}

    path = write(tmp_path / "config.yaml", example(rename))
    support = AccountID("Support")
    assert load(str(path), NO_ENV).channels[support].options.secret.startswith("change-me")
    config = load(str(path), {"BRIDGE_CHANNELS__SUPPORT__SECRET": "secret-from-the-environment"})
    assert config.channels[support].options.secret == "secret-from-the-environment"


# ---------------------------------------------------------------------------- permissions


def test_permission_level_precedence() -> None:
    config = parse(
        example(
            _set(
                "permissions",
                {
                    "*": "staff",
                    "example.com": "none",
                    "partner.org": "staff",
                    "@boss:example.com": "admin",
                    "@guest:partner.org": "none",
                    "@admin:example.com": "staff",  # the channels' staff to invite
                },
            )
        )
    )
    assert config.permission_level("@boss:example.com") == "admin"  # user beats domain
    assert config.permission_level("@someone:example.com") == "none"  # domain beats *
    assert config.permission_level("@worker:partner.org") == "staff"  # partner domain
    assert config.permission_level("@guest:partner.org") == "none"  # user beats partner domain
    assert config.permission_level("@x:elsewhere.net") == "staff"  # only *
    assert config.permission_level("@x:sub.example.com") == "staff"  # no suffix matching


def test_permission_level_defaults_to_none_without_star() -> None:
    config = parse(example(_set("permissions", {"example.com": "admin"})))
    assert config.permission_level("@a:example.com") == "admin"
    assert config.permission_level("@a:other.org") == "none"
    assert config.permission_level("not-an-mxid") == "none"


def test_permission_level_keeps_the_port_in_the_domain() -> None:
    permissions = {"hs.local:8448": "admin", "hs.local": "staff", "@admin:example.com": "staff"}
    config = parse(example(_set("permissions", permissions)))
    assert config.permission_level("@a:hs.local:8448") == "admin"
    assert config.permission_level("@a:hs.local") == "staff"


# ---------------------------------------------------------------------------- listeners


def test_listener_limits_default_and_webhooks_share_the_appservice_listener() -> None:
    config = parse(example())
    assert config.as_limits == ListenerLimits(10.0, 60.0, 256)
    assert config.webhook_listener is None


def test_a_separate_webhook_listener() -> None:
    def mutate(data: dict[str, Any]) -> None:
        data["webhooks"].update(hostname="0.0.0.0", port=29341, header_timeout=2)
        data["appservice"].update(body_timeout=5, max_connections=64)

    config = parse(example(mutate))
    assert config.webhook_listener == ListenerConfig("0.0.0.0", 29341, ListenerLimits(2.0, 60.0))
    assert config.as_limits == ListenerLimits(10.0, 5.0, 64)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("webhooks", "port", 29340),
        ("webhooks", "port", 70000),
        ("webhooks", "header_timeout", 0),
        ("appservice", "body_timeout", "1m"),
        ("appservice", "max_connections", 0),
        ("webhooks", "max_connections", True),
    ],
)
def test_bad_listener_keys_are_refused(section: str, key: str, value: Any) -> None:
    def mutate(data: dict[str, Any]) -> None:
        data["webhooks"]["port"] = 29341
        data[section][key] = value

    assert error_of(mutate).key == f"{section}.{key}"


def _two_accounts(d: dict[str, Any]) -> None:
    d["channels"]["partner-hook"] = {**d["channels"]["support-webhook"], "staff": []}


def test_permissions_per_account() -> None:
    def mutate(d: dict[str, Any]) -> None:
        _two_accounts(d)
        d["permissions"] = {
            "*": "none",
            "example.com": "staff",
            "@boss:example.com": "admin",
            "partner.org": {"partner-hook": "staff"},
            "@lead:partner.org": {"partner-hook": "admin", "*": "staff"},
            "@contractor:example.com": {"support-webhook": "staff"},
        }

    config = parse(example(mutate))
    hook, support = "partner-hook", "support-webhook"
    # A level string keeps its old meaning: that level on every account.
    assert config.permission_level("@anna:example.com", support) == "staff"
    assert config.permission_level("@anna:example.com", hook) == "staff"
    assert config.permission_level("@boss:example.com", hook) == "admin"
    # A mapping grants only the accounts it names; its "*" stands for every other account.
    assert config.permission_level("@worker:partner.org", hook) == "staff"
    assert config.permission_level("@worker:partner.org", support) == "none"
    assert config.permission_level("@lead:partner.org", hook) == "admin"
    assert config.permission_level("@lead:partner.org", support) == "staff"
    # The most specific entry decides as a whole: the user's own mapping, not their domain.
    assert config.permission_level("@contractor:example.com", support) == "staff"
    assert config.permission_level("@contractor:example.com", hook) == "none"
    assert config.permission_level("@x:elsewhere.net", hook) == "none"
    # Without an account: the highest level on any account (the bot's own features).
    assert config.permission_level("@worker:partner.org") == "staff"
    assert config.permission_level("@lead:partner.org") == "admin"
    assert config.permission_level("@x:elsewhere.net") == "none"
    assert config.visible_accounts("@worker:partner.org") == [hook]
    assert config.visible_accounts("@anna:example.com") == list(config.channels)
    assert config.visible_accounts("@x:elsewhere.net") == []


@pytest.mark.parametrize(
    ("grant", "key"),
    [
        ({"no-such-account": "staff"}, "permissions.partner.org.no-such-account"),
        ({"partner-hook": "root"}, "permissions.partner.org.partner-hook"),
        ({"partner-hook": ["staff"]}, "permissions.partner.org.partner-hook"),
        (["partner-hook"], "permissions.partner.org"),
        (3, "permissions.partner.org"),
    ],
)
def test_bad_per_account_permissions_name_the_key(grant: Any, key: str) -> None:
    def mutate(d: dict[str, Any]) -> None:
        _two_accounts(d)
        d["permissions"]["partner.org"] = grant

    error = error_of(mutate)
    assert error.key == key
    if "no-such-account" in key:
        assert "no channel account 'no-such-account'" in str(error)


def test_staff_to_invite_needs_permission_on_the_account() -> None:
    def mutate(d: dict[str, Any]) -> None:
        _two_accounts(d)
        d["permissions"]["partner.org"] = {"support-webhook": "staff"}
        d["channels"]["partner-hook"]["staff"] = ["@worker:partner.org"]

    error = error_of(mutate)
    assert error.key == "channels.partner-hook.staff"
    assert "@worker:partner.org has no permission on partner-hook" in str(error)
