"""The ``m.bridge`` state event: its content and state key, in the initial state of a new
portal room, and sent once to the rooms of portals made before the bridge knew it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from mautrix.errors import MForbidden
from mautrix.types import RoomID, UserID

from bridge.config import Config, parse
from bridge.core import bridgeinfo
from bridge.core.bridgeinfo import MARKER, BridgeInfoUpdater, Pass, content, state_key
from bridge.core.portals import PortalManager
from bridge.db import Portal
from bridge.events import RemoteChat, RemoteUser
from bridge.types import AccountID, RemoteChatID, RemoteUserID
from tests.test_config import example

ACCOUNT = "support-telegram"


@pytest.fixture(autouse=True)
def _no_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridgeinfo, "PACE", 0)


class _Telegram:
    channel = "telegram"
    title = "Telegram"

    def __init__(self, account_id: str, title: str) -> None:
        self.account_id = AccountID(account_id)
        self.title = title


@dataclass
class _Sender:
    created: list[dict[str, Any]] = field(default_factory=list)
    states: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    unreachable: set[str] = field(default_factory=set)

    async def create_room(self, *args: Any, **kwargs: Any) -> RoomID:
        self.created.append(kwargs)
        return RoomID(f"!new{len(self.created)}:example.com")

    async def set_state(
        self, room_id: str, event_type: str, key: str, body: dict[str, Any]
    ) -> None:
        if room_id in self.refuse:
            raise MForbidden(403, "not allowed")
        if room_id in self.unreachable:
            raise ConnectionResetError("the homeserver went away")
        self.states.append((room_id, event_type, key, body))


def _setup() -> tuple[Config, _Sender, dict[str, Any]]:
    config = parse(example())
    return config, _Sender(), {ACCOUNT: _Telegram(ACCOUNT, "Shop on Telegram")}


def test_content_names_bot_protocol_account_and_chat() -> None:
    config, _, connectors = _setup()
    body = content(config, connectors[ACCOUNT], "12345", "Jane")
    assert body == {
        "bridgebot": config.bot_mxid,
        "creator": config.bot_mxid,
        "protocol": {"id": "telegram", "displayname": "Telegram"},
        "network": {"id": ACCOUNT, "displayname": "Shop on Telegram"},
        "channel": {"id": "12345", "displayname": "Jane"},
    }


def test_state_key_is_the_bridges_and_the_accounts_and_fits() -> None:
    config = parse(example())
    keys = {state_key(config, a) for a in ("support-telegram", "support-email", "a" * 600)}
    assert len(keys) == 3
    assert all(k.startswith(f"{config.as_id}/") for k in keys)
    assert all(len(k.encode()) <= 255 for k in keys)
    # No chat id in it: a state key cannot be redacted.
    assert state_key(config, ACCOUNT) == f"{config.as_id}/{ACCOUNT}"


async def test_new_portal_room_has_both_events_in_its_initial_state(database: object) -> None:
    config, sender, connectors = _setup()
    portals = PortalManager(config, sender, connectors)  # type: ignore[arg-type]
    chat = RemoteChat(id=RemoteChatID("777"), name="Jane")
    user = RemoteUser(id=RemoteUserID("777"), displayname="Jane")
    portal = await portals.get_or_create(ACCOUNT, chat, user, UserID("@ghost:example.com"))
    state = sender.created[0]["state"]
    assert [e["type"] for e in state] == ["m.bridge", "uk.half-shot.bridge"]
    assert {e["state_key"] for e in state} == {state_key(config, ACCOUNT)}
    assert state[0]["content"] == content(config, connectors[ACCOUNT], "777", "Jane")
    assert state[0]["content"] == state[1]["content"]
    # Recorded with the portal: the start-up work has nothing to do for it.
    stored = await Portal.get(ACCOUNT, "777")
    assert stored is not None and stored.metadata[MARKER] == portal.metadata[MARKER]
    assert await BridgeInfoUpdater(config, sender, connectors).update_all() == Pass()  # type: ignore[arg-type]
    assert sender.states == []


async def test_old_portals_get_it_once_in_pages(
    database: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bridgeinfo, "PAGE", 2)
    config, sender, connectors = _setup()
    for n in range(5):
        await Portal(ACCOUNT, f"c{n}", f"!r{n}:example.com", f"Chat {n}", created_at=0).insert()
    await Portal("gone-account", "c", "!gone:example.com", created_at=0).insert()
    await Portal(ACCOUNT, "roomless", None, created_at=0).insert()
    updater = BridgeInfoUpdater(config, sender, connectors)  # type: ignore[arg-type]
    sender.refuse = {"!r3:example.com"}
    sender.unreachable = {"!r4:example.com"}

    done = await updater.update_all()
    assert (done.sent, done.refused, done.failed) == (3, 1, 1)
    assert done.first_error.startswith("!r3:example.com")
    rooms = sorted({s[0] for s in sender.states})
    assert rooms == [f"!r{n}:example.com" for n in (0, 1, 2)]
    first = next(s for s in sender.states if s[0] == "!r1:example.com")
    assert first[2] == state_key(config, ACCOUNT)
    assert first[3]["channel"] == {"id": "c1", "displayname": "Chat 1"}
    assert {s[1] for s in sender.states} == {"m.bridge", "uk.half-shot.bridge"}

    # The rooms that failed are tried again; the others are done.
    sender.states.clear()
    sender.refuse = sender.unreachable = set()
    assert (await updater.update_all()).sent == 2
    assert {s[0] for s in sender.states} == {"!r3:example.com", "!r4:example.com"}
    assert await updater.update_all() == Pass()
    portal = await Portal.get(ACCOUNT, "c3")
    assert portal is not None and MARKER in portal.metadata


async def test_run_retries_only_what_could_not_be_reached(
    database: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bridgeinfo, "RETRY_DELAY", 0)
    config, sender, connectors = _setup()
    await Portal(ACCOUNT, "a", "!refused:example.com", created_at=0).insert()
    await Portal(ACCOUNT, "b", "!down:example.com", created_at=0).insert()
    sender.refuse = {"!refused:example.com"}
    sender.unreachable = {"!down:example.com"}
    updater = BridgeInfoUpdater(config, sender, connectors)  # type: ignore[arg-type]
    passes: list[Pass] = []
    update_all = updater.update_all

    async def counted() -> Pass:
        done = await update_all()
        passes.append(done)
        if len(passes) == 2:
            sender.unreachable = set()  # the homeserver is back for the third pass
        return done

    monkeypatch.setattr(updater, "update_all", counted)
    await updater.run()
    assert [(p.sent, p.refused, p.failed) for p in passes] == [(0, 1, 1), (0, 1, 1), (1, 1, 0)]


async def test_a_renamed_channel_is_sent_again(database: object) -> None:
    config, sender, connectors = _setup()
    await Portal(ACCOUNT, "c", "!r:example.com", "Chat", created_at=0).insert()
    updater = BridgeInfoUpdater(config, sender, connectors)  # type: ignore[arg-type]
    assert (await updater.update_all()).sent == 1
    connectors[ACCOUNT].title = "Shop (new name)"
    assert (await updater.update_all()).sent == 1
    assert sender.states[-1][3]["network"]["displayname"] == "Shop (new name)"


async def test_marker_never_overwrites_a_concurrent_change(database: object) -> None:
    await Portal("a", "c", "!r:example.com", created_at=0, metadata={"x": 1}).insert()
    [(portal, raw)] = await Portal.page_by_room("", 10)
    changed = await Portal.get("a", "c")
    assert changed is not None
    changed.metadata["linked"] = True
    await changed.save()
    assert not await portal.set_metadata(raw, {**portal.metadata, MARKER: "m"})
    stored = await Portal.get("a", "c")
    assert stored is not None and stored.metadata == {"x": 1, "linked": True}
    [(portal, raw)] = await Portal.page_by_room("", 10)
    assert await portal.set_metadata(raw, {**portal.metadata, MARKER: "m"})
    stored = await Portal.get("a", "c")
    assert stored is not None and stored.metadata == {"x": 1, "linked": True, MARKER: "m"}
