"""``privacy export`` and ``privacy report`` on a fake services layer and a real database
(SQLite and PostgreSQL): the archive's JSON and HTML (hostile names and texts escaped), notes
in or out per setting, the media limit, who may ask, and the report's counts."""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field, replace
from typing import Any

from bridge.config import Config, parse
from bridge.db import (
    ConsentContact,
    ConsentEvent,
    ConsentIdentity,
    ConsentText,
    Ghost,
    InboxConversation,
    Message,
    Portal,
)
from bridge.db.message import media_metadata
from bridge.db.privacy import AuditEntry, PrivacyJob, Suppression
from bridge.features.privacy.audit import Audit
from bridge.features.privacy.config import PrivacyConfig
from bridge.features.privacy.export import Exporter, safe_filename
from bridge.features.privacy.report import Report
from bridge.seams import Timeline, TimelineEvent
from tests.db.support import database, databases
from tests.test_config import example

__all__ = ["database", "databases"]

HOOK, MAIL = "support-webhook", "support-email"
ADMIN, STAFF = "@admin:x", "@sam:x"
BOT = "@bridgebot:example.com"
GHOST = "@hook_ann:x"
ROOM = "!ann:x"
T0 = 1_780_000_000_000
HOSTILE = '<script>alert(1)</script> & "quotes"'
PDF = b"%PDF-1.4 hello"
AVATAR = "avatar-support-webhook"


def ev(n: int, sender: str, content: dict[str, Any], **kw: Any) -> TimelineEvent:
    kw.setdefault("type", "m.room.message")
    return TimelineEvent(f"$e{n}", sender, timestamp=T0 + n * 1000, content=content, **kw)


EVENTS = [
    ev(1, GHOST, {"msgtype": "m.text", "body": f"Hello {HOSTILE}"}),
    ev(2, STAFF, {"msgtype": "m.text", "body": "How can I help?"}),
    ev(3, STAFF, {"msgtype": "m.text", "body": "// watch list <b>"}),
    ev(
        4,
        GHOST,
        {
            "msgtype": "m.file",
            "body": "bill.pdf",
            "url": "mxc://x/pdf",
            "info": {"size": len(PDF)},
        },
    ),  # fmt: skip
    ev(
        5,
        STAFF,
        {
            "msgtype": "m.text",
            "body": "* How may I help?",
            "m.new_content": {"msgtype": "m.text", "body": "How may I help?"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$e2"},
        },
    ),  # fmt: skip
    ev(6, GHOST, {}, redacted=True),
    ev(7, STAFF, {"msgtype": "m.text", "body": "Refused one"}),
    ev(
        8,
        BOT,
        {
            "msgtype": "m.notice",
            "body": "⚠️ Not delivered: too long",
            "m.relates_to": {"m.in_reply_to": {"event_id": "$e7"}},
        },
    ),  # fmt: skip
    ev(9, BOT, {"msgtype": "m.notice", "body": "🤖 Automatic message (welcome): Hi"}),
    ev(
        10,
        GHOST,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$e2", "key": "👍"}},
        type="m.reaction",
    ),  # fmt: skip
    ev(11, GHOST, {"msgtype": "m.image", "body": "big.png", "url": "mxc://x/big"}),
]
MAPPED = {"$e1": "ann", "$e2": None, "$e4": "ann", "$e6": "ann", "$e9": None, "$e11": "ann"}


@dataclass
class Fake:
    files: dict[str, bytes] = field(
        default_factory=lambda: {
            "mxc://x/pdf": PDF,
            "mxc://x/big": b"x" * 5000,
            "mxc://x/a": b"PNG",
        }
    )
    levels: dict[str, str] = field(default_factory=lambda: {ADMIN: "admin"})
    posted: list[tuple[str, bytes, str, str, str]] = field(default_factory=list)
    rooms: list[tuple[str, str, list[str]]] = field(default_factory=list)

    async def timeline(self, room_id: str, *, limit: int = 5000) -> Timeline:
        return Timeline(EVENTS if room_id == ROOM else [], True)

    async def download(self, url: str, *, limit: int, file: dict[str, Any] | None = None) -> bytes:
        data = self.files[url]
        if len(data) > limit:
            raise ValueError("too large")
        return data

    async def displayname(self, room_id: str, user: str) -> str:
        return {STAFF: f"Sam {HOSTILE}", GHOST: "Ann"}.get(user, user)

    def channel_title(self, account: str) -> str:
        return "Webhook" if account == HOOK else "Email"

    def chat_for_address(self, account: str, address: str) -> str:
        raise ValueError("no address")

    def level(self, actor: str, account: str | None = None) -> str:
        return self.levels.get(f"{actor} {account}", self.levels.get(actor, "staff"))

    async def bot_room(
        self, key: str, name: str, topic: str, invite: list[str], *, space: bool = False
    ) -> str:
        self.rooms.append((key, name, invite))
        return f"!dm-{key}:x"

    async def post_file(
        self, room_id: str, data: bytes, filename: str, mimetype: str, *, txn: str
    ) -> str | None:
        self.posted.append((room_id, data, filename, mimetype, txn))
        return "$posted"


@dataclass
class Ctx:
    services: Fake
    sender: str = ADMIN
    room_id: str = "!cmd:x"
    event_id: str = "$command"
    conversation: None = None


def config() -> Config:
    return parse(example())


OPTIONS = PrivacyConfig(secret=b"s" * 32, max_export_bytes=1000)


async def seed() -> None:
    await Portal(HOOK, "ann", ROOM, name=f"Ann {HOSTILE}", created_at=T0).insert()
    await Ghost(HOOK, "ann", GHOST, displayname=f"Ann {HOSTILE}", avatar_url="mxc://x/a").insert()
    for event_id, sender in MAPPED.items():
        mxid = GHOST if sender else BOT if event_id == "$e9" else STAFF
        await Message(HOOK, "ann", f"m{event_id}", 0, event_id, ROOM, sender, mxid, T0).insert()
    contact = await ConsentContact.create(T0)
    await ConsentIdentity(HOOK, "ann", "ann", contact.id, T0).insert()
    await ConsentText.store("news", "1", f"Yes {HOSTILE}", "h1", T0)
    await ConsentEvent.append(contact.id, "news", HOOK, "confirmed", T0 + 5, "h1", {}, "web")
    assert await InboxConversation.create(HOOK, "ann", "support", T0)


async def export(fake: Fake, options: PrivacyConfig = OPTIONS, who: str = ADMIN) -> str:
    audit = Audit(fake, config(), options.secret)  # type: ignore[arg-type]
    exporter = Exporter(fake, config(), options, audit)  # type: ignore[arg-type]
    return await exporter.command(Ctx(fake, who), [f"{HOOK}:ann"])  # type: ignore[arg-type]


def archive(fake: Fake) -> tuple[dict[str, Any], str, zipfile.ZipFile]:
    ((_, data, _, _, _),) = fake.posted
    zipped = zipfile.ZipFile(io.BytesIO(data))
    document = json.loads(zipped.read("export.json"))
    return document, zipped.read("index.html").decode(), zipped


async def test_export_json(database: object) -> None:
    await seed()
    fake = Fake()
    answer = await export(fake)
    ((room, _, name, mimetype, txn),) = fake.posted
    assert fake.rooms == [(f"privacy-{ADMIN}", "Data protection", [ADMIN])]
    assert (room, mimetype, txn) == (f"!dm-privacy-{ADMIN}:x", "application/zip",
                                     "privacy-export:$command")  # fmt: skip
    assert re.fullmatch(r"privacy-export-\d{8}-\d{6}\.zip", name)
    assert answer.startswith(f"📦 Export {name} (") and room in answer
    assert "1 conversations, 7 messages, 2 files, 1 left out" in answer
    document, _, zipped = archive(fake)
    assert (document["schema"], document["schema_version"]) == ("matrix-bridge-privacy-export", 1)
    assert document["identities"] == [
        {"account": HOOK, "channel": "Webhook", "remote_user": "ann", "chat": "ann"}
    ]
    assert document["profiles"] == [
        {"account": HOOK, "remote_user": "ann", "matrix_user": GHOST,
         "display_name": f"Ann {HOSTILE}", "avatar": "mxc://x/a",
         "avatar_file": {"name": AVATAR, "path": f"media/2-{AVATAR}", "size": 3}}
    ]  # fmt: skip
    assert zipped.read(f"media/2-{AVATAR}") == b"PNG"
    ((event,),) = [document["consent"]["events"]]
    assert (event["step"], event["list"], event["text_hash"]) == ("confirmed", "news", "h1")
    assert document["consent"]["texts"] == {"h1": {"list": "news", "version": "1",
                                                   "text": f"Yes {HOSTILE}"}}  # fmt: skip
    (conversation,) = document["conversations"]
    assert conversation["inbox"]["status"] == "open" and conversation["internal_left_out"] == 2
    assert conversation["created"] == "2026-05-28T20:26:40.000+00:00"
    rows = [
        (m["event_id"], m["direction"], m["kind"], m["text"], m["delivery"]["status"])
        for m in conversation["messages"]
    ]
    assert rows == [
        ("$e1", "customer", "message", f"Hello {HOSTILE}", "received"),
        ("$e2", "staff", "message", "How may I help?", "sent"),
        ("$e4", "customer", "message", "", "received"),
        ("$e6", "customer", "message", None, "received"),
        ("$e7", "staff", "message", "Refused one", "failed"),
        ("$e9", "bridge", "message", "🤖 Automatic message (welcome): Hi", "sent"),
        ("$e11", "customer", "message", "", "received"),
    ]
    by_id = {m["event_id"]: m for m in conversation["messages"]}
    assert list(by_id) == ["$e1", "$e2", "$e4", "$e6", "$e7", "$e9", "$e11"]
    staff = by_id["$e2"]
    assert staff["staff"] == {"mxid": STAFF, "name": f"Sam {HOSTILE}"}
    assert staff["original_text"] == "How can I help?" and staff["text"] == "How may I help?"
    assert [e["event_id"] for e in staff["edits"]] == ["$e5"]
    assert staff["reactions"] == [
        {"sender": GHOST, "key": "👍", "time": "2026-05-28T20:26:50.000+00:00",
         "time_ms": T0 + 10_000}
    ]  # fmt: skip
    assert staff["delivery"] == {"status": "sent", "at": "2026-05-28T20:26:40.000+00:00",
                                 "at_ms": T0}  # fmt: skip
    assert (staff["time"], staff["time_ms"]) == ("2026-05-28T20:26:42.000+00:00", T0 + 2000)
    assert by_id["$e6"]["redacted"] and by_id["$e6"]["text"] is None
    assert by_id["$e7"]["delivery"] == {"status": "failed", "reason": "too long"}
    assert by_id["$e9"]["direction"] == "bridge" and by_id["$e9"]["staff"] is None
    assert by_id["$e1"]["sender_name"] == "Ann" and by_id["$e1"]["remote_message_id"] == "m$e1"
    # The file within the limit is in the archive; the one past it is listed as left out.
    (pdf,) = by_id["$e4"]["files"]
    assert pdf == {"name": "bill.pdf", "path": "media/1-bill.pdf", "size": len(PDF)}
    assert zipped.read("media/1-bill.pdf") == PDF
    (big,) = by_id["$e11"]["files"]
    assert big == {"name": "big.png", "path": None, "left_out": "past the export's size limit"}
    assert document["media"] == {
        "limit_bytes": 1000, "included_bytes": len(PDF) + 3,
        "left_out": [{"event_id": "$e11", "name": "big.png",
                      "reason": "past the export's size limit"}],
    }  # fmt: skip
    assert sorted(zipped.namelist()) == ["README.txt", "export.json", "index.html",
                                         "media/1-bill.pdf", f"media/2-{AVATAR}"]  # fmt: skip
    (entry,) = await AuditEntry.recent(10)
    assert (entry.actor, entry.action) == (ADMIN, "export")
    assert entry.detail["messages"] == 7 and entry.detail["media"] == 2
    assert entry.detail["bytes"] == len(fake.posted[0][1])
    assert "ann" not in (entry.subject or "") and entry.subject


async def test_html_escapes_everything(database: object) -> None:
    await seed()
    fake = Fake()
    await export(fake)
    _, page, _ = archive(fake)
    assert "<script" not in page and "watch list" not in page
    assert "Hello &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert "Sam &lt;script&gt;" in page and "Yes &lt;script&gt;" in page
    assert 'href="media/1-bill.pdf"' in page and "big.png (left out: past" in page
    assert "How may I help?" in page and "Before the edit" in page
    assert "delivery: failed" in page and "reason: too long" in page


async def test_notes_are_included_with_the_setting(database: object) -> None:
    await seed()
    fake = Fake()
    await export(fake, replace(OPTIONS, export_notes=True))
    document, page, _ = archive(fake)
    assert document["notes_included"] is True
    (conversation,) = document["conversations"]
    kinds = {m["event_id"]: (m["direction"], m["kind"]) for m in conversation["messages"]}
    assert kinds["$e3"] == ("staff", "note")
    assert kinds["$e8"] == ("bridge", "notice")
    assert conversation["internal_left_out"] == 0 and len(kinds) == 9
    assert "// watch list &lt;b&gt;" in page and "internal note" in page


async def test_refusals_post_nothing(database: object) -> None:
    await seed()
    await Portal(MAIL, "ann", "!mail:x").insert()
    await Ghost(MAIL, "ann", "@mail_ann:x").insert()
    fake = Fake(levels={ADMIN: "admin", STAFF: "staff"})
    answer = await export(fake, who=STAFF)
    assert answer.startswith("Only an admin of every channel account this person is known on")
    audit = Audit(fake, config(), OPTIONS.secret)  # type: ignore[arg-type]
    exporter = Exporter(fake, config(), OPTIONS, audit)  # type: ignore[arg-type]
    ask = exporter.command
    assert "holds nothing of 'nobody'" in await ask(Ctx(fake), ["nobody"])  # type: ignore[arg-type]
    ambiguous = await ask(Ctx(fake), ["ann"])  # type: ignore[arg-type]
    assert "known on several channel accounts" in ambiguous
    assert (await ask(Ctx(fake), [])).startswith("Usage")  # type: ignore[arg-type]
    assert fake.posted == [] and fake.rooms == [] and await AuditEntry.recent(10) == []


async def test_an_admin_of_every_account_of_the_person(database: object) -> None:
    """The person has an identity on a second account (linked as one contact): an admin of
    the first account only may not export them."""
    await seed()
    identity = await ConsentIdentity.get(HOOK, "ann")
    assert identity is not None
    await ConsentIdentity(MAIL, "ann@x.test", "ann@x.test", identity.contact, T0).insert()
    fake = Fake(levels={f"{STAFF} {HOOK}": "admin"})
    answer = await export(fake, who=STAFF)
    assert answer == (
        "Only an admin of every channel account this person is known on "
        f"({MAIL}, {HOOK}) may export their data."
    )
    assert fake.posted == [] and await AuditEntry.recent(10) == []
    fake.levels[f"{STAFF} {MAIL}"] = "admin"
    assert (await export(fake, who=STAFF)).startswith("📦 Export")
    document, _, _ = archive(fake)
    assert [(i["account"], i["remote_user"]) for i in document["identities"]] == [
        (MAIL, "ann@x.test"), (HOOK, "ann"),
    ]  # fmt: skip


def test_safe_filename() -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("a b<c>.pdf") == "a_b_c_.pdf"
    assert safe_filename("...") == "file" and len(safe_filename("x" * 300)) == 80


async def test_report(database: object) -> None:
    await seed()
    await Portal(MAIL, "bo@x.test", "!bo:x", created_at=T0 - 5000).insert()
    await Suppression.add(["k1", "k2"])
    await PrivacyJob.create("erase", ADMIN, "!r:x", {}, state="pending")
    picture = media_metadata("m.image")
    await Message(HOOK, "ann", "mpic", 0, "$pic", ROOM, "ann", GHOST, T0, picture).insert()
    fake = Fake(levels={ADMIN: "admin"})
    audit = Audit(fake, config(), OPTIONS.secret)  # type: ignore[arg-type]
    report = Report(fake, config(), audit)  # type: ignore[arg-type]
    levels = {**fake.levels}
    fake.levels = {ADMIN: "staff"}
    assert (await report.command(Ctx(fake), [])).startswith("Only admins")  # type: ignore[arg-type]
    fake.levels = levels
    text = await report.command(Ctx(fake), [])  # type: ignore[arg-type]
    assert (
        f"• {HOOK} (Webhook): 1 contacts, 1 conversations, 1 ghosts, 7 messages (1 files),"
        " oldest item 2026-05-28"
    ) in text
    assert f"• {MAIL} (Email): 0 contacts, 1 conversations, 0 ghosts, 0 messages" in text
    assert "oldest item 2026-05-28" in text.split(MAIL)[1]
    assert "Suppression list (erased people, as keyed hashes): 2 entries" in text
    assert "Unfinished privacy jobs: 1 erase pending" in text
    (entry,) = await AuditEntry.recent(10)
    assert (entry.action, entry.subject) == ("report", None)
    assert entry.detail == {"contacts": 1, "conversations": 2, "ghosts": 1, "messages": 7,
                            "media": 1, "suppressed": 2}  # fmt: skip
