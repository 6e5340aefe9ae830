"""The audit log: every export, erasure, consent change, retention run and permission-relevant
command, appended to ``privacy_audit`` (the database refuses to change or delete its rows).
The person an entry is about is named only by keyed hashes of their identities
(``Subject.references``), so the log outlives an erasure without holding who it was; an admin
finds a person's entries by naming any identity of theirs (the hashes are computed again).

``privacy audit [identity] [before <id>]``
    The newest entries (of that person only, when named), 50 at a time. Admins of every
    channel account only: the log tells whose data was exported and by whom. It is part of no
    export."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ...config import Config
from ...db.privacy import AuditEntry, person_key
from ...seams import AuditRecord, CommandContext, Services
from .subject import Subject, identity_references

PAGE = 50
USAGE = "Usage: privacy audit [identity] [before <entry number>]"


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def admin_everywhere(services: Services, config: Config, actor: str) -> bool:
    """Whether ``actor`` is an admin of every channel account (what the log and the report,
    which span all accounts, need)."""
    return all(services.level(actor, account) == "admin" for account in config.channels)


class Audit:
    def __init__(self, services: Services, config: Config, secret: bytes) -> None:
        self.services = services
        self.config = config
        self.secret = secret

    async def record_seam(self, record: AuditRecord) -> None:
        """An ``AuditRecord`` of the core or another feature (``Seams.audit``): an admin's
        command, a consent step; the people it concerned kept as keyed hashes only."""
        refs = {person_key(self.secret, "audit", a, r) for a, r in record.people}
        await AuditEntry.append(
            record.actor, record.action, " ".join(sorted(refs)) or None, record.detail
        )

    async def record(
        self,
        actor: str,
        action: str,
        subject: Subject | str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Append an entry; ``subject`` is a found person or references already computed."""
        refs = subject.references(self.secret) if isinstance(subject, Subject) else subject
        return await AuditEntry.append(actor, action, refs or None, detail)

    async def command(self, ctx: CommandContext, words: list[str]) -> str:
        if not admin_everywhere(self.services, self.config, ctx.sender):
            return "Only admins of every channel account may read the audit log."
        before: int | None = None
        if len(words) >= 2 and words[-2] == "before":
            if not words[-1].isdigit():
                return USAGE
            before, words = int(words[-1]), words[:-2]
        refs: list[str] | None = None
        if words:
            refs = await identity_references(
                " ".join(words), self.services, self.config, self.secret
            )
            if not refs:
                return f"{' '.join(words)!r} names no identity the audit log could hold."
        entries: list[AuditEntry] = []
        for ref in refs or [None]:  # type: ignore[list-item]
            for entry in await AuditEntry.recent(PAGE, subject=ref, before=before):
                if all(e.id != entry.id for e in entries):
                    entries.append(entry)
        entries = sorted(entries, key=lambda e: e.id, reverse=True)[:PAGE]
        if not entries:
            return "The audit log has no entries" + (" of that person." if refs else ".")
        lines = [f"Audit log, newest first ({len(entries)} entries):"]
        for entry in entries:
            detail = ", ".join(f"{k}={v}" for k, v in sorted(entry.detail.items()))
            about = " (about a person)" if entry.subject else ""
            lines.append(
                f"#{entry.id} {when(entry.at)} {entry.actor}: {entry.action}{about}"
                + (f" [{detail}]" if detail else "")
            )
        if len(entries) == PAGE:
            lines.append(
                f"Older: privacy audit {' '.join(words)} before {entries[-1].id}".replace(
                    "  ", " "
                )
            )
        return "\n".join(lines)
