"""The consent registry: the API the opt-in flows, the broadcasts and the commands use.

A contact is a person; an identity is that person on a channel account (the remote user, and
the chat the bridge reaches them in). Contacts enter only through their own action (a message,
an opt-in: ``contact_for(..., create=True)`` from an inbound event) or an import that carries
its proof (``import_identity``, ``import_consent``: refused without when, which text version
and from where); there is no other way to add one.

Every step is appended to the ledger (``consent_event``) with the SHA-256 of the exact text
shown, the evidence and what triggered it; nothing is ever changed in place. The state of a
consent (per contact, list and channel account) is derived from the latest step: ``confirmed``
and ``imported`` mean it holds, anything else (none, ``requested``, ``declined``,
``withdrawn``, ``expired``) means it does not. A withdrawal records the hash of the text the
consent was given under. Steps with a ``cause`` (a message id, a token id) are recorded once:
a retried hook or a reused token appends nothing again.

Merged contacts (``merge``): the identities of one move to the other; the ledger rows stay as
written, and the merged contact's view (history, state, subscribers) covers both."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ...db.consent import (
    GIVEN,
    ConsentContact,
    ConsentEvent,
    ConsentIdentity,
    ConsentText,
)
from ...db.privacy import Suppression
from ...seams import AuditRecord
from ...seams_metrics import FeatureMetrics, NoMetrics
from .config import ConsentConfig, text_hash

log = logging.getLogger("bridge.consent")

ASKING = ("requested", "confirmed", "declined")
ENDING = ("withdrawn", "expired")
SUBSCRIBER_BATCH = 1000
MAX_SOURCE = 500


def now_ms() -> int:
    return int(time.time() * 1000)


class ConsentError(ValueError):
    """A step the registry refuses (an unknown list, an import without its proof...)."""


@dataclass(frozen=True)
class ConsentState:
    step: str | None
    """The latest step, None when there is none."""
    at: int | None = None
    text_hash: str | None = None

    @property
    def confirmed(self) -> bool:
        return self.step in GIVEN


@dataclass(frozen=True)
class ImportProof:
    """What an import of an existing consent must carry."""

    consented_at: int
    """When the consent was given (ms since the epoch; not in the future)."""
    version: str
    """The version of the consent text it was given under: the list's, one stored before, or
    a new one with ``text``."""
    source: str
    """Where the proof is kept (the system, the document)."""
    by: str
    """Who imported it."""
    text: str | None = None


@dataclass(frozen=True)
class Subscriber:
    contact: int
    identities: list[ConsentIdentity]
    """Its identities on the list's channel account (where the broadcast goes)."""


class Registry:
    def __init__(self, config: ConsentConfig, clock: Callable[[], int] = now_ms) -> None:
        self.config = config
        self.clock = clock
        self._stored: set[str] = set()
        self.audit: Callable[[AuditRecord], Awaitable[None]] | None = None
        """Told of every step recorded (``Seams.audit``: the data protection audit log)."""
        self.metrics: FeatureMetrics = NoMetrics()
        """Counts the consents given and withdrawn (``Seams.metrics``)."""

    async def _told(
        self, step: str, contact: int, list_: str, account: str, actor: str, trigger: str
    ) -> None:
        if self.audit is None:
            return
        identities = await ConsentIdentity.on_account(account, await self._members(contact))
        people = tuple((i.account, i.remote_user) for i in identities)
        detail = {"list": list_, "account": account, "trigger": trigger.split(" ", 1)[0]}
        await self.audit(AuditRecord(actor, f"consent {step}", people, detail))

    async def store_texts(self) -> list[str]:
        """Store every list's consent text (once); a warning for each version that has more
        than one text (both stay provable, each step names its own)."""
        warnings = []
        for item in self.config.lists.values():
            await self._store(item.name, item.version, item.text)
            texts = await ConsentText.of_version(item.name, item.version)
            if len(texts) > 1:
                warnings.append(
                    f"consent list {item.name}: version {item.version} has {len(texts)} "
                    "different texts; give a changed text a new version"
                )
        for warning in warnings:
            log.warning(warning)
        return warnings

    async def _store(self, list_: str, version: str, text: str) -> str:
        hash_ = text_hash(text)
        if hash_ not in self._stored:
            await ConsentText.store(list_, version, text, hash_, self.clock())
            self._stored.add(hash_)
        return hash_

    # Contacts and identities

    async def root(self, contact: int) -> int | None:
        """The contact ``contact`` is now (the one it was merged into); None: no such."""
        row = await ConsentContact.get(contact)
        if row is None:
            return None
        return row.merged_into if row.merged_into is not None else row.id

    async def _members(self, contact: int) -> list[int]:
        """The contacts whose rows make up ``contact``'s view (itself, if merged: the one it
        was merged into, and what was merged into that)."""
        return await ConsentContact.members(await self.root(contact) or contact)

    async def contact_for(
        self, account: str, remote_user: str, *, chat: str | None = None, create: bool = False
    ) -> int | None:
        """The contact of an identity; with ``create`` (only for the person's own action or an
        import with proof) a new one when unknown, reached in ``chat`` (default: the remote
        user's id)."""
        found = await ConsentIdentity.get(account, remote_user)
        if found is not None or not create:
            return None if found is None else await self.root(found.contact)
        now = self.clock()
        contact = await ConsentContact.create(now)
        identity = ConsentIdentity(account, remote_user, chat or remote_user, contact.id, now)
        if not await identity.insert():  # someone else was first: theirs holds
            again = await ConsentIdentity.get(account, remote_user)
            return None if again is None else await self.root(again.contact)
        return contact.id

    async def identities(self, contact: int) -> list[ConsentIdentity]:
        return await ConsentIdentity.of_contacts(await self._members(contact))

    async def merge(self, contact: int, other: int, by: str) -> None:
        """One person: ``other``'s identities become ``contact``'s."""
        if contact == other:
            raise ConsentError(f"contact {contact} cannot be merged with itself")
        for id_ in (contact, other):
            row = await ConsentContact.get(id_)
            if row is None:
                raise ConsentError(f"there is no contact {id_}")
            if row.merged_into is not None:
                raise ConsentError(f"contact {id_} was merged into contact {row.merged_into}")
        await ConsentContact.merge(contact, other, by, self.clock())

    # Steps

    async def _known(self, contact: int) -> None:
        if await self.root(contact) is None:
            raise ConsentError(f"there is no contact {contact}")

    def _list(self, list_: str) -> str:
        item = self.config.lists.get(list_)
        if item is None:
            raise ConsentError(f"there is no consent list {list_!r}")
        return item.name

    async def step(
        self,
        step: str,
        contact: int,
        list_: str,
        account: str,
        evidence: dict[str, Any],
        trigger: str,
        cause: str | None = None,
    ) -> bool:
        """Append ``step`` (``requested``, ``confirmed``, ``declined``: under the list's text
        as configured now; ``withdrawn``, ``expired``: naming the text of the step it ends, also
        for a list no longer configured). False: ``cause`` was recorded before."""
        await self._known(contact)
        if step in ENDING:
            latest = await ConsentEvent.latest(await self._members(contact), list_, account)
            hash_ = latest.text_hash if latest else None
        elif step in ASKING:
            item = self.config.lists[self._list(list_)]
            hash_ = await self._store(item.name, item.version, item.text)
        else:
            raise ConsentError(f"no step {step!r} (imports: import_consent)")
        added = await ConsentEvent.append(
            contact, list_, account, step, self.clock(), hash_, evidence, trigger, cause
        )
        if added:
            self.metrics.consent(list_, account, step)
            actor = "bridge" if step == "expired" else "customer"
            await self._told(step, contact, list_, account, actor, trigger)
        return added

    async def request(self, contact: int, list_: str, account: str, evidence: dict[str, Any],
                      trigger: str, cause: str | None = None) -> bool:  # fmt: skip
        """The consent text was shown and the contact asked to confirm."""
        return await self.step("requested", contact, list_, account, evidence, trigger, cause)

    async def confirm(self, contact: int, list_: str, account: str, evidence: dict[str, Any],
                      trigger: str, cause: str | None = None) -> bool:  # fmt: skip
        """The contact confirmed (the second step of the double opt-in)."""
        return await self.step("confirmed", contact, list_, account, evidence, trigger, cause)

    async def decline(self, contact: int, list_: str, account: str, evidence: dict[str, Any],
                      trigger: str, cause: str | None = None) -> bool:  # fmt: skip
        return await self.step("declined", contact, list_, account, evidence, trigger, cause)

    async def withdraw(self, contact: int, list_: str, account: str, evidence: dict[str, Any],
                       trigger: str, cause: str | None = None) -> bool:  # fmt: skip
        return await self.step("withdrawn", contact, list_, account, evidence, trigger, cause)

    async def expire(self, contact: int, list_: str, account: str, evidence: dict[str, Any],
                     trigger: str, cause: str | None = None) -> bool:  # fmt: skip
        """A request that was never confirmed in time."""
        return await self.step("expired", contact, list_, account, evidence, trigger, cause)

    async def _proven(self, list_: str, proof: ImportProof) -> str:
        """The hash of the text an import names, after its proof was checked."""
        name = self._list(list_)
        at = proof.consented_at
        if isinstance(at, bool) or not isinstance(at, int) or not 0 < at <= self.clock():
            raise ConsentError("an import needs the time the consent was given (not later)")
        if not proof.source.strip() or len(proof.source) > MAX_SOURCE:
            raise ConsentError("an import needs its source (where the proof is kept)")
        version = proof.version.strip()
        if not version:
            raise ConsentError("an import needs the version of the consent text")
        item = self.config.lists[name]
        if proof.text is not None:
            return await self._store(name, version, proof.text)
        if version == item.version:
            return await self._store(name, version, item.text)
        known = await ConsentText.of_version(name, version)
        if not known:
            raise ConsentError(
                f"version {version} of list {name} is unknown: import it with its text"
            )
        return known[-1].hash

    async def import_consent(
        self, contact: int, list_: str, account: str, proof: ImportProof
    ) -> bool:
        """A consent given before the bridge, recorded with its proof (``ImportProof``)."""
        await self._known(contact)
        hash_ = await self._proven(list_, proof)
        evidence = {
            "consented_at": proof.consented_at, "source": proof.source,
            "version": proof.version.strip(),
        }  # fmt: skip
        added = await ConsentEvent.append(
            contact, list_, account, "imported", self.clock(), hash_, evidence,
            f"import by {proof.by}",
        )  # fmt: skip
        if added:
            await self._told("imported", contact, list_, account, proof.by, "import")
        return added

    async def import_identity(
        self, account: str, remote_user: str, list_: str, proof: ImportProof,
        chat: str | None = None,
    ) -> int:  # fmt: skip
        """An import of someone the bridge may not know yet: the proof is checked before the
        contact is made (none is made for a refused import). Returns the contact."""
        if await erased(account, remote_user, chat):
            raise ConsentError("that person was erased and is not to be contacted again")
        await self._proven(list_, proof)
        contact = await self.contact_for(account, remote_user, chat=chat, create=True)
        assert contact is not None
        await self.import_consent(contact, list_, account, proof)
        return contact

    # What holds

    async def state(self, contact: int, list_: str, account: str) -> ConsentState:
        latest = await ConsentEvent.latest(await self._members(contact), list_, account)
        if latest is None:
            return ConsentState(None)
        return ConsentState(latest.step, latest.at, latest.text_hash)

    async def confirmed_lists(self, contact: int, account: str) -> list[str]:
        """The lists whose consent holds for ``contact`` on ``account``, by name."""
        members = await self._members(contact)
        lists = {e.list for e in await ConsentEvent.history(members) if e.account == account}
        held = []
        for name in sorted(lists):
            latest = await ConsentEvent.latest(members, name, account)
            if latest is not None and latest.step in GIVEN:
                held.append(name)
        return held

    async def any_confirmed(self, contact: int, account: str) -> bool:
        return bool(await self.confirmed_lists(contact, account))

    async def withdraw_all(
        self,
        contact: int,
        account: str,
        trigger: str,
        evidence: dict[str, Any] | None = None,
        cause: str | None = None,
    ) -> list[str]:
        """Withdraw every consent that holds on ``account``; the lists withdrawn (with
        ``cause``: also those a first run with that cause withdrew, so a retry reports the
        same)."""
        for name in await self.confirmed_lists(contact, account):
            await self.withdraw(contact, name, account, evidence or {}, trigger, cause)
        if cause is None:
            return []
        return sorted({e.list for e in await ConsentEvent.of_cause(account, cause)})

    async def blocked(self, account: str, remote_user: str, evidence: dict[str, Any]) -> list[str]:
        """The customer blocked the bot (Telegram: a 403 on sending, or ``my_chat_member``
        with ``kicked``, handed to the core as a ``RemoteBlocked`` that the opt-in hook turns
        into this call): every consent on ``account`` is withdrawn, the cause being the
        ``block_id`` of ``evidence`` (else its ``at``) so a repeat records nothing twice."""
        contact = await self.contact_for(account, remote_user)
        if contact is None:
            return []
        cause = f"blocked:{remote_user}:{evidence.get('block_id') or evidence.get('at')}"
        return await self.withdraw_all(contact, account, "blocked the bot", evidence, cause)

    async def subscribers(
        self, list_: str, account: str, batch: int = SUBSCRIBER_BATCH
    ) -> AsyncIterator[Subscriber]:
        """Every contact whose consent to ``list_`` holds on ``account``, in contact order,
        read a page of ``batch`` at a time (100,000 subscribers are never in memory at once)."""
        after = 0
        while True:
            page, last = await ConsentEvent.given(list_, account, after, batch)
            if last == after:
                return
            found: dict[int, list[ConsentIdentity]] = {contact: [] for contact in page}
            if page:  # a merge moves the identities: they belong to the contacts of the page
                for identity in await ConsentIdentity.on_account(account, page):
                    found[identity.contact].append(identity)
            for contact, identities in found.items():
                yield Subscriber(contact, identities)
            after = last


async def erased(account: str, remote_user: str, chat: str | None = None) -> bool:
    """Whether a person was erased (``privacy erase``): their identity is on the privacy
    feature's suppression list, and no consent of theirs is recorded again."""
    for remote in (remote_user, chat):
        if remote is not None and await Suppression.holds(account, remote):
            return True
    return False
