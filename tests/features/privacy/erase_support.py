"""Pieces of the erasure tests: a person with a conversation, a group message and a consent
record in the database, and fake services with a room timeline that redactions change the
way Synapse does (the content goes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any, cast

from bridge.config import Config
from bridge.db import ConsentContact, ConsentEvent, ConsentIdentity, Ghost, Message, Portal
from bridge.db.keys import digest
from bridge.db.privacy import PrivacyJob
from bridge.features.privacy.audit import Audit
from bridge.features.privacy.config import PrivacyConfig
from bridge.features.privacy.erase import EraseCommand
from bridge.features.privacy.eraserun import EraseRunner
from bridge.seams import Timeline, TimelineEvent

ADMIN = "@admin:example.com"
OTHER_ADMIN = "@boss:example.com"
CLERK = "@clerk:example.com"
BOT = "@bot:example.com"
STAFF = "@staff:example.com"
GHOST = "@hooks_user-ann:example.com"
ROOM, GROUP = "!ann:example.com", "!group:example.com"
SECRET = b"s" * 32
T0 = 1_780_000_000_000


class Crash(Exception):
    """The process dies here."""


@dataclass
class FakeServices:
    rooms: dict[str, list[TimelineEvent]] = field(default_factory=dict)
    levels: dict[str, str] = field(default_factory=dict)
    redactions: list[tuple[str, str]] = field(default_factory=list)
    states: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    notices: dict[str, tuple[str, str]] = field(default_factory=dict)
    deleted_media: list[str] = field(default_factory=list)
    retired: list[tuple[str, str, list[str]]] = field(default_factory=list)
    media_deletable: bool = True
    crash_after: int | None = None
    crash_on_done: bool = False
    """Redactions before ``Crash`` is raised (a kill in the middle of a room)."""

    def level(self, actor: str, account: str | None = None) -> str:
        return self.levels.get(actor, "staff")

    def chat_for_address(self, account: str, address: str) -> str:
        raise ValueError("no addresses here")

    async def timeline(self, room_id: str, *, limit: int = 5000, state: bool = False) -> Timeline:
        events = self.rooms.get(room_id, [])
        return Timeline([e for e in events if state or e.state_key is None], True)

    async def redact(self, room_id: str, event_id: str, *, reason: str) -> bool:
        if self.crash_after is not None:
            if self.crash_after == 0:
                raise Crash
            self.crash_after -= 1
        events = self.rooms[room_id]
        for n, event in enumerate(events):
            if event.event_id == event_id:
                events[n] = replace(event, content={}, media=(), redacted=True)
        self.redactions.append((room_id, event_id))
        return True

    async def set_state(
        self, room_id: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> None:
        self.states.append((room_id, event_type, content))

    async def notice(self, room_id: str, text: str, *, txn: str | None = None) -> str | None:
        if self.crash_on_done and text.startswith("🗑 Erasure"):
            self.crash_on_done = False
            raise Crash
        self.notices.setdefault(txn or text, (room_id, text))
        return "$notice"

    async def delete_media(self, url: str) -> bool:
        if self.media_deletable:
            self.deleted_media.append(url)
        return self.media_deletable

    async def retire_ghost(self, account: str, remote_user: str, rooms: Sequence[str]) -> None:
        self.retired.append((account, remote_user, list(rooms)))
        ghost = await Ghost.get(account, remote_user)
        if ghost is not None:
            await ghost.delete()

    async def erase_conversation(self, account: str, chat: str) -> int:
        removed = 0
        for table in ("message", "portal"):
            status = await Portal.db.execute(
                f"DELETE FROM {table} WHERE account=$1 AND chat_key=$2", account, digest(chat)
            )
            removed += 1 if status else 0
        Portal.forget_cached()
        return removed


def event(
    id_: str, sender: str, body: str, media: tuple[str, ...] = (), type_: str = "m.room.message"
) -> TimelineEvent:
    return TimelineEvent(id_, sender, type_, T0, {"body": body}, media)


def state(id_: str, sender: str, type_: str, key: str, content: dict[str, Any]) -> TimelineEvent:
    return TimelineEvent(id_, sender, type_, T0, content, state_key=key)


def timelines() -> dict[str, list[TimelineEvent]]:
    return {
        ROOM: [
            state("$create", BOT, "m.room.create", "", {"creator": BOT}),
            state("$name", BOT, "m.room.name", "", {"name": "Ann Example"}),
            state("$invite", BOT, "m.room.member", GHOST, {"membership": "invite"}),
            state(
                "$join",
                GHOST,
                "m.room.member",
                GHOST,
                {
                    "membership": "join",
                    "displayname": "Ann",
                    "avatar_url": "mxc://example.com/ann",
                },
            ),  # fmt: skip
            state("$staff", STAFF, "m.room.member", STAFF, {"membership": "join"}),
            event("$new", BOT, "New conversation from Ann Example"),
            event("$a1", GHOST, "my address is Main Street 1"),
            event("$a2", GHOST, "photo.jpg", ("mxc://example.com/photo",)),
            event("$s1", STAFF, "thanks Ann", ("mxc://example.com/offer",)),
            event("$r1", STAFF, "", type_="m.reaction"),
        ],
        GROUP: [
            state("$gname", BOT, "m.room.name", "", {"name": "Group"}),
            state("$gjoin", GHOST, "m.room.member", GHOST, {"membership": "join"}),
            event("$g1", GHOST, "hello group", ("mxc://example.com/group-file",)),
            event("$g2", STAFF, "hello Ann in the group"),
        ],
    }


async def seed_person() -> int:
    """Ann on ``hooks``: her direct conversation with a room, her ghost, a message of hers in a
    group, a consent contact with an identity and a ledger event; and Bob, who stays."""
    await Portal("hooks", "ann", ROOM, name="Ann Example").insert()
    await Portal("hooks", "grp", GROUP, name="Group", is_group=True).insert()
    await Portal("hooks", "bob", "!bob:example.com", name="Bob").insert()
    await Ghost("hooks", "user-ann", GHOST, displayname="Ann Example").insert()
    await Ghost("hooks", "user-bob", "@hooks_user-bob:example.com").insert()
    for chat, mid, event_id, room, sender, mxid in (
        ("ann", "m1", "$a1", ROOM, "user-ann", GHOST),
        ("grp", "g1", "$g1", GROUP, "user-ann", GHOST),
        ("grp", "g2", "$g2", GROUP, None, STAFF),
    ):
        await Message("hooks", chat, mid, 0, event_id, room, sender, mxid, T0).insert()
    contact = await ConsentContact.create(T0)
    await ConsentIdentity("hooks", "user-ann", "ann", contact.id, T0).insert()
    await ConsentEvent.append(contact.id, "news", "hooks", "imported", T0, None, {}, "import")
    return contact.id


def config() -> Config:
    return cast(Config, SimpleNamespace(channels={"hooks": None, "tg": None}, bot_mxid=BOT))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@dataclass
class Ctx:
    sender: str
    services: Any
    room_id: str = "!admin:example.com"
    event_id: str = "$cmd"
    conversation: Any = None


def erasure(
    services: FakeServices, clock: Clock, *, staff_replies: bool = True
) -> tuple[EraseCommand, EraseRunner]:
    options = PrivacyConfig(secret=SECRET, erase_staff_replies=staff_replies, confirm_minutes=15)
    audit = Audit(cast(Any, services), config(), SECRET)
    command = EraseCommand(cast(Any, services), config(), options, audit, clock=clock)
    runner = EraseRunner(cast(Any, services), options, audit, command, BOT, clock=clock)
    command.kick = lambda: None
    return command, runner


async def job_rows() -> list[PrivacyJob]:
    rows = await PrivacyJob.db.fetch("SELECT id FROM privacy_job ORDER BY id")
    jobs = [await PrivacyJob.get(int(row["id"])) for row in rows]
    return [job for job in jobs if job is not None]
