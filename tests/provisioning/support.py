"""The bridge's real listener with the provisioning API mounted, in this process: the core's
services and the inbox feature over a real database, with stand-ins only where the bridge
would reach out (a Matrix sender that answers like a homeserver, connectors that keep what
they were given, a dispatcher that keeps what was queued)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bridge.config import Config, parse
from bridge.connector import ConnectorState, StateKind, Template
from bridge.core.appservice import AppServiceListener
from bridge.core.ghosts import GhostManager
from bridge.core.notices import Notices
from bridge.core.portals import PortalManager
from bridge.core.services import Services
from bridge.db import Portal
from bridge.features.broadcast.module import BROADCAST
from bridge.features.consent.module import CONSENT
from bridge.features.inbox.module import INBOX
from bridge.features.privacy.module import PRIVACY
from bridge.provisioning import api as provisioning
from bridge.seams import Seams
from tests.core.outbound_support import RecordingConnector
from tests.infra.ports import free_port
from tests.test_config import example

SECRET = "s3cret-for-the-provisioning-api-0123456789"
PREFIX = "/_matrix/provision/v1"
ADMIN = "@admin:example.com"
ANN, BOB, SAM = "@ann:example.com", "@bob:example.com", "@sam:example.com"
OUTSIDER = "@eve:elsewhere.example"
INBOX_SECTION = {
    "teams": {"support": {"members": [ANN, BOB]}, "sales": {"members": [SAM]}},
    "accounts": {"support-webhook": "support", "support-whatsapp": "sales"},
}
CONSENT_SECTION = {
    "public_url": "https://bridge.example.com",
    "lists": {
        "newsletter": {"text": "Yes, send me the newsletter.", "version": "2026-01",
                       "title": "Newsletter"},
    }
}  # fmt: skip
_PHONE = re.compile(r"^\+?[0-9]{6,15}$")


class StubSender:
    """Answers like a homeserver that accepts everything: rooms are made, invites and
    notices go through. ``sent`` keeps the notices' texts."""

    def __init__(self) -> None:
        self.rooms = 0
        self.sent: list[tuple[str, str]] = []
        self.invites: list[tuple[str, str]] = []

    async def create_room(self, *args: Any, **kwargs: Any) -> str:
        self.rooms += 1
        return f"!room{self.rooms}:example.com"

    async def send(self, room_id: str, content: Any, **kwargs: Any) -> str:
        body = content.get("body") if isinstance(content, dict) else getattr(content, "body", "")
        self.sent.append((room_id, str(body)))
        return f"$event{len(self.sent)}"

    async def invite(self, room_id: str, user: str) -> None:
        self.invites.append((room_id, user))

    async def displayname(self, room_id: str, user: str) -> str:
        return user[1:].split(":")[0]

    async def joined_members(self, room_id: str) -> list[str]:
        return []

    async def messages(self, *args: Any, **kwargs: Any) -> tuple[list[Any], list[Any], None]:
        return [], [], None  # an empty timeline

    async def upload_to_room(self, room_id: str, data: bytes, *args: Any) -> tuple[Any, int]:
        return {"url": f"mxc://example.com/f{len(self.sent)}"}, len(data)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        async def done(*args: Any, **kwargs: Any) -> None:
            return None

        return done


class FakeConnector(RecordingConnector):
    """A channel with addresses (phone numbers) and one approved template."""

    def __init__(self, account_id: str) -> None:
        super().__init__()
        self.account_id = account_id
        self.state = ConnectorState(StateKind.CONNECTED)

    async def list_templates(self) -> list[Template]:
        return [Template("order_update", "en", "Your order {{1}} is on its way", 1)]

    async def send_template(self, chat: Any, template: Template, params: list[str]) -> Any:
        raise AssertionError("templates go through the queue, which is not run here")

    def chat_for_address(self, address: str) -> str:
        if not _PHONE.match(address):
            raise ValueError(f"{address!r} is no phone number")
        return address.lstrip("+")


@dataclass
class Queued:
    items: list[Any] = field(default_factory=list)

    def submit(self, item: Any) -> None:
        self.items.append(item)


def config(hs_address: str | None = None, **provisioning: Any) -> Config:
    def mutate(data: dict[str, Any]) -> None:
        data["provisioning"].update(shared_secret=SECRET, **provisioning)
        data["features"] = {
            "inbox": INBOX_SECTION, "consent": CONSENT_SECTION, "broadcast": {}, "privacy": {},
        }  # fmt: skip
        if hs_address is not None:
            data["homeserver"]["address"] = hs_address

    return parse(example(mutate))


@dataclass
class ApiServer:
    """The listener with the API on a free port of 127.0.0.1 (``url``: the API's base)."""

    config: Config
    services: Services
    sender: StubSender
    queued: Queued
    listener: AppServiceListener
    http: aiohttp.ClientSession
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    async def stop(self) -> None:
        if BROADCAST.engine is not None:
            await BROADCAST.engine.stop()
        await self.listener.stop()
        await self.http.close()


async def serve(cfg: Config | None = None) -> ApiServer:
    """Wire the services, the inbox and the API as ``Bridge._wire`` does, and listen."""
    cfg = cfg or config()
    sender: Any = StubSender()
    connectors: Any = {account: FakeConnector(account) for account in cfg.channels}
    portals = PortalManager(cfg, sender, connectors)
    queued = Queued()
    dispatcher: Any = queued
    services = Services(
        cfg, connectors, sender, portals, GhostManager(cfg, sender), Notices(sender), dispatcher
    )
    seams = Seams(cfg, services)
    for feature in (INBOX, CONSENT, BROADCAST, PRIVACY):
        options = feature.parse_config(cfg.features[feature.name], cfg)
        assert options is not None
        feature.setup(seams, options)
    http = aiohttp.ClientSession()
    listener = AppServiceListener(cfg.hs_token, cfg.max_body_size, lambda items: None)
    assert cfg.provisioning is not None
    api = provisioning.build(cfg, services, seams.api, lambda: http)
    listener.add_api(cfg.provisioning.prefix, api.app)
    port = free_port()
    await listener.start("127.0.0.1", port)
    return ApiServer(cfg, services, sender, queued, listener, http, port)


async def seed() -> None:
    """Portals of two accounts, with inbox conversations in both teams."""
    from bridge.db import InboxConversation

    for n, (account, team) in enumerate(
        [("support-webhook", "support")] * 3 + [("support-whatsapp", "sales")] * 2
    ):
        chat = f"c{n}"
        await Portal(account, chat, f"!c{n}:example.com", name=f"Customer {n}",
                     created_at=1000 + n).insert()  # fmt: skip
        await InboxConversation.create(account, chat, team, 1000 + n)
