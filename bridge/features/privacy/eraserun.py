"""Carrying out a confirmed erasure (``erase.py``), durably: the job's progress is saved in
``privacy_job`` after each step, and a killed run goes on after a restart from the last saved
point (every step is idempotent). A periodic job looks for confirmed or running erasures every
few seconds; a confirmation starts it at once. One erasure runs at a time.

1. Matrix, room by room (the person's own conversations, then the group rooms they wrote in):
   the room's timeline (state events included) is read and the media of the events to redact
   are saved in the progress first (a redacted event's content is gone), then the person's
   ghost events are redacted (their messages, reactions, edits, and their membership events,
   which hold their name and avatar), and in their own conversations also the bot's events,
   the room's earlier names, topics, aliases and avatars and, with ``erase_staff_replies``,
   the staff's events. Their own rooms are renamed "Erased conversation", their topic and
   canonical alias cleared, and a notice says the conversation was erased at the person's
   request. Then the ghosts are retired (profile cleared, out of every room, row deleted).
2. Media: each file collected is deleted through the homeserver's admin API
   (``homeserver.admin_token``; without it they stay, and the result says how many).
3. Database: the core's rows of each own conversation and the room's alias, which holds the
   chat id (``Services.erase_conversation``; a later message of theirs opens a new room), the
   inbox's rows, broadcast recipients, the ghosts' message mappings in group rooms, the consent
   records (``db/erasure.py``); the person's identities are added to the suppression list.
4. Done: the plan and progress are cleared (no identifier stays in ``privacy_job``), the
   result keeps the counts; the audit entry and a notice in the requester's room say so
   (then the job is ``done``).

What stays: the homeserver keeps redacted events' content until its
``redaction_retention_period``, the ghost's user id in the room's member list (it is derived
from the remote id), and the media without an admin token; see the README."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ...db.erasure import erase_consent, erase_ghost_messages, erase_inbox, erase_recipients
from ...db.privacy import PrivacyJob, Suppression, person_key
from ...db.queue import now_ms
from ...seams import PeriodicJob, Seams, Services, TimelineEvent
from .audit import Audit
from .config import PrivacyConfig
from .erase import KIND, EraseCommand

log = logging.getLogger("bridge.privacy.erase")

INTERVAL = 3.0
TIMELINE_LIMIT = 50_000
REASON = "erased at the person's request"
ERASED_NAME = "Erased conversation"
ERASED_NOTICE = "🗑 This conversation was erased at the person's request."
STEPS = ("matrix", "media", "database", "done")
PLAN_COUNTS = ("conversations", "groups", "contacts", "identities")
ROOM_STATE = (
    "m.room.name", "m.room.topic", "m.room.canonical_alias", "m.room.avatar",
    "m.bridge", "uk.half-shot.bridge",
)  # fmt: skip
"""State of a person's own room that can hold their name, number or picture (the bridge
info names the remote chat and the person)."""
ERASED_STATE: tuple[dict[str, Any], ...] = ({}, {"name": ERASED_NAME}, {"topic": ""})
"""What the erasure sets them to (not redacted again after a restart)."""


def erase(seams: Seams, options: PrivacyConfig, audit: Audit) -> EraseCommand:
    """The ``privacy erase`` command (its ``run``); registers the runner's periodic job and
    gives the suppression list its secret (``Suppression.holds``)."""
    Suppression.secret = options.secret
    command = EraseCommand(seams.services, seams.config, options, audit)
    runner = EraseRunner(seams.services, options, audit, command, seams.config.bot_mxid)
    command.kick = runner.kick
    seams.add_job(PeriodicJob("privacy-erase", INTERVAL, runner.tick, at_start=True))
    return command


class EraseRunner:
    def __init__(
        self,
        services: Services,
        options: PrivacyConfig,
        audit: Audit,
        command: EraseCommand,
        bot: str,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.services = services
        self.options = options
        self.audit = audit
        self.command = command
        self.bot = bot
        self.clock = clock
        self.lock = asyncio.Lock()
        self.tasks: set[asyncio.Task[None]] = set()

    def kick(self) -> None:
        """Run now (after a confirmation), in the background."""
        task = asyncio.get_running_loop().create_task(self.tick())
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("An erasure failed (tried again later)", exc_info=task.exception())

    async def tick(self) -> None:
        """Expire unconfirmed erasures, then carry out every open one, oldest first."""
        await self.command.expire()
        if self.lock.locked():
            return
        async with self.lock:
            while jobs := await PrivacyJob.open(KIND):
                for job in jobs:
                    await self.run(job)

    async def run(self, job: PrivacyJob) -> None:
        if job.state == "confirmed":
            job.state = "running"
            job.progress = {"step": STEPS[0], "rooms_done": [], "media": [], "counts": {}}
            await job.save(now=self.clock())
        while (step := job.progress.get("step", STEPS[0])) != "done":
            await getattr(self, f"_{step}")(job)
            job.progress["step"] = STEPS[STEPS.index(step) + 1]
            await job.save(now=self.clock())
        await self._finish(job)

    def _count(self, job: PrivacyJob, name: str, n: int = 1) -> None:
        counts: dict[str, int] = job.progress.setdefault("counts", {})
        counts[name] = counts.get(name, 0) + n

    # 1. Matrix

    async def _matrix(self, job: PrivacyJob) -> None:
        plan = job.plan
        ghosts = {mxid for _a, _r, mxid in plan.get("ghosts", [])}
        own = [room for _a, _c, room in plan.get("conversations", []) if room]
        for room in own + [r for r in plan.get("groups", []) if r not in own]:
            if room in job.progress["rooms_done"]:
                continue
            await self._room(job, room, ghosts, whole=room in own)
            job.progress["rooms_done"].append(room)
            await job.save(now=self.clock())
        for account, remote_user, _mxid in plan.get("ghosts", []):
            await self.services.retire_ghost(account, remote_user, own + plan.get("groups", []))

    def _erases(self, event: TimelineEvent, ghosts: set[str], whole: bool) -> bool:
        if event.redacted or event.type == "m.room.redaction":
            return False
        if event.state_key is not None:  # their membership (name, avatar), the room's names
            if event.sender in ghosts or event.state_key in ghosts:
                return True
            return whole and event.type in ROOM_STATE and event.content not in ERASED_STATE
        if event.sender in ghosts:
            return True
        if not whole:
            return False
        if event.sender == self.bot:
            return event.content.get("body") != ERASED_NOTICE
        return self.options.erase_staff_replies

    async def _room(self, job: PrivacyJob, room: str, ghosts: set[str], whole: bool) -> None:
        timeline = await self.services.timeline(room, limit=TIMELINE_LIMIT, state=True)
        if not timeline.complete:
            self._count(job, "rooms_cut")
        doomed = [e for e in timeline.events if self._erases(e, ghosts, whole)]
        media: list[str] = job.progress["media"]
        fresh = [url for e in doomed for url in _media(e) if url not in media]
        if fresh:  # saved before the redactions take the content away
            media.extend(dict.fromkeys(fresh))
            await job.save(now=self.clock())
        for event in doomed:
            if await self.services.redact(room, event.event_id, reason=REASON):
                self._count(job, "redacted")
            else:
                self._count(job, "not_redacted")
            await job.save(now=self.clock())  # the counts: a restart reads redacted ones
        if whole:
            await self.services.set_state(room, "m.room.name", "", {"name": ERASED_NAME})
            await self.services.set_state(room, "m.room.topic", "", {"topic": ""})
            await self.services.set_state(room, "m.room.canonical_alias", "", {})
            await self.services.notice(room, ERASED_NOTICE, txn=f"privacy-erase-{job.id}-{room}")

    # 2. Media

    async def _media(self, job: PrivacyJob) -> None:
        media: list[str] = job.progress["media"]
        start = int(job.progress.get("media_done", 0))
        for index in range(start, len(media)):
            deleted = await self.services.delete_media(media[index])
            self._count(job, "media_deleted" if deleted else "media_kept")
            job.progress["media_done"] = index + 1
            await job.save(now=self.clock())

    # 3. Database

    async def _database(self, job: PrivacyJob) -> None:
        plan = job.plan
        rows = 0
        for account, chat, _room in plan.get("conversations", []):
            rows += await self.services.erase_conversation(account, chat)
            rows += await erase_inbox(account, chat)
        identities: list[list[str]] = plan.get("identities", [])
        chats = [(account, chat) for account, _r, chat in identities]
        chats += [(account, chat) for account, chat, _room in plan.get("conversations", [])]
        rows += await erase_recipients(plan.get("contacts", []), chats)
        rows += await erase_ghost_messages(
            [mxid for _a, _r, mxid in plan.get("ghosts", [])],
            [(account, remote) for account, remote, _c in identities],
        )
        rows += await erase_consent(plan.get("contacts", []), job.actor, self.clock())
        secret = self.options.secret
        keys = {
            person_key(secret, "suppress", account, remote)
            for account, remote_user, chat in identities
            for remote in (remote_user, chat)
        }
        await Suppression.add(sorted(keys), now=self.clock())
        self._count(job, "rows", rows)

    # 4. Done

    async def _finish(self, job: PrivacyJob) -> None:
        if job.plan:  # first the identifiers go; the audit references (hashes) stay a moment
            job.result = {
                **job.progress.get("counts", {}),
                **{name: len(job.plan.get(name, [])) for name in PLAN_COUNTS},
            }
            job.progress = {"step": "done", "refs": job.plan.get("refs", "")}
            job.plan = {}
            await job.save(now=self.clock())
        # Told before it is stored as done: a kill in between tells again, never not at all.
        refs, result = str(job.progress.get("refs", "")), job.result
        await self.audit.record(job.actor, "erase done", refs, {"job": job.id, **result})
        if job.room_id:
            await self.services.notice(
                job.room_id, done_text(job.id, result), txn=f"privacy-erase-done-{job.id}"
            )
        job.state, job.progress = "done", {}
        await job.save(now=self.clock())


def done_text(id_: int, result: dict[str, Any]) -> str:
    text = (
        f"🗑 Erasure #{id_} done: {result['conversations']} conversations, "
        f"{result['identities']} identities, {result['contacts']} consent contacts; "
        f"{result.get('redacted', 0)} events redacted (in {result['groups']} group rooms too), "
        f"{result.get('media_deleted', 0)} files deleted, {result.get('rows', 0)} database "
        "rows removed."
    )
    if result.get("media_kept"):
        text += (
            f" {result['media_kept']} files stay in the media repository (no homeserver "
            "admin token, or refused)."
        )
    if result.get("not_redacted"):
        text += f" {result['not_redacted']} events could not be redacted."
    if result.get("rooms_cut"):
        text += f" {result['rooms_cut']} rooms were too long to read to their start."
    return text


def _media(event: TimelineEvent) -> list[str]:
    """The files an event refers to, a member event's avatar too."""
    avatar = event.content.get("avatar_url")
    extra = [avatar] if isinstance(avatar, str) and avatar.startswith("mxc://") else []
    return [*event.media, *extra]
