"""Retention passes on a real database (both backends) with a recording stand-in for the core's
services and a clock the test sets: which rule a conversation gets (account, team, default),
old messages redacted and their mappings dropped in batches, room retention state sent once,
raw mails' ``original.eml`` redacted with their media deleted, resolved conversations closed, a
pass killed midway taken up again (counted once), and nothing touched without a rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from mautrix.util.async_db import Database

from bridge.config import Config, parse
from bridge.db import AuditEntry, InboxConversation, Message, Portal, PrivacyJob
from bridge.db.keys import digest
from bridge.features.privacy import retention as retention_module
from bridge.features.privacy.audit import Audit
from bridge.features.privacy.config import RetentionRule, parse_privacy_config
from bridge.features.privacy.module import Privacy
from bridge.features.privacy.retention import DAY_MS, RetentionRunner
from bridge.seams import Seams, Timeline, TimelineEvent
from tests.db.support import database, databases
from tests.test_config import example

__all__ = ["database", "databases"]

HOOKS, MAIL = "support-webhook", "support-email"
ADMIN, STAFF = "@root:example.com", "@sam:example.com"
NOW = 1_800_000_000_000
GHOST = "@hook_c1:example.com"


class Killed(Exception):
    """Stands for the process dying in the middle of a pass."""


@dataclass
class FakeServices:
    redactions: list[tuple[str, str]] = field(default_factory=list)
    states: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    notices: dict[str, tuple[str, str]] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)
    deleted_media: list[str] = field(default_factory=list)
    timelines: dict[str, list[TimelineEvent]] = field(default_factory=dict)
    timeline_reads: int = 0
    kill_after: int | None = None
    """Raise ``Killed`` at this redaction (counted from 1)."""

    def level(self, actor: str, account: str | None = None) -> str:
        return "admin" if actor == ADMIN else "staff"

    async def redact(self, room_id: str, event_id: str, *, reason: str) -> bool:
        if self.kill_after is not None and len(self.redactions) + 1 >= self.kill_after:
            raise Killed
        self.redactions.append((room_id, event_id))
        return True

    async def set_state(
        self, room_id: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> None:
        assert (event_type, state_key) == ("m.room.retention", "")
        self.states.append((room_id, event_type, content))

    async def notice(self, room_id: str, text: str, *, txn: str | None = None) -> str | None:
        self.notices[txn or str(len(self.notices))] = (room_id, text)
        return "$notice"

    async def ghosts_leave(self, room_id: str) -> int:
        self.left.append(room_id)
        return 1

    async def timeline(self, room_id: str, *, limit: int = 5000) -> Timeline:
        self.timeline_reads += 1
        return Timeline(self.timelines.get(room_id, []), True)

    async def delete_media(self, url: str) -> bool:
        self.deleted_media.append(url)
        return True


@dataclass
class Ctx:
    sender: str
    services: Any = None
    room_id: str = "!dm:x"
    event_id: str = "$c"
    conversation: Any = None


def config(privacy: dict[str, Any], inbox: bool = True) -> Config:
    features: dict[str, Any] = {"privacy": privacy}
    if inbox:
        features["inbox"] = {
            "teams": {"support": {"members": [STAFF]}, "sales": {"members": [STAFF]}},
            "accounts": {HOOKS: "support", MAIL: "support"},
        }

    def mutate(data: dict[str, Any]) -> None:
        data["features"] = features
        data["permissions"][ADMIN] = "admin"

    return parse(example(mutate))


def runner(cfg: Config, services: FakeServices, clock: list[int] | None = None) -> RetentionRunner:
    options = parse_privacy_config(cfg.features["privacy"], cfg)
    assert options is not None
    clock = clock or [NOW]
    audit = Audit(services, cfg, options.secret)  # type: ignore[arg-type]
    return RetentionRunner(
        services,  # type: ignore[arg-type]
        cfg,
        options.retention,
        audit,
        now=lambda: clock[0],
    )


RULES = {
    "retention": {
        "default": {"messages_days": 365},
        "accounts": {HOOKS: {"messages_days": 30, "close_resolved_days": 7}},
        "teams": {"sales": {"messages_days": 730}},
    }
}


async def message(
    account: str, chat: str, mid: str, days_old: float, part: int = 0, staff: bool = False
) -> str:
    event_id = f"${chat}-{mid}-{part}"
    await Message(
        account, chat, mid, part, event_id, f"!{chat}:x",
        None if staff else f"user-{chat}", STAFF if staff else GHOST,
        int(NOW - days_old * DAY_MS),
    ).insert()  # fmt: skip
    return event_id


async def mapped(account: str, chat: str) -> list[str]:
    rows = await Message.db.fetch(
        "SELECT event_id FROM message WHERE account=$1 AND chat_key=$2 ORDER BY event_id",
        account, digest(chat),
    )  # fmt: skip
    return [row["event_id"] for row in rows]


async def test_rule_of_a_conversation_is_its_teams_else_its_accounts(database: Database) -> None:
    cfg = config(RULES)
    run = runner(cfg, FakeServices())
    await InboxConversation.create(HOOKS, "c-sales", "sales", NOW)
    await InboxConversation.create(HOOKS, "c-support", "support", NOW)
    rule = run.rule
    assert await rule(HOOKS, digest("c-sales")) == RetentionRule(730, 7, None)
    assert await rule(HOOKS, digest("c-support")) == RetentionRule(30, 7, None)
    assert await rule(HOOKS, digest("no-inbox-row")) == RetentionRule(30, 7, None)
    assert await rule(MAIL, digest("m1")) == RetentionRule(365, None, None)
    # Without the inbox there are no teams to go by.
    off = runner(config(RULES, inbox=False), FakeServices())
    assert await off.rule(HOOKS, digest("c-sales")) == RetentionRule(30, 7, None)
    # The rooms get the retention state of their conversation's rule.
    for chat in ("c-sales", "c-support"):
        await Portal(HOOKS, chat, f"!{chat}:x").insert()
    await Portal(MAIL, "m1", "!m1:x").insert()
    await run.run_now(ADMIN)
    assert sorted((room, c["max_lifetime"] // DAY_MS) for room, _, c in run.services.states) == [
        ("!c-sales:x", 730), ("!c-support:x", 30), ("!m1:x", 365),
    ]  # fmt: skip


async def test_a_pass_redacts_old_messages_both_ways_and_keeps_new_ones(
    database: Database,
) -> None:
    services = FakeServices()
    run = runner(config(RULES), services)
    await Portal(HOOKS, "c1", "!c1:x").insert()
    old = [
        await message(HOOKS, "c1", "m1", 40),
        await message(HOOKS, "c1", "m2", 35, staff=True),
        await message(HOOKS, "c1", "m2", 35, part=1, staff=True),
    ]
    new = [await message(HOOKS, "c1", "m3", 29), await message(HOOKS, "c1", "m4", 0)]
    kept_mail = await message(MAIL, "t1", "mail1", 300)  # the default: a year

    job = await run.run_now(ADMIN)

    assert sorted(services.redactions) == sorted(("!c1:x", e) for e in old)
    assert await mapped(HOOKS, "c1") == sorted(new)
    assert await mapped(MAIL, "t1") == [kept_mail]
    assert services.states == [("!c1:x", "m.room.retention", {"max_lifetime": 30 * DAY_MS})]
    assert job.state == "done" and job.progress == {}
    assert job.result == {
        "redacted": 3, "mappings_dropped": 3, "raw_mails": 0, "media_deleted": 0,
        "closed": 0, "rooms_marked": 1, "failures": 0,
    }  # fmt: skip
    [entry] = await AuditEntry.recent(5)
    assert (entry.actor, entry.action, entry.subject) == (ADMIN, "retention run", None)
    assert entry.detail["redacted"] == 3 and entry.detail["job"] == job.id

    # A second pass: nothing left to redact, the room state is not sent again.
    again = await run.run_now(ADMIN)
    assert again.id != job.id and again.result["redacted"] == 0
    assert again.result["rooms_marked"] == 0 and len(services.states) == 1


async def test_a_killed_pass_goes_on_where_it_stopped_and_counts_once(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention_module, "BATCH", 2)
    first = FakeServices(kill_after=4)  # dies in the middle of the second batch
    cfg = config(RULES)
    await Portal(HOOKS, "c1", "!c1:x").insert()
    old = [await message(HOOKS, "c1", f"m{n}", 40 + n) for n in range(5)]
    keep = await message(HOOKS, "c1", "new", 1)

    with pytest.raises(Killed):
        await runner(cfg, first).run_now(ADMIN)
    [job] = await PrivacyJob.open("retention")
    assert job.state == "running" and job.progress["phase"] == "messages"
    assert job.progress["counts"]["redacted"] == 2  # the first batch, committed
    assert len(await mapped(HOOKS, "c1")) == 4

    # The restart: the periodic job takes the same pass up, later on the clock.
    second = FakeServices()
    await runner(cfg, second, [NOW + DAY_MS]).tick()
    done = await PrivacyJob.get(job.id)
    assert done is not None and done.state == "done"
    assert not await PrivacyJob.open("retention")
    assert await mapped(HOOKS, "c1") == [keep]
    assert done.result["redacted"] == 5 and done.result["mappings_dropped"] == 5
    assert {e for _, e in first.redactions + second.redactions} == set(old)
    # Nothing is due right after: a tick starts no second pass.
    await runner(cfg, FakeServices(), [NOW + DAY_MS]).tick()
    assert await PrivacyJob.latest("retention", "done") == done


async def test_nothing_happens_without_a_rule(database: Database) -> None:
    cfg = config({})
    services = FakeServices()
    seams = Seams(cfg, services)  # type: ignore[arg-type]
    privacy = Privacy()
    options = privacy.parse_config(cfg.features["privacy"], cfg)
    assert options is not None
    privacy.setup(seams, options)
    assert [j.name for j in seams.jobs if "retention" in j.name] == []  # no periodic pass
    await Portal(HOOKS, "c1", "!c1:x").insert()
    kept = await message(HOOKS, "c1", "m1", 10_000)
    await InboxConversation.create(HOOKS, "c1", "support", NOW - 400 * DAY_MS)
    await InboxConversation.set_status(HOOKS, "c1", "resolved", NOW - 400 * DAY_MS)
    job = await runner(cfg, services).run_now(ADMIN)
    assert set(job.result.values()) == {0}
    assert services == FakeServices()
    assert await mapped(HOOKS, "c1") == [kept]
    assert await Portal.get(HOOKS, "c1") is not None
    assert await InboxConversation.get(HOOKS, "c1") is not None


def eml_event(event_id: str, url: str) -> TimelineEvent:
    content = {
        "msgtype": "m.file", "body": "original.eml", "filename": "original.eml", "url": url,
        "info": {"mimetype": "message/rfc822"},
    }  # fmt: skip
    return TimelineEvent(event_id, GHOST, "m.room.message", 0, content, (url,))


async def test_raw_mails_are_redacted_with_their_media(database: Database) -> None:
    """A mail bridged as the email connector does: its text (part 0), an attachment (part 1)
    and ``original.eml`` (the last part)."""
    services = FakeServices()
    cfg = config({"retention": {"accounts": {MAIL: {"raw_mail_days": 30}}}})
    await Portal(MAIL, "t1", "!t1:x").insert()
    text = await message(MAIL, "t1", "old", 40)
    pdf = await message(MAIL, "t1", "old", 40, part=1)
    eml = await message(MAIL, "t1", "old", 40, part=2)
    new_text = await message(MAIL, "t1", "new", 2)
    new_eml = await message(MAIL, "t1", "new", 2, part=1)
    pdf_content = {"msgtype": "m.file", "body": "bill.pdf", "url": "mxc://x/pdf"}
    text_content = {"msgtype": "m.text", "body": "original.eml is attached"}
    services.timelines["!t1:x"] = [
        TimelineEvent(text, GHOST, "m.room.message", 0, text_content),
        TimelineEvent(pdf, GHOST, "m.room.message", 0, pdf_content, ("mxc://x/pdf",)),
        eml_event(eml, "mxc://x/eml-old"),
        TimelineEvent(new_text, GHOST, "m.room.message", 0, text_content),
        eml_event(new_eml, "mxc://x/eml-new"),
    ]
    run = runner(cfg, services)
    job = await run.run_now(ADMIN)
    assert services.redactions == [("!t1:x", eml)]
    assert services.deleted_media == ["mxc://x/eml-old"]
    assert await mapped(MAIL, "t1") == sorted([text, pdf, new_text, new_eml])
    assert job.result["raw_mails"] == 1 and job.result["media_deleted"] == 1
    # Done up to the cutoff: the next pass does not read the timeline again.
    reads = services.timeline_reads
    await run.run_now(ADMIN)
    assert services.timeline_reads == reads and len(services.redactions) == 1
    # Rules on other accounts' raw mail do nothing: only the email channel has any.
    assert services.states == []


async def test_resolved_conversations_are_closed_after_their_days(database: Database) -> None:
    services = FakeServices()
    run = runner(config(RULES), services)
    for chat, resolved_days in (("gone", 10), ("stays", 3), ("open", None)):
        await Portal(HOOKS, chat, f"!{chat}:x").insert()
        await InboxConversation.create(HOOKS, chat, "support", NOW - 20 * DAY_MS)
        if resolved_days is not None:
            at = NOW - resolved_days * DAY_MS
            await InboxConversation.set_status(HOOKS, chat, "resolved", at)
    job = await run.run_now(ADMIN)
    assert job.result["closed"] == 1
    assert [room for room, _ in services.notices.values()] == ["!gone:x"]
    assert "closed" in next(iter(services.notices.values()))[1]
    assert services.left == ["!gone:x"]
    assert await Portal.get(HOOKS, "gone") is None
    assert await InboxConversation.get(HOOKS, "gone") is None
    for chat in ("stays", "open"):
        assert await Portal.get(HOOKS, chat) is not None
        assert await InboxConversation.get(HOOKS, chat) is not None


async def test_the_command_shows_rules_and_the_last_pass(database: Database) -> None:
    services = FakeServices()
    cfg = config(RULES)
    seams = Seams(cfg, services)  # type: ignore[arg-type]
    privacy = Privacy()
    options = privacy.parse_config(cfg.features["privacy"], cfg)
    assert options is not None
    privacy.setup(seams, options)
    [job] = [j for j in seams.jobs if j.name == "privacy-retention"]
    assert job.at_start
    [command] = seams.commands

    answer = await command.run(Ctx(ADMIN), ["retention"])
    assert f"{HOOKS}: messages_days 30, close_resolved_days 7, raw_mail_days forever" in answer
    assert f"{MAIL}: messages_days 365," in answer
    assert "team sales: messages_days 730" in answer
    assert "No retention pass has run yet." in answer
    ran = await command.run(Ctx(ADMIN), ["retention", "run"])
    assert ran.startswith("Retention pass #") and "redacted 0" in ran
    assert "Last pass #" in await command.run(Ctx(ADMIN), ["retention"])
    refused = await command.run(Ctx(STAFF), ["retention", "run"])
    assert refused.startswith("Only admins")
    assert await PrivacyJob.latest("retention", "done") is not None
    assert len(await AuditEntry.recent(10)) == 1
