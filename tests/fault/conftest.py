"""The fault suite's own stack: like the end-to-end ``stack``, but the bridge runs on
PostgreSQL, the homeserver reaches it through a recording proxy, the simulators keep
retrying webhooks as the real platforms do and answer with injected faults only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from tests.conftest import (
    HOOK_TOKEN,
    POLL_TOKEN,
    WA_APP_SECRET,
    WA_VERIFY_TOKEN,
    Stack,
    build_stack,
)
from tests.connectors.max.simulator import MaxSimulator
from tests.connectors.telegram.simulator import RateLimits as TelegramRateLimits
from tests.connectors.vk.simulator import VKSimulator
from tests.connectors.whatsapp.simulator import RateLimits as WhatsAppRateLimits
from tests.connectors.whatsapp.simulator import WhatsAppSimulator
from tests.fault.as_proxy import AppServiceProxy
from tests.fault.channels import Conversation
from tests.fault.telegram import FaultyTelegramSimulator
from tests.infra.ports import free_port
from tests.infra.postgres import PostgresServer
from tests.infra.staff import StaffClient

DEADLINE = 600
"""Delivery deadline of every account: no fault here may make the bridge give up."""
WEBHOOK_RETRY = 0.2
"""Seconds between a platform's webhook retries (Telegram, Meta)."""
VK_TOKEN = "vk1.a.fault-community-token"
VK_GROUP = 219_000_002
VK_SECRET = "faultsecret"
WELCOME = "Welcome! Thank you for writing to ACME."
"""The automatic reply to a new conversation of the webhook account."""
MAX_SECRET = "fault-max-webhook-secret-0123456789abcdef"
CATCH_UP_INTERVAL = 10
"""Seconds between the bridge's periodic catch-ups (the least it takes): a lost event no
restart revealed is found within this (``test_catch_up.py``)."""


@dataclass
class FaultStack:
    stack: Stack
    postgres: PostgresServer
    proxy: AppServiceProxy
    db_name: str


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fault_stack(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FaultStack]:
    db_name = "fault_bridge"
    db_url = postgres.create_database(db_name)
    bridge_port = free_port()
    proxy = AppServiceProxy(bridge_port)
    await proxy.start()
    no_limits = TelegramRateLimits(enabled=False)
    telegram = FaultyTelegramSimulator(
        POLL_TOKEN, bot_username="company_bot", rate_limits=no_limits
    )
    telegram_hook = FaultyTelegramSimulator(
        HOOK_TOKEN, bot_username="company_hook_bot", rate_limits=no_limits,
        webhook_max_attempts=10**6, webhook_retry_delay=WEBHOOK_RETRY,
    )  # fmt: skip
    whatsapp = WhatsAppSimulator(
        app_secret=WA_APP_SECRET, verify_token=WA_VERIFY_TOKEN,
        rate_limits=WhatsAppRateLimits(enabled=False), webhook_retry_delay=WEBHOOK_RETRY,
    )  # fmt: skip
    options = {
        "hooks": {"delivery_deadline": DEADLINE},
        "tg": {"delivery_deadline": DEADLINE},
        "tg-hook": {"delivery_deadline": DEADLINE},
        "wa": {"delivery_deadline": DEADLINE, "reorder_window": 0.2, "pair_burst": 1000},
        "mail": {"delivery_deadline": DEADLINE},
    }
    vk = VKSimulator(VK_TOKEN, VK_GROUP, secret=VK_SECRET, confirmation_code="fault")
    vk.rate = 10**6  # as the other simulators here: faults only, no limits
    vk.callback_url = f"http://127.0.0.1:{bridge_port}/connectors/vk/callback"
    await vk.start()
    options["vk"] = {
        "type": "vk", "staff": ["@staff:localhost"], "group_id": VK_GROUP,
        "access_token": VK_TOKEN, "confirmation_code": "fault", "secret": VK_SECRET,
        "base_url": vk.base_url, "delivery_deadline": DEADLINE,
    }  # fmt: skip
    max_sim = MaxSimulator(webhook_attempts=1)  # the conversation retries, as MAX does
    max_sim.rate.enabled = False
    await max_sim.start()
    options["max"] = {
        "type": "max", "staff": ["@staff:localhost"], "token": max_sim.token,
        "mode": "webhook", "api_url": max_sim.base_url,
        "webhook_url": f"http://127.0.0.1:{bridge_port}", "webhook_secret": MAX_SECRET,
        "chat_burst": 1000, "delivery_deadline": DEADLINE,
    }  # fmt: skip
    try:
        async with build_stack(
            tmp_path_factory.mktemp("fault"), db_url=db_url, telegram=telegram,
            telegram_hook=telegram_hook, whatsapp=whatsapp, channel_options=options,
            bridge_port=bridge_port, appservice_address=proxy.url,
            features={"welcome": {"hooks": WELCOME}},
            sections={"catch_up": {"interval": CATCH_UP_INTERVAL}},
        ) as stack:  # fmt: skip
            stack.simulators["vk"] = vk
            stack.simulators["max"] = max_sim
            yield FaultStack(stack, postgres, proxy, db_name)
    finally:
        await proxy.stop()
        await vk.stop()
        await max_sim.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fault_staff(fault_stack: FaultStack) -> AsyncIterator[StaffClient]:
    st = fault_stack.stack
    client = await StaffClient.login(st.synapse.base_url, st.staff_id, st.staff_password)
    try:
        yield client
    finally:
        await client.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fault_conversations(
    fault_stack: FaultStack, fault_staff: StaffClient
) -> list[Conversation]:
    """One open conversation per connector, shared by the fault tests (opening costs the
    homeserver more than a stream): each test numbers its messages under its own tag."""
    from tests.fault.streams import open_conversations

    return await open_conversations(fault_stack, fault_staff)
