"""Shared fixtures: a real PostgreSQL, a real Synapse with the bridge's own registration, the
bridge as a process, a staff user and the webhook peer."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import settings

from bridge.cli import generate
from tests.connectors.telegram.simulator import TelegramSimulator
from tests.connectors.whatsapp.simulator import WhatsAppSimulator
from tests.infra.bridge_proc import BridgeProcess, write_bridge_config
from tests.infra.dovecot import DovecotServer
from tests.infra.ports import free_port
from tests.infra.postgres import PostgresServer
from tests.infra.smtp_capture import SmtpCapture
from tests.infra.staff import StaffClient
from tests.infra.synapse import E2EE_SETTINGS, SynapseServer
from tests.infra.webhook_peer import WebhookPeer

# No property test has a deadline (those that set one set None): on a loaded machine -- the
# suite runs a worker per core -- one slow example is no failure, and a deadline missed once
# and then met is reported as a flaky test.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

HEAVY_FIRST = ("tests/fault/", "tests/bench/", "tests/e2e/", "tests/test_demo.py")
"""Files that start services and bridges run first: with a worker per core taking whole
files, a long one left for the end keeps one worker busy while the others are done."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next(
            (n for n, prefix in enumerate(HEAVY_FIRST) if item.nodeid.startswith(prefix)),
            len(HEAVY_FIRST),
        )

    items.sort(key=rank)  # stable: the order within a file stays


SERVER_NAME = "localhost"
ACCOUNT = "hooks"
POLL_TOKEN = "111111:POLL-simulator-token-aaaa"
HOOK_TOKEN = "222222:HOOK-simulator-token-bbbb"
WEBHOOK_SECRET = "webhook-secret_123-for-the-tg-hook-bot"
WA_APP_SECRET = "wa-app-secret-for-tests"
WA_VERIFY_TOKEN = "wa-verify-token"
MAIL_USER = "support"
MAIL_PASSWORD = "mailbox-password"


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = PostgresServer(tmp_path_factory.mktemp("pg"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Stack:
    workdir: Path
    synapse: SynapseServer
    bridge: BridgeProcess
    peer: WebhookPeer
    config_path: Path
    registration_path: Path
    staff_id: str
    staff_password: str
    bot_id: str
    telegram: TelegramSimulator
    """The Bot API of the polling bot (account ``tg``)."""
    telegram_hook: TelegramSimulator
    """The Bot API of the webhook bot (account ``tg-hook``)."""
    whatsapp: WhatsAppSimulator
    """The Cloud API of the business number (account ``wa``)."""
    dovecot: DovecotServer
    """The IMAP server with the company mailbox ``support`` (account ``mail``)."""
    smtp: SmtpCapture
    """The SMTP server the mailbox account sends through."""
    account: str = ACCOUNT
    metrics_url: str = ""
    """The bridge's metrics listener (``/metrics``, ``/status``)."""
    simulators: dict[str, Any] = field(default_factory=dict)
    """Simulators of accounts a test added through ``channel_options``, by account, started
    and stopped by that test (the fault suite's MAX bot)."""


def backend_database(request: pytest.FixtureRequest, name: str) -> str | None:
    """The database of a stack parametrised over ``sqlite`` and ``postgres``: None (SQLite in
    the stack's work directory) or a new database on the session's PostgreSQL."""
    if request.param != "postgres":
        return None
    postgres: PostgresServer = request.getfixturevalue("postgres")
    return postgres.create_database(f"{name}_{uuid.uuid4().hex}")


@asynccontextmanager
async def build_stack(
    workdir: Path,
    *,
    db_url: str | None = None,
    telegram: TelegramSimulator | None = None,
    telegram_hook: TelegramSimulator | None = None,
    whatsapp: WhatsAppSimulator | None = None,
    synapse: SynapseServer | None = None,
    channel_options: dict[str, dict[str, Any]] | None = None,
    bridge_port: int | None = None,
    appservice_address: str | None = None,
    features: dict[str, Any] | None = None,
    encryption: dict[str, Any] | None = None,
    permissions: dict[str, Any] | None = None,
    sections: dict[str, Any] | None = None,
) -> AsyncIterator[Stack]:
    """Start everything (simulators, Dovecot, SMTP capture, Synapse, the bridge) in
    ``workdir`` and stop it all afterwards. The bridge's database is SQLite in ``workdir``
    unless ``db_url`` is given; ``channel_options`` are merged over the options of the
    named channel accounts; simulators passed in (not started yet) replace the defaults, and
    so does ``synapse`` (not started, loading ``workdir / "registration.yaml"``; the bridge
    then serves its server name);
    ``bridge_port`` is the bridge's listener (default: a free port) and
    ``appservice_address`` where Synapse pushes transactions (default: that listener);
    ``features`` is the config's ``features`` section; ``encryption`` the bridge's
    ``encryption`` section, and with it Synapse encrypts every new room and pushes to-device
    messages and device lists to the bridge (``E2EE_SETTINGS``); ``permissions`` are merged
    over the default ones (the homeserver's users staff of every account); ``sections``
    replace the bridge config's top-level sections of their names."""
    secret = secrets.token_hex(16)
    peer = WebhookPeer(secret)
    await peer.start()
    telegram = telegram or TelegramSimulator(POLL_TOKEN, bot_username="company_bot")
    telegram_hook = telegram_hook or TelegramSimulator(HOOK_TOKEN, bot_username="company_hook_bot")
    await telegram.start()
    await telegram_hook.start()
    whatsapp = whatsapp or WhatsAppSimulator(
        app_secret=WA_APP_SECRET, verify_token=WA_VERIFY_TOKEN
    )
    await whatsapp.start()
    dovecot = DovecotServer()
    dovecot.add_user(MAIL_USER, MAIL_PASSWORD)
    await dovecot.astart()
    smtp = SmtpCapture(credentials={MAIL_USER: MAIL_PASSWORD})
    await smtp.astart()
    bridge_port = bridge_port or free_port()
    metrics = f"127.0.0.1:{free_port()}"
    whatsapp.configure_webhook(f"http://127.0.0.1:{bridge_port}/connectors/wa/webhook")
    synapse = synapse or SynapseServer(
        workdir / "synapse", [workdir / "registration.yaml"], SERVER_NAME,
        extra_config=E2EE_SETTINGS if encryption else None,
    )  # fmt: skip
    server_name = synapse.server_name
    staff_id = f"@staff:{server_name}"
    config_path = workdir / "config.yaml"
    channels: dict[str, dict[str, Any]] = {
        "tg": {
            "type": "telegram", "staff": [staff_id], "token": POLL_TOKEN,
            "api_url": telegram.base_url, "poll_timeout": 2, "delivery_deadline": 120,
            "business": True,
        },
        "tg-hook": {
            "type": "telegram", "staff": [staff_id], "token": HOOK_TOKEN, "mode": "webhook",
            "api_url": telegram_hook.base_url, "webhook_url": f"http://127.0.0.1:{bridge_port}",
            "webhook_secret": WEBHOOK_SECRET, "delivery_deadline": 120,
        },
        "wa": {
            "type": "whatsapp", "staff": [staff_id],
            "phone_number_id": whatsapp.phone_number_id,
            "business_account_id": whatsapp.waba_id,
            "access_token": whatsapp.access_token, "app_secret": WA_APP_SECRET,
            "verify_token": WA_VERIFY_TOKEN, "base_url": whatsapp.base_url,
            "reorder_window": 0.5, "delivery_deadline": 120, "template_cache": 1,
        },
        "mail": {
            "type": "email", "staff": [staff_id],
            "imap": {"host": "127.0.0.1", "port": dovecot.imap_port, "security": "starttls",
                     "verify_tls": False, "user": MAIL_USER, "password": MAIL_PASSWORD},
            "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "none",
                     "user": MAIL_USER, "password": MAIL_PASSWORD},
            "from_address": "support@company.test", "from_name": "ACME Support",
            "poll_interval": 1, "delivery_deadline": 30,
        },
    }  # fmt: skip
    for name, options in (channel_options or {}).items():
        channels[name] = {**channels.get(name, {}), **options}
    hooks = channels.pop(ACCOUNT, {})  # write_bridge_config writes the webhook account
    data = write_bridge_config(
        config_path,
        hs_url=synapse.base_url,
        domain=server_name,
        db_url=db_url or f"sqlite:{workdir / 'bridge.db'}",
        staff=[staff_id],
        admins=[staff_id],
        outbound_url=peer.inbox_url,
        secret=secret,
        port=bridge_port,
        address=appservice_address,
        extra_channels=channels,
        delivery_deadline=float(hooks.get("delivery_deadline", 60)),
        features=features,
        encryption=encryption,
        permissions=permissions,
        metrics=metrics,
        sections=sections,
    )
    # ``bridge -g`` in this process: a subprocess would import every connector again (seconds
    # of CPU per stack); the command line itself is tested in tests/test_cli.py.
    await asyncio.to_thread(generate, str(config_path), str(workdir / "registration.yaml"))
    bridge = BridgeProcess(config_path, data["appservice"]["port"], workdir / "bridge.log")
    try:
        await synapse.astart()
        password = secrets.token_hex(8)
        await synapse.aregister_user("staff", password, admin=True)
        peer.bridge_url = bridge.url
        await bridge.astart()
        yield Stack(
            workdir, synapse, bridge, peer, config_path, workdir / "registration.yaml", staff_id,
            password, f"@{data['bot']['username']}:{server_name}", telegram, telegram_hook,
            whatsapp, dovecot, smtp, metrics_url=f"http://{metrics}",
        )  # fmt: skip
    finally:
        bridge.stop()
        await synapse.astop()
        await peer.stop()
        await telegram.stop()
        await telegram_hook.stop()
        await whatsapp.stop()
        await smtp.astop()
        await dovecot.astop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with build_stack(tmp_path_factory.mktemp("stack")) as st:
        yield st


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def staff(stack: Stack) -> AsyncIterator[StaffClient]:
    client = await StaffClient.login(stack.synapse.base_url, stack.staff_id, stack.staff_password)
    try:
        yield client
    finally:
        await client.close()
