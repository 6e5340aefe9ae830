"""``privacy report``: what personal data the bridge holds, per channel account, as input for
the company's record of processing activities (Art. 30 GDPR).

Per account: consent contacts (people with an identity on it), conversations (portals, group
chats included), ghosts (remote users with a Matrix user), messages (the bridge's message
mappings: a message cut into parts counts once per part; the texts themselves are in the
Matrix rooms, on the homeserver), and the date of the oldest of these. Media are not counted:
the bridge keeps no record of which messages carry files (they are in the homeserver's media
repository). Then the suppression list (erased people, kept as keyed hashes) and the privacy
jobs not finished. Admins of every channel account only (it spans them all); each report is
recorded in the audit log."""

from __future__ import annotations

from ...config import Config
from ...db.privacy import Suppression
from ...db.privacy_read import holdings, open_jobs
from ...seams import CommandContext, Services
from .audit import Audit, admin_everywhere, when


class Report:
    def __init__(self, services: Services, config: Config, audit: Audit) -> None:
        self.services = services
        self.config = config
        self.audit = audit

    async def command(self, ctx: CommandContext, words: list[str]) -> str:
        if words:
            return "Usage: privacy report"
        if not admin_everywhere(self.services, self.config, ctx.sender):
            return "Only admins of every channel account may see the report."
        lines = ["Personal data held by the bridge, per channel account:"]
        totals = [0, 0, 0, 0, 0]
        for account in self.config.channels:
            held = await holdings(account)
            oldest = when(held.oldest)[:10] if held.oldest is not None else "none"
            lines.append(
                f"• {account} ({self.services.channel_title(account)}): {held.contacts} contacts,"
                f" {held.conversations} conversations, {held.ghosts} ghosts, {held.messages}"
                f" messages ({held.media} files), oldest item {oldest}"
            )
            for n, value in enumerate(
                (held.contacts, held.conversations, held.ghosts, held.messages, held.media)
            ):
                totals[n] += value
        suppressed = await Suppression.count()
        jobs = await open_jobs()
        lines.append(f"Suppression list (erased people, as keyed hashes): {suppressed} entries")
        pending = ", ".join(f"{n} {kind} {state}" for (kind, state), n in sorted(jobs.items()))
        lines.append(f"Unfinished privacy jobs: {pending or 'none'}")
        lines.append(
            "Message texts and files are kept in the Matrix rooms on the homeserver; the"
            " bridge holds their mappings."
        )
        await self.audit.record(
            ctx.sender,
            "report",
            None,
            {
                "contacts": totals[0], "conversations": totals[1], "ghosts": totals[2],
                "messages": totals[3], "media": totals[4], "suppressed": suppressed,
            },
        )  # fmt: skip
        return "\n".join(lines)
