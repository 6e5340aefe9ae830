"""``python -m bridge`` as a process: config errors, ``-g`` and ``--version``."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bridge import __version__
from bridge.config import load
from bridge.core.ghosts import GhostManager
from tests.infra.ports import free_port, port_is_open

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "example-config.yaml"
QUICK = 30.0
"""A config error must end the process long before this (nothing is started)."""


def run(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    return result, time.monotonic() - started


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.config = tmp_path / "config.yaml"
        self.registration = tmp_path / "registration.yaml"
        self.db_file = tmp_path / "bridge.db"
        self.port = free_port()

    def write(self, text: str | None = None, **changes: Any) -> None:
        """The example config (round-trip, comments kept) with our paths and ``changes``
        (``"section/key": value``; value None deletes the key)."""
        if text is not None:
            self.config.write_text(text)
            return
        yaml = YAML()
        data = yaml.load(EXAMPLE.read_text())
        data["database"]["url"] = f"sqlite:{self.db_file}"
        data["appservice"]["port"] = self.port
        data["appservice"]["address"] = f"http://127.0.0.1:{self.port}"
        for path, value in changes.items():
            *parents, last = path.split("/")
            node = data
            for p in parents:
                node = node[p]
            if value is None:
                del node[last]
            else:
                node[last] = value
        with self.config.open("w") as f:
            yaml.dump(data, f)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def assert_refused(setup: Setup, key: str, *extra: str) -> None:
    result, elapsed = run("-c", str(setup.config), *extra)
    assert result.returncode == 2, result.stderr
    assert f"'{key}'" in result.stderr
    assert str(setup.config) in result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < QUICK
    # nothing was started: no database was created, nothing listens on the port
    assert not setup.db_file.exists()
    assert not port_is_open(setup.port)


CHANNEL = "channels/support-webhook"
TOKENS = {"appservice/as_token": "as-token-0123456789", "appservice/hs_token": "hs-token-0123"}

BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("missing domain", {"homeserver/domain": None, **TOKENS}, "homeserver.domain"),
    ("port a string", {"appservice/port": "eighty", **TOKENS}, "appservice.port"),
    ("bad permission", {"permissions/example.com": "god", **TOKENS}, "permissions.example.com"),
    ("unknown channel", {f"{CHANNEL}/type": "fax", **TOKENS}, f"{CHANNEL}/type".replace("/", ".")),
    ("tokens still generate", {}, "appservice.as_token"),
    ("bad database url", {"database/url": "mysql://x/y", **TOKENS}, "database.url"),
    ("malformed database url", {"database/url": "postgres://[::1/db", **TOKENS}, "database.url"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "key"), [(c, k) for _, c, k in BAD_CONFIGS], ids=[n for n, _, _ in BAD_CONFIGS]
)
def test_bad_config_exits_2_naming_the_key(
    setup: Setup, changes: dict[str, Any], key: str
) -> None:
    setup.write(**changes)
    assert_refused(setup, key)


def test_invalid_yaml_exits_2(setup: Setup) -> None:
    setup.write("homeserver: [unclosed\n")
    assert_refused(setup, "(file)")


def test_missing_config_file_exits_2(setup: Setup) -> None:
    assert_refused(setup, "(file)")


def test_generate_refuses_a_bad_config_and_writes_nothing(setup: Setup) -> None:
    setup.write(**{"homeserver/domain": None})
    before = setup.config.read_text()
    assert_refused(setup, "homeserver.domain", "-g", "-r", str(setup.registration))
    assert not setup.registration.exists()
    assert setup.config.read_text() == before


def test_generate_with_an_unwritable_registration_path_keeps_the_config(setup: Setup) -> None:
    setup.write()
    before = setup.config.read_text()
    target = setup.dir / "missing-dir" / "registration.yaml"
    result, _ = run("-c", str(setup.config), "-g", "-r", str(target))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert str(target) in result.stderr
    # The tokens in the config must still match the registration the homeserver has.
    assert setup.config.read_text() == before


def _comments(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("#")]


def _generate(setup: Setup) -> dict[str, Any]:
    result, _ = run("-c", str(setup.config), "-g", "-r", str(setup.registration))
    assert result.returncode == 0, result.stderr
    assert str(setup.registration) in result.stdout
    registration: dict[str, Any] = YAML(typ="safe").load(setup.registration.read_text())
    return registration


def test_registration_asks_for_the_crypto_extensions_only_with_encryption(setup: Setup) -> None:
    setup.write()
    plain = _generate(setup)
    assert "org.matrix.msc3202" not in plain and "io.element.msc4190" not in plain
    setup.write(**{"encryption/allow": True})
    encrypted = _generate(setup)
    assert encrypted["org.matrix.msc3202"] is True
    assert encrypted["io.element.msc4190"] is True
    assert encrypted["receive_ephemeral"] is True  # to-device messages come with ephemeral ones


def test_generate_writes_registration_and_tokens(setup: Setup) -> None:
    setup.write()
    original = setup.config.read_text()
    registration = _generate(setup)

    as_token, hs_token = registration["as_token"], registration["hs_token"]
    assert isinstance(as_token, str) and len(as_token) >= 32
    assert isinstance(hs_token, str) and len(hs_token) >= 32
    assert as_token != hs_token and "generate" not in (as_token, hs_token)
    assert registration["id"] == "business-bridge"
    assert registration["url"] == f"http://127.0.0.1:{setup.port}"
    assert registration["sender_localpart"] == "bridgebot"
    assert registration["rate_limited"] is False
    assert stat.S_IMODE(setup.registration.stat().st_mode) == 0o600

    # The config file now holds the same tokens, and everything else (comments too) is kept.
    text = setup.config.read_text()
    assert _comments(text) == _comments(original)
    data = YAML(typ="safe").load(text)
    assert data["appservice"]["as_token"] == as_token
    assert data["appservice"]["hs_token"] == hs_token
    before = YAML(typ="safe").load(original)
    for d in (data, before):
        del d["appservice"]["as_token"], d["appservice"]["hs_token"]
    assert data == before
    config = load(str(setup.config), {})
    assert (config.as_token, config.hs_token) == (as_token, hs_token)

    # Namespaces: every ghost and the bot, exclusively; nobody else.
    users = registration["namespaces"]["users"]
    assert all(ns["exclusive"] is True for ns in users)
    regexes = [re.compile(ns["regex"]) for ns in users]

    def claimed(mxid: str) -> bool:
        return any(r.fullmatch(mxid) for r in regexes)

    def touched(mxid: str) -> bool:  # Synapse uses re.match (anchored at the start only)
        return any(r.match(mxid) for r in regexes)

    ghosts = GhostManager(config, None)  # type: ignore[arg-type]
    for account, user in [
        ("support-webhook", "customer-1"), ("support-webhook", "Jürgen Müller <j@x.de>"),
        ("support-webhook", "+49 170 1234567"), ("Other_Acc", "_"),
    ]:  # fmt: skip
        mxid = ghosts.mxid(account, user)
        assert claimed(mxid), mxid
        assert ghosts.is_ghost(mxid)
    assert claimed("@bridgebot:example.com")
    for ordinary in (
        "@alice:example.com", "@admin:example.com", "@bridgebot2:example.com",
        "@bridge:example.com", "@bridge_x_y:other.org", "@bridgebot:example.org",
        # Users of other servers whose names start like ours.
        "@bridge_x_y:example.com.attacker.tld", "@bridgebot:example.com.attacker.tld",
        "@bridge_x_y:example.com:8448", "@bridge_x:y_z:example.com",
    ):  # fmt: skip
        assert not touched(ordinary), ordinary
    aliases = registration["namespaces"]["aliases"]
    assert aliases and all(ns["exclusive"] for ns in aliases)
    alias_regexes = [re.compile(ns["regex"]) for ns in aliases]
    assert any(r.match("#bridgebot_support-webhook_c=3a1:example.com") for r in alias_regexes)
    for alias in ("#bridgebot_x_y:example.com.attacker.tld", "#bridgebot_x:y:example.com"):
        assert not any(r.match(alias) for r in alias_regexes), alias


def test_generate_twice_gives_fresh_tokens(setup: Setup) -> None:
    setup.write()
    first = _generate(setup)
    second = _generate(setup)
    assert first["as_token"] != second["as_token"]
    assert first["hs_token"] != second["hs_token"]
    data = YAML(typ="safe").load(setup.config.read_text())
    assert data["appservice"]["as_token"] == second["as_token"]
    assert data["appservice"]["hs_token"] == second["hs_token"]


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o660], ids=oct)
def test_generate_keeps_the_config_files_mode(setup: Setup, mode: int) -> None:
    """The config holds every secret: -g used to leave it 0644 (world-readable)."""
    setup.write()
    setup.config.chmod(mode)
    _generate(setup)
    assert stat.S_IMODE(setup.config.stat().st_mode) == mode
    assert setup.config.stat().st_uid == os.geteuid()
    assert [p.name for p in setup.dir.iterdir() if p.name.endswith(".tmp")] == []


def test_generate_keeps_the_config_files_owner(setup: Setup) -> None:
    """As root (a service's config often belongs to its own user) the owner stays; otherwise
    the file is ours anyway."""
    setup.write()
    owner = (4321, 4321) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
    os.chown(setup.config, *owner)
    setup.config.chmod(0o640)
    _generate(setup)
    info = setup.config.stat()
    assert (info.st_uid, info.st_gid) == owner
    assert stat.S_IMODE(info.st_mode) == 0o640


def test_generate_keeps_an_existing_registrations_mode(setup: Setup) -> None:
    """A new registration is 0600; one the admin made readable for the homeserver's group
    stays so."""
    setup.write()
    setup.config.chmod(0o600)
    _generate(setup)
    assert stat.S_IMODE(setup.registration.stat().st_mode) == 0o600
    setup.registration.chmod(0o640)
    _generate(setup)
    assert stat.S_IMODE(setup.registration.stat().st_mode) == 0o640


def test_generate_writes_through_a_symlinked_config(setup: Setup) -> None:
    setup.write()
    real = setup.dir / "real-config.yaml"
    setup.config.rename(real)
    real.chmod(0o600)
    setup.config.symlink_to(real)
    registration = _generate(setup)
    assert setup.config.is_symlink()
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    data = YAML(typ="safe").load(real.read_text())
    assert data["appservice"]["as_token"] == registration["as_token"]


def test_config_error_shows_no_password(setup: Setup) -> None:
    """A refused database URL is quoted in the error, which lands in the service's journal."""
    setup.write(**{"database/url": "mysql://bridge:Db-Passw0rd-secret@db/bridge", **TOKENS})
    result, _ = run("-c", str(setup.config))
    assert result.returncode == 2
    assert "'database.url'" in result.stderr
    assert "Db-Passw0rd-secret" not in result.stderr
    assert "mysql://bridge:[redacted]@db/bridge" in result.stderr


def test_version() -> None:
    result, _ = run("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_help_lists_the_options() -> None:
    result, _ = run("--help")
    assert result.returncode == 0
    for option in ("--config", "--generate-registration", "--registration"):
        assert option in result.stdout
