"""Shared pieces of the consent web tests: the pages served by aiohttp's test server on the
test's database, a fake services layer that records direct messages (or fails them), a
settable clock for the links, and a snapshot of the ledger."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from mautrix.util.async_db import Database

from bridge.db.consent import ConsentEvent
from bridge.features.consent.config import ConsentConfig, ConsentList
from bridge.features.consent.links import Links
from bridge.features.consent.mailflow import MailOptIn
from bridge.features.consent.registry import Registry
from bridge.features.consent.tokens import Signer
from bridge.features.consent.web import ConsentWeb
from bridge.features.consent.webguard import FormLimit
from bridge.seams import DirectMessage
from bridge.types import AccountID
from tests.features.consent.support import CONFIG, HOOK, MAIL, Clock
from tests.features.consent.support import Services as BaseServices

MAIL2 = AccountID("sales-email")
T0 = 1_780_000_000.0
SECRET = b"s" * 32
LINK = re.compile(r"https?://\S+/features/consent/(confirm|unsubscribe)/(\S+)")
CHANNELS = {
    MAIL: SimpleNamespace(type="email"),
    MAIL2: SimpleNamespace(type="email"),
    HOOK: SimpleNamespace(type="webhook"),
}
HTML_NEWS = ConsentList(
    "newsletter", "Yes, <send> me the \"newsletter\" & more.", "2026-01", "News <letter>",
    keywords=("NEWSLETTER", "News"), accounts=(MAIL,),
)  # fmt: skip
WEB_CONFIG = dataclasses.replace(
    CONFIG, lists={**CONFIG.lists, "newsletter": HTML_NEWS}, secret=SECRET
)


@dataclass
class Services(BaseServices):
    direct: list[tuple[str, str, DirectMessage]] = field(default_factory=list)
    fail: Exception | None = None

    async def send_direct(self, account: str, chat: str, message: DirectMessage) -> str:
        if self.fail is not None:
            raise self.fail
        self.direct.append((account, chat, message))
        return f"sent-{len(self.direct)}"

    def public_address(self, account: str) -> str | None:
        return f"{account}@example.com"

    def chat_for_address(self, account: str, address: str) -> str:
        """As the email connector answers: the address, lower-cased; no ``/`` (its thread
        chats are ``<address>/<message id>``)."""
        if "/" in address:
            raise ValueError(f"{address!r} is not an e-mail address")
        return address.strip().lower()


class LinkClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Site:
    client: TestClient[web.Request, web.Application]
    registry: Registry
    services: Services
    links: Links
    clock: LinkClock
    flow: MailOptIn

    async def post(self, path: str, data: Any = None, **kwargs: Any) -> tuple[int, str]:
        async with self.client.post(f"/features/consent{path}", data=data, **kwargs) as resp:
            return resp.status, await resp.text()

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        async with self.client.get(f"/features/consent{path}", **kwargs) as resp:
            return resp.status, await resp.text()

    def last_link(self) -> str:
        """The path (``/confirm/<token>``) of the link in the last mail sent."""
        return link_in(self.services.direct[-1][2].text)


def link_in(text: str) -> str:
    found = LINK.search(text)
    assert found is not None
    return f"/{found.group(1)}/{found.group(2)}"


async def ledger() -> list[tuple[Any, ...]]:
    rows = await ConsentEvent.db.fetch("SELECT * FROM consent_event ORDER BY id")
    return [tuple(row) for row in rows]


async def open_site(
    config: ConsentConfig = WEB_CONFIG, limit: FormLimit | None = None
) -> AsyncIterator[Site]:
    """The pages on the test's database; without ``limit`` posts are not limited (tests of
    the limits pass their own)."""
    clock = LinkClock()
    registry = Registry(config, clock=Clock())
    services = Services()
    links = Links(config, Signer(config.secret, clock))
    flow = MailOptIn(registry, services, SimpleNamespace(channels=CHANNELS), links)  # type: ignore[arg-type]
    app = web.Application()
    limit = limit or FormLimit(per_ip=10**9, overall=10**9)
    for route in ConsentWeb(flow, limit).routes():
        app.router.add_route(route.method, route.full_path, route.handler)
    async with TestClient(TestServer(app)) as client:
        yield Site(client, registry, services, links, clock, flow)


@pytest_asyncio.fixture
async def site(database: Database) -> AsyncIterator[Site]:
    async for opened in open_site():
        yield opened
