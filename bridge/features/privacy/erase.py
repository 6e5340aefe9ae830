"""Erasing a person (GDPR Art. 17), asked for and confirmed by an admin.

``privacy erase <identity>``
    Finds the person (``subject.py``), checks that the sender is an admin of every channel
    account the person has an identity on, and answers with what would be erased: their
    identities, their own conversations, the group rooms they wrote in, their consent contacts.
    A ``pending`` erasure job holds that plan; nothing is changed yet.
``privacy erase confirm <n>`` / ``privacy erase cancel <n>``
    Only the admin who asked may confirm or cancel. An erasure not confirmed within
    ``confirm_minutes`` expires (cancelled, its plan cleared). A confirmed erasure is carried out
    by ``EraseRunner`` (``eraserun.py``), which survives a restart.

Each step is recorded in the audit log (``erase requested``, ``erase confirmed``, ``erase
cancelled``, ``erase done``), naming the person only by ``Subject.references``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ...config import Config
from ...db.erasure import expire_pending, rooms_written_in
from ...db.privacy import PrivacyJob
from ...db.queue import now_ms
from ...seams import CommandContext, Services
from ...seams_api import ApiError
from .audit import Audit
from .config import PrivacyConfig
from .subject import Subject, SubjectError, find_subject

KIND = "erase"
USAGE = (
    "Usage: privacy erase <identity> — then privacy erase confirm <n> (or cancel <n>). "
    "An identity is a phone number, a mail address, <account>:<id> or contact:<n>."
)


def plan_of(subject: Subject, groups: list[str], secret: bytes) -> dict[str, Any]:
    """What an erasure job holds until it is done (then it is cleared)."""
    own = {p.room_id for p in subject.conversations if p.room_id}
    return {
        "refs": subject.references(secret),
        "accounts": subject.accounts,
        "identities": [[i.account, i.remote_user, i.chat] for i in subject.identities],
        "conversations": [[p.account, p.chat, p.room_id] for p in subject.conversations],
        "groups": [room for room in groups if room not in own],
        "ghosts": [[g.account, g.remote_user, g.mxid] for g in subject.ghosts],
        "contacts": list(subject.contacts),
    }


def counts_of(plan: dict[str, Any]) -> dict[str, int]:
    return {
        "identities": len(plan.get("identities", [])),
        "conversations": len(plan.get("conversations", [])),
        "groups": len(plan.get("groups", [])),
        "contacts": len(plan.get("contacts", [])),
    }


class EraseCommand:
    """The ``privacy erase`` part; ``kick`` starts the runner after a confirmation."""

    def __init__(
        self,
        services: Services,
        config: Config,
        options: PrivacyConfig,
        audit: Audit,
        kick: Callable[[], None] = lambda: None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.services = services
        self.config = config
        self.options = options
        self.audit = audit
        self.kick = kick
        self.clock = clock

    @property
    def window_ms(self) -> int:
        return int(self.options.confirm_minutes * 60 * 1000)

    def allowed(self, actor: str, accounts: list[str]) -> bool:
        """The permission rule: an admin of every channel account the person is on (of every
        account when no identity is left, a consent contact alone)."""
        accounts = accounts or list(self.config.channels)
        return all(self.services.level(actor, account) == "admin" for account in accounts)

    async def run(self, ctx: CommandContext, words: list[str]) -> str:
        if not words:
            return USAGE
        if words[0].lower() in ("confirm", "cancel") and len(words) == 2:
            if not words[1].lstrip("#").isdigit():
                return USAGE
            word, id_ = words[0].lower(), int(words[1].lstrip("#"))
            return await _answer(self.decide(ctx.sender, word, id_))
        try:
            _, answer = await self.request(ctx.sender, ctx.room_id, " ".join(words))
        except ApiError as e:
            return e.message
        return answer

    async def request(self, actor: str, room_id: str, asked: str) -> tuple[int, str]:
        """Plan the erasure of the person ``asked`` names (a ``pending`` job; its notices go
        to ``room_id``): its number and what it would erase, or ``ApiError`` for a refusal
        (``privacy erase`` and the provisioning API)."""
        try:
            subject = await find_subject(asked, self.services, self.config)
        except SubjectError as e:
            raise ApiError(404, str(e)) from e
        if not self.allowed(actor, subject.accounts):
            raise ApiError(
                403,
                "Only an admin of every channel account the person is on may erase them "
                f"({', '.join(subject.accounts)}). Nothing was changed.",
            )
        groups = await rooms_written_in([g.mxid for g in subject.ghosts])
        plan = plan_of(subject, groups, self.options.secret)
        job = await PrivacyJob.create(KIND, actor, room_id, plan, now=self.clock())
        counts = counts_of(plan)
        await self.audit.record(actor, "erase requested", plan["refs"], {"job": job.id, **counts})
        return job.id, describe(job.id, asked, subject, counts, self.options.confirm_minutes)

    async def decide(self, actor: str, word: str, id_: int) -> str:
        """``confirm`` or ``cancel`` the erasure ``id_``; the answer, or ``ApiError``."""
        job = await PrivacyJob.get(id_)
        if job is None or job.kind != KIND:
            raise ApiError(404, f"There is no erasure #{id_}.")
        if job.actor != actor:
            raise ApiError(403, f"Only {job.actor}, who asked for erasure #{id_}, may {word} it.")
        if job.state != "pending":
            raise ApiError(409, f"Erasure #{id_} is {job.state}; nothing was changed.")
        if self.clock() - job.created_at > self.window_ms:
            await self.expire()
            raise ApiError(
                409,
                f"Erasure #{id_} expired (not confirmed within "
                f"{self.options.confirm_minutes:g} minutes); ask again. Nothing was changed.",
            )
        refs = str(job.plan.get("refs", ""))
        if word == "cancel":
            if not await job.move("pending", "cancelled", now=self.clock()):
                raise ApiError(409, f"Erasure #{id_} changed meanwhile; nothing was changed.")
            job.plan = {}
            await job.save(now=self.clock())
            await self.audit.record(actor, "erase cancelled", refs, {"job": id_})
            return f"Erasure #{id_} cancelled; nothing was erased."
        if not self.allowed(actor, list(job.plan.get("accounts", []))):
            raise ApiError(
                403, "You are no longer an admin of every account of that person; nothing changed."
            )
        if not await job.move("pending", "confirmed", now=self.clock()):
            raise ApiError(409, f"Erasure #{id_} changed meanwhile; nothing was changed.")
        await self.audit.record(actor, "erase confirmed", refs, {"job": id_})
        self.kick()
        return f"Erasure #{id_} confirmed: it runs now; a notice here tells when it is done."

    async def expire(self) -> list[int]:
        """Cancel the erasures not confirmed in time (their plans cleared)."""
        now = self.clock()
        return await expire_pending(KIND, now - self.window_ms, now)


async def _answer(answer: Awaitable[str]) -> str:
    """A command's answer: the refusal's text too."""
    try:
        return await answer
    except ApiError as e:
        return e.message


def describe(
    id_: int, asked: str, subject: Subject, counts: dict[str, int], minutes: float
) -> str:
    identities = ", ".join(f"{i.account}:{i.remote_user}" for i in subject.identities) or "none"
    rooms = sum(1 for p in subject.conversations if p.room_id)
    lines = [
        f"Erasure #{id_} of {asked!r} would erase:",
        f"• {counts['identities']} identities: {identities}",
        f"• {counts['conversations']} conversations of theirs ({rooms} with a room): every "
        "message redacted, the room renamed, the ghost removed, the bridge's records deleted",
        f"• their messages in {counts['groups']} group rooms (redacted; the groups stay)",
        f"• {counts['contacts']} consent contacts (their ledger; a hashed entry keeps them "
        "from being contacted again)",
        f"Confirm with `privacy erase confirm {id_}` within {minutes:g} minutes, or "
        f"`privacy erase cancel {id_}`.",
    ]
    return "\n".join(lines)
