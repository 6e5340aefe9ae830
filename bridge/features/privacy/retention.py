"""Retention: the rules of ``features.privacy.retention`` (see ``config.py``) enforced by a
periodic job, in the bridge's database and in Matrix.

One pass is a ``privacy_job`` of kind ``retention``, worked through in phases, its progress (the
phase, the last conversation done, the counts so far) saved after every bounded batch in the same
transaction as the batch's own database changes. A pass killed midway is taken up again at the
next start where it stopped (never a second pass beside it), and a batch repeated after a kill
repeats only idempotent Matrix calls (redactions with deterministic transaction ids, media
deletions, notices with a transaction id) and is counted once. Its cutoffs come from the time
the pass began (``plan.now``), so a resumed pass draws the same lines.

``rooms``      each portal room whose rule keeps messages N days gets the room retention state
               ``m.room.retention`` (``max_lifetime`` N days; Synapse honours it when its
               retention feature is on, for internal notes too); sent once per room and value
               (remembered in the conversation's data).
``messages``   bridged messages older than ``messages_days`` (both directions: every mapping
               row of the conversation) are redacted in Matrix and their mapping rows deleted,
               200 at a time (in no particular order: the query walks the conversation's part
               of the message key's index and stops at 200).
``raw_mail``   of email accounts: the ``original.eml`` file event of each mail older than
               ``raw_mail_days`` is found in the room's timeline (an ``m.file`` named
               ``original.eml`` among the mail's mapped parts), its media deleted through the
               homeserver's admin API (with ``homeserver.admin_token``), the event redacted and
               its mapping row dropped; the conversation remembers up to when this was done.
``close``      with the inbox on: a conversation resolved ``close_resolved_days`` ago is closed.
               Closing is not erasing: the room and its history stay for staff, a notice says
               the conversation was closed, the bridge's ghosts leave the room, and the portal
               row and the inbox row go, so the customer's next message opens a new room (and a
               new inbox conversation). The message mappings stay until ``messages_days``.

A pass's counts (``redacted``, ``mappings_dropped``, ``raw_mails``, ``media_deleted``,
``closed``, ``rooms_marked``, ``failures``: redactions or deletions the homeserver refused) are
the job's result and the detail of the audit entry ``retention run``.

``privacy retention``        the rules per account (and team) and the last pass
``privacy retention run``    a pass now (or the interrupted one taken up again)

The clock is ``now`` (milliseconds), a parameter so tests can move it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from mautrix.util.async_db import Connection

from ...config import Config
from ...db.keys import digest
from ...db.portal import Portal
from ...db.privacy import PrivacyJob
from ...db.queue import now_ms
from ...seams import CommandContext, PeriodicJob, Services
from .audit import Audit, admin_everywhere, when
from .config import RULE_KEYS, Retention, RetentionRule

log = logging.getLogger("bridge.privacy.retention")

DAY_MS = 86_400_000
BATCH = 200
"""Message mappings redacted and dropped per batch (and progress saves)."""
PAGE = 100
"""Conversations looked at per query."""
PHASES = ("rooms", "messages", "raw_mail", "close")
COUNTS = (
    "redacted", "mappings_dropped", "raw_mails", "media_deleted", "closed", "rooms_marked",
    "failures",
)  # fmt: skip
ACTOR = "retention"
"""The actor of a pass the periodic job started."""
ROOM_MARK = "privacy.room_retention"
RAW_MAIL_DONE = "privacy.raw_mail_until"
EML_FILENAME = "original.eml"
REASON = "retention"
CLOSED = (
    "This conversation was closed: it was resolved {days} days ago (retention rule). "
    "A new message of the customer opens a new room."
)
USAGE = "Usage: privacy retention [run]"

Key = tuple[str, str]
"""A conversation: account and ``chat_key`` (the digest of its chat)."""


class RetentionRunner:
    def __init__(
        self,
        services: Services,
        config: Config,
        retention: Retention,
        audit: Audit,
        *,
        now: Callable[[], int] = now_ms,
    ) -> None:
        self.services = services
        self.config = config
        self.retention = retention
        self.audit = audit
        self.now = now
        self.inbox_on = config.features.get("inbox") is not None
        self._lock = asyncio.Lock()

    def job(self) -> PeriodicJob:
        return PeriodicJob("privacy-retention", self.retention.interval, self.tick, at_start=True)

    # ------------------------------------------------------------------ running

    async def tick(self) -> None:
        """The periodic job: an interrupted pass goes on; else a pass when one is due."""
        if self._lock.locked():
            return
        async with self._lock:
            open_ = await PrivacyJob.open("retention")
            if open_:
                await self._work(open_[0])
                return
            last = await PrivacyJob.latest("retention", "done")
            if last is not None and self.now() - last.updated_at < self.retention.interval * 1000:
                return
            await self._work(await self._start(ACTOR))

    async def run_now(self, actor: str) -> PrivacyJob:
        """One pass now (the interrupted one, if any, is finished instead)."""
        async with self._lock:
            open_ = await PrivacyJob.open("retention")
            return await self._work(open_[0] if open_ else await self._start(actor))

    async def _start(self, actor: str) -> PrivacyJob:
        now = self.now()
        return await PrivacyJob.create(
            "retention", actor, None, {"now": now},
            state="running", now=now,
        )  # fmt: skip

    async def _work(self, job: PrivacyJob) -> PrivacyJob:
        job.progress.setdefault("phase", PHASES[0])
        counts = job.progress.setdefault("counts", {})
        for name in COUNTS:
            counts.setdefault(name, 0)
        started = int(job.plan["now"])
        while job.progress["phase"] in PHASES:
            phase = job.progress["phase"]
            await getattr(self, f"_{phase}")(job, started)
            following = PHASES.index(phase) + 1
            job.progress["phase"] = PHASES[following] if following < len(PHASES) else "end"
            job.progress["after"] = None
            await job.save(now=self.now())
        result = {name: int(counts[name]) for name in COUNTS}
        conn: Connection
        async with PrivacyJob.db.acquire() as conn, conn.transaction():
            job.state, job.result, job.progress = "done", result, {}
            await job.save(now=self.now())
            await self.audit.record(job.actor, "retention run", None, {"job": job.id, **result})
        log.info("Retention pass %d done: %s", job.id, result)
        return job

    async def _commit(self, job: PrivacyJob, queries: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Run ``queries`` and save the job's progress in one transaction."""
        conn: Connection
        async with PrivacyJob.db.acquire() as conn, conn.transaction():
            for query, args in queries:
                await conn.execute(query, *args)
            await job.save(now=self.now())

    def _add(self, job: PrivacyJob, name: str, count: int = 1) -> None:
        job.progress["counts"][name] += count

    # ------------------------------------------------------------------ rules

    def _any(self, name: str) -> bool:
        """Whether any rule sets ``name`` (else its phase has nothing to do)."""
        retention = self.retention
        rules = [retention.default, *retention.accounts.values(), *retention.teams.values()]
        return any(getattr(rule, name) is not None for rule in rules)

    async def rule(self, account: str, chat_key: str) -> RetentionRule:
        """The rule of a conversation: its inbox team's, else its account's, else the
        default."""
        team = None
        if self.inbox_on and self.retention.teams:
            team = await PrivacyJob.db.fetchval(
                "SELECT team FROM inbox_conversation WHERE account=$1 AND chat_key=$2",
                account, chat_key,
            )  # fmt: skip
        return self.retention.rule(account, team)

    async def _pages(self, job: PrivacyJob, query: str) -> Any:
        """The rows of ``query`` (selecting ``account, chat_key, ...`` with ``$1``/``$2`` as the
        cursor), page by page after the job's cursor; the caller moves the cursor."""
        while True:
            after = job.progress.get("after") or ["", ""]
            rows = await PrivacyJob.db.fetch(query, after[0], after[1], PAGE)
            for row in rows:
                yield row
            if len(rows) < PAGE:
                return

    async def _data(self, key: Key, name: str) -> Any:
        value = await PrivacyJob.db.fetchval(
            "SELECT value FROM conversation_data WHERE account=$1 AND chat_key=$2 AND name=$3",
            *key, name,
        )  # fmt: skip
        return None if value is None else json.loads(value)

    @staticmethod
    def _put(key: Key, name: str, value: Any) -> tuple[str, tuple[Any, ...]]:
        return (
            "INSERT INTO conversation_data (account, chat_key, name, value) "
            "VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (account, chat_key, name) DO UPDATE SET value=excluded.value",
            (*key, name, json.dumps(value)),
        )

    # ------------------------------------------------------------------ phases

    async def _rooms(self, job: PrivacyJob, started: int) -> None:
        if not self._any("messages_days"):
            return
        # The mark and the team come along (one query a page, not three a room).
        query = (
            "SELECT p.account, p.chat_key, p.room_id, d.value AS mark, i.team FROM portal p "
            "LEFT JOIN conversation_data d ON d.account=p.account AND d.chat_key=p.chat_key "
            f"AND d.name='{ROOM_MARK}' "
            "LEFT JOIN inbox_conversation i ON i.account=p.account AND i.chat_key=p.chat_key "
            "WHERE p.room_id IS NOT NULL AND (p.account, p.chat_key) > ($1, $2) "
            "ORDER BY p.account, p.chat_key LIMIT $3"
        )
        queries: list[tuple[str, tuple[Any, ...]]] = []
        async for row in self._pages(job, query):
            key: Key = (row["account"], row["chat_key"])
            team = row["team"] if self.inbox_on else None
            days = self.retention.rule(row["account"], team).messages_days
            mark = {"room": row["room_id"], "days": days}
            if days is not None and (row["mark"] and json.loads(row["mark"])) != mark:
                content = {"max_lifetime": days * DAY_MS}
                await self.services.set_state(row["room_id"], "m.room.retention", "", content)
                queries.append(self._put(key, ROOM_MARK, mark))
                self._add(job, "rooms_marked")
            job.progress["after"] = list(key)
            if len(queries) >= PAGE:
                await self._commit(job, queries)
                queries = []
        await self._commit(job, queries)

    async def _conversations(self, job: PrivacyJob) -> Any:
        query = (
            "SELECT DISTINCT account, chat_key FROM message "
            "WHERE (account, chat_key) > ($1, $2) ORDER BY account, chat_key LIMIT $3"
        )
        async for row in self._pages(job, query):
            yield (row["account"], row["chat_key"])

    async def _messages(self, job: PrivacyJob, started: int) -> None:
        if not self._any("messages_days"):
            return
        async for key in self._conversations(job):
            days = (await self.rule(*key)).messages_days
            if days is not None:
                while await self._message_batch(job, key, started - days * DAY_MS):
                    pass
            job.progress["after"] = list(key)

    async def _message_batch(self, job: PrivacyJob, key: Key, cutoff: int) -> bool:
        """Redact and drop ``BATCH`` mappings from before ``cutoff``; True: there may be more."""
        rows = await PrivacyJob.db.fetch(
            "SELECT message_key, part, event_id, room_id FROM message "
            "WHERE account=$1 AND chat_key=$2 AND timestamp < $3 LIMIT $4",
            *key, cutoff, BATCH,
        )  # fmt: skip
        if not rows:
            return False
        for row in rows:
            done = await self.services.redact(row["room_id"], row["event_id"], reason=REASON)
            self._add(job, "redacted" if done else "failures")
        self._add(job, "mappings_dropped", len(rows))
        await self._commit(job, [_drop(key, row) for row in rows])
        return len(rows) == BATCH

    async def _raw_mail(self, job: PrivacyJob, started: int) -> None:
        if not self._any("raw_mail_days"):
            return
        async for key in self._conversations(job):
            days = (await self.rule(*key)).raw_mail_days
            account = self.config.channels.get(key[0])
            if days is not None and account is not None and account.type == "email":
                await self._raw_mails_of(job, key, started - days * DAY_MS)
            job.progress["after"] = list(key)

    async def _raw_mails_of(self, job: PrivacyJob, key: Key, cutoff: int) -> None:
        since = int(await self._data(key, RAW_MAIL_DONE) or 0)
        if since >= cutoff:
            return
        rows = await PrivacyJob.db.fetch(
            "SELECT message_key, part, event_id, room_id FROM message "
            "WHERE account=$1 AND chat_key=$2 AND timestamp >= $3 AND timestamp < $4",
            *key, since, cutoff,
        )  # fmt: skip
        by_room: dict[str, dict[str, Any]] = {}
        for row in rows:
            by_room.setdefault(row["room_id"], {})[row["event_id"]] = row
        for room_id, mapped in by_room.items():
            timeline = await self.services.timeline(room_id)
            found = [e for e in timeline.events if e.event_id in mapped and _is_eml(e.content)]
            for start in range(0, len(found), BATCH):
                batch = found[start : start + BATCH]
                for event in batch:
                    # The media first: a repeat after a kill still finds the event unredacted.
                    for url in event.media:
                        gone = await self.services.delete_media(url)
                        self._add(job, "media_deleted" if gone else "failures")
                    done = await self.services.redact(room_id, event.event_id, reason=REASON)
                    self._add(job, "raw_mails" if done else "failures")
                self._add(job, "mappings_dropped", len(batch))
                await self._commit(job, [_drop(key, mapped[e.event_id]) for e in batch])
        await self._commit(job, [self._put(key, RAW_MAIL_DONE, cutoff)])

    async def _close(self, job: PrivacyJob, started: int) -> None:
        if not self.inbox_on or not self._any("close_resolved_days"):
            return
        query = (
            "SELECT account, chat_key, chat, team, resolved_at FROM inbox_conversation "
            "WHERE status='resolved' AND resolved_at IS NOT NULL "
            "AND (account, chat_key) > ($1, $2) ORDER BY account, chat_key LIMIT $3"
        )
        async for row in self._pages(job, query):
            key: Key = (row["account"], row["chat_key"])
            days = self.retention.rule(row["account"], row["team"]).close_resolved_days
            queries: list[tuple[str, tuple[Any, ...]]] = []
            if days is not None and row["resolved_at"] < started - days * DAY_MS:
                await self._close_room(row["account"], row["chat"], days)
                queries.append(
                    (
                        "DELETE FROM inbox_conversation WHERE account=$1 AND chat_key=$2 "
                        "AND status='resolved'",
                        key,
                    )
                )
                self._add(job, "closed")
            job.progress["after"] = list(key)
            if queries:
                await self._commit(job, queries)

    async def _close_room(self, account: str, chat: str, days: int) -> None:
        portal = await Portal.get(account, chat)
        if portal is None:  # dropped before a kill: only the inbox row is left to go
            return
        if portal.room_id:
            text = CLOSED.format(days=days)
            txn = f"retention-close-{digest(portal.room_id)}"
            await self.services.notice(portal.room_id, text, txn=txn)
            await self.services.ghosts_leave(portal.room_id)
        await portal.delete()

    # ------------------------------------------------------------------ the command

    async def command(self, ctx: CommandContext, words: list[str]) -> str:
        if not admin_everywhere(self.services, self.config, ctx.sender):
            return "Only admins of every channel account may see or run retention."
        if words and words != ["run"]:
            return USAGE
        if words == ["run"]:
            job = await self.run_now(ctx.sender)
            return f"Retention pass #{job.id} done: {_counts(job.result)}."
        return "\n".join([*self._rules(), await self._last()])

    def _rules(self) -> list[str]:
        retention = self.retention
        if not retention.active:
            return ["No retention rules: everything is kept."]
        lines = [f"Retention rules (a pass every {retention.interval:g} s):"]
        for account in self.config.channels:
            lines.append(f"{account}: {_rule(retention.rule(account))}")
        for team in retention.teams:
            lines.append(f"team {team}: {_rule(retention.teams[team])} (else its account's)")
        return lines

    async def _last(self) -> str:
        open_ = await PrivacyJob.open("retention")
        if open_:
            return f"Pass #{open_[0].id} is under way since {when(open_[0].created_at)}."
        last = await PrivacyJob.latest("retention", "done")
        if last is None:
            return "No retention pass has run yet."
        return f"Last pass #{last.id} at {when(last.created_at)}: {_counts(last.result)}."


def _drop(key: Key, row: Any) -> tuple[str, tuple[Any, ...]]:
    return (
        "DELETE FROM message WHERE account=$1 AND chat_key=$2 AND message_key=$3 AND part=$4",
        (*key, row["message_key"], row["part"]),
    )


def _is_eml(content: dict[str, Any]) -> bool:
    name = content.get("filename") or content.get("body")
    return content.get("msgtype") == "m.file" and name == EML_FILENAME


def _rule(rule: RetentionRule) -> str:
    return ", ".join(
        f"{name} {getattr(rule, name) if getattr(rule, name) is not None else 'forever'}"
        for name in RULE_KEYS
    )


def _counts(result: dict[str, Any]) -> str:
    return ", ".join(f"{name.replace('_', ' ')} {int(result.get(name, 0))}" for name in COUNTS)
