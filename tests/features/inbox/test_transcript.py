"""Transcripts: the HTML document (everything escaped, notes marked in the staff view, the
customer view only what crossed the bridge, edits, the size cap) and the ``transcript``
command over recording services and a real database on both backends (the message mapping
decides what the customer sees)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest

from bridge.config import parse
from bridge.db import InboxConversation, Message, Portal
from bridge.features.inbox.assignment import Assignment
from bridge.features.inbox.config import InboxConfig
from bridge.features.inbox.desk import Desk
from bridge.features.inbox.transcript import (
    NO_MAIL,
    OWN_ADDRESS,
    USAGE,
    Heading,
    Role,
    Transcripts,
    file_name,
    lines,
    render_html,
    render_text,
)
from bridge.seams import ConversationRef, History, HistoryEntry
from bridge.types import AccountID, RemoteChatID
from tests.db.support import database, databases
from tests.features.inbox.test_replies import team
from tests.test_config import example

__all__ = ["database", "databases"]

BOT = "@bridgebot:example.com"
ANN, GHOST = "@ann:example.com", "@bridge_c1:example.com"
ZONE = ZoneInfo("Europe/Berlin")
T0 = int(datetime(2026, 12, 1, 8, 0, tzinfo=UTC).timestamp() * 1000)
HOSTILE = '<script>alert("x")</script>&amp;\x00\ud800'


def entry(n: int, sender: str, body: str, **fields: Any) -> HistoryEntry:
    values: dict[str, Any] = {
        "event_id": f"$e{n}", "sender": sender, "sender_name": sender[1:4],
        "timestamp": T0 + n * 60_000, "msgtype": "m.text", "body": body,
    }  # fmt: skip
    return HistoryEntry(**{**values, **fields})


ENTRIES = [
    entry(1, GHOST, "Where is my parcel?", sender_name=HOSTILE),
    entry(2, BOT, "📥 New conversation for team support; assigned to ann", msgtype="m.notice"),
    entry(3, ANN, "// customer is on the blocklist, careful"),
    entry(4, ANN, "It ships tomorrow."),
    entry(5, ANN, "secret without a marker, refused by a gate"),
    entry(6, GHOST, "invoice.pdf", msgtype="m.file", filename="invoice.pdf"),
    entry(7, ANN, "It ships today.", replaces="$e4"),
    entry(8, GHOST, "Thanks! " + HOSTILE),
    entry(9, ANN, "hacked", replaces="$e8"),
    entry(10, GHOST, "Thanks a lot!", replaces="$e8"),
    entry(11, BOT, "🤖 Automatic message (welcome):\nHello", msgtype="m.notice"),
]
CROSSED: dict[str, str | None] = {"$e1": "c1", "$e4": None, "$e6": "c1", "$e8": "c1", "$e11": None}


def heading(**fields: Any) -> Heading:
    made = datetime(2026, 12, 1, 12, 0, tzinfo=ZONE)
    return Heading("Customer <b>c1</b>", ZONE, made, **fields)


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.append(tag)


def tags(document: str) -> set[str]:
    parser = Tags()
    parser.feed(document)
    return set(parser.tags)


def test_staff_view_has_everything_and_marks_notes() -> None:
    staff = lines(ENTRIES, CROSSED, BOT, ZONE, customer=False)
    assert [(line.role, line.text) for line in staff] == [
        (Role.CUSTOMER, "Where is my parcel?"),
        (Role.NOTICE, "📥 New conversation for team support; assigned to ann"),
        (Role.NOTE, "// customer is on the blocklist, careful"),
        (Role.SENT, "It ships today."),
        (Role.UNSENT, "secret without a marker, refused by a gate"),
        (Role.CUSTOMER, ""),
        (Role.CUSTOMER, "Thanks a lot!"),  # only the sender's own edit counts
        (Role.SENT, "🤖 Automatic message (welcome):\nHello"),
    ]
    assert staff[0].when == datetime(2026, 12, 1, 9, 1, tzinfo=ZONE)
    assert staff[3].edited and staff[5].filename == "invoice.pdf"
    document, left_out = render_html(heading(account="support-email", team="support"), staff)
    assert left_out == 0
    assert '<div class="msg note">' in document and "(internal note)" in document
    assert "(bridge notice)" in document and "(not sent to the customer)" in document
    assert "Account support-email · team support · times in Europe/Berlin" in document
    assert "2026-12-01 09:01 to 2026-12-01 09:11" in document


def test_customer_view_holds_only_what_crossed_the_bridge() -> None:
    seen = lines(ENTRIES, CROSSED, BOT, ZONE, customer=True)
    assert [(line.role, line.text) for line in seen] == [
        (Role.CUSTOMER, "Where is my parcel?"),
        (Role.SENT, "It ships tomorrow."),  # what the customer got, not the later edit
        (Role.CUSTOMER, ""),
        (Role.CUSTOMER, "Thanks a lot!"),
        (Role.SENT, "🤖 Automatic message (welcome):\nHello"),
    ]
    document, _ = render_html(heading(), seen)
    text = render_text(heading(), seen)
    leaks = ("blocklist", "refused by a gate", "New conversation", "support", "internal note")
    for leak in leaks:
        assert leak not in document and leak not in text
    assert 'class="msg note"' not in document and 'class="msg notice"' not in document
    assert "📎 invoice.pdf" in document and "[invoice.pdf]" in text
    # The mapping decides, not the text: an unmapped staff message without a note marker is
    # out too.
    unmarked = [entry(1, ANN, "plain text, never delivered")]
    assert lines(unmarked, {}, BOT, ZONE, customer=True) == []


def test_everything_is_escaped() -> None:
    hostile = [
        entry(1, GHOST, HOSTILE, sender_name=HOSTILE),
        entry(2, GHOST, HOSTILE, msgtype="m.file", filename=HOSTILE),
        entry(3, ANN, HOSTILE, msgtype="m.emote", sender_name="</span><iframe>"),
    ]
    staff = lines(hostile, {"$e1": "c1", "$e2": "c1"}, BOT, ZONE, customer=False)
    document, _ = render_html(heading(account="<acc>", team="<team>"), staff)
    assert tags(document) == {"html", "head", "meta", "title", "style", "body", "h1", "h2",
                              "p", "div", "span"}  # fmt: skip
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;amp;\ufffd\ufffd" in document
    assert "Transcript: Customer &lt;b&gt;c1&lt;/b&gt;" in document
    assert "* &lt;/span&gt;&lt;iframe&gt; &lt;script&gt;" in document
    document.encode()  # no lone surrogate left
    render_text(heading(), staff).encode()


def test_the_document_keeps_the_newest_messages_within_its_cap() -> None:
    many = [entry(n, GHOST, f"message {n:04d} " + "x" * 200) for n in range(1, 2001)]
    crossed: dict[str, str | None] = {e.event_id: "c1" for e in many}
    seen = lines(many, crossed, BOT, ZONE, customer=True)
    document, left_out = render_html(heading(), seen, limit=50_000)
    assert 0 < left_out < 2000 and len(document.encode()) <= 50_000
    assert "message 2000" in document and f"message {left_out:04d} " not in document
    assert f"message {left_out + 1:04d} " in document
    assert "The earliest messages of this conversation are left out." in document
    assert document.count("<h2>") >= 1
    text = render_text(heading(), seen)
    assert len(json.dumps(text)) <= 40_000 and "message 2000" in text
    assert "(Earlier messages are in the HTML version of this mail.)" in text
    whole, none_out = render_html(heading(), seen[:3])
    assert none_out == 0 and "left out" not in whole


def test_file_name() -> None:
    made = datetime(2026, 12, 1, 12, 0, tzinfo=ZONE)
    assert file_name("Anna Kunde", made) == "transcript-Anna-Kunde-2026-12-01.html"
    assert file_name("../../etc/passwd", made) == "transcript-etc-passwd-2026-12-01.html"
    assert file_name("张伟", made) == "transcript-conversation-2026-12-01.html"


# ---------------------------------------------------------------- the command

EMAIL, HOOK = AccountID("support-email"), AccountID("support-webhook")


@dataclass
class FakeServices:
    entries: list[HistoryEntry]
    files: list[tuple[str, bytes, str, str, str]] = field(default_factory=list)
    texts: list[dict[str, Any]] = field(default_factory=list)

    async def history(self, room_id: str, *, limit: int = 5000) -> History:
        assert limit == 5000
        return History(self.entries, complete=True)

    async def post_file(
        self, room_id: str, data: bytes, filename: str, mimetype: str, *, txn: str
    ) -> str | None:
        self.files.append((room_id, data, filename, mimetype, txn))
        return "$file"

    async def send_text(self, conversation: ConversationRef, text: str, **kw: Any) -> bool:
        if any(t["dedup"] == kw["dedup"] for t in self.texts):
            return False
        self.texts.append({"to": conversation, "text": text, **kw})
        return True

    def level(self, actor: str, account: str | None = None) -> str:
        return "staff"


@dataclass
class Ctx:
    services: FakeServices
    conversation: ConversationRef | None
    sender: str = ANN
    room_id: str = "!room:x"
    event_id: str = "$command"


@pytest.fixture
async def command(database: object) -> Transcripts:
    config = parse(example())
    inbox = InboxConfig(teams={"support": team()}, accounts={}, rules=())
    desk = Desk(FakeServices([]), inbox, Assignment(inbox.teams.values()), cast(Any, None))
    for account in (EMAIL, HOOK):
        await Portal(account, "c1", room(account), name="Anna Kunde").insert()
        assert await InboxConversation.create(account, "c1", "support", T0)
        for event_id, sender in CROSSED.items():
            message_id = f"{account}-{event_id}"
            await Message(
                account, "c1", message_id, 0, event_id, room(account), sender, GHOST, T0
            ).insert()
    return Transcripts(desk, config)


def room(account: str) -> str:
    return f"!{account}:x"


def ctx(account: AccountID | None, sender: str = ANN) -> Ctx:
    ref = ConversationRef(account, RemoteChatID("c1"), room(account)) if account else None
    return Ctx(FakeServices(ENTRIES), ref, sender, room(account or "dm"))


async def test_transcript_is_posted_in_the_room(command: Transcripts) -> None:
    c = ctx(HOOK)
    answer = await command.run(c, [])
    ((where, data, name, mimetype, txn),) = c.services.files
    assert re.fullmatch(r"transcript-Anna-Kunde-\d{4}-\d\d-\d\d\.html", name)
    assert answer == f"📄 Transcript posted as {name}: 8 messages."
    assert (where, mimetype, txn) == (room(HOOK), "text/html", "transcript:$command")
    document = data.decode()
    assert "blocklist" in document and "(internal note)" in document
    assert "Account support-webhook · team support · times in UTC" in document


async def test_transcript_mail_sends_the_customer_view(command: Transcripts) -> None:
    c = ctx(EMAIL)
    answer = await command.run(c, ["mail"])
    assert answer.startswith("📧 The transcript (5 messages the customer saw, no notes)")
    ((sent),) = c.services.texts
    assert sent["reason"] == "transcript" and sent["dedup"] == "transcript:$command"
    assert "It ships tomorrow." in sent["html"] and "It ships tomorrow." in sent["text"]
    for leak in ("blocklist", "refused by a gate", "New conversation"):
        assert leak not in sent["html"] and leak not in sent["text"]
    assert await command.run(c, ["MAIL"]) == "This transcript was queued already."


async def test_transcript_refusals_and_usage(command: Transcripts) -> None:
    assert await command.run(ctx(HOOK), ["mail"]) == NO_MAIL
    assert await command.run(ctx(EMAIL), ["mail", "x@example.org"]) == OWN_ADDRESS
    assert await command.run(ctx(EMAIL), ["pdf"]) == USAGE
    assert await command.run(ctx(EMAIL), ["mail", "a", "b"]) == USAGE
    assert await command.run(ctx(None), []) == "Send this in a conversation's room."
    stranger = ctx(HOOK, "@kim:example.com")
    assert await command.run(stranger, []) == "Only the members of team support may do this."
    assert stranger.services.files == []
