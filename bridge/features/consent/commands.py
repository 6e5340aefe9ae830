"""The consent commands.

``consent [contact]``
    The history of a contact in the room: every step of the ledger, when, on which channel,
    of which list, under which text version. Staff with a permission on every channel account
    the contact has an identity on (a person's consents on a channel the sender may not see
    are not shown to them).
``consent proof [contact]``
    A printable HTML document of the same (with the identities, the state of each consent and
    the full consent texts shown), posted into the room as a file. Admins of every channel
    account the contact has an identity on: the document leaves the bridge.
``contact merge <contact> <other>``
    The identities of ``other`` become ``contact``'s (one person on several channels). Admins
    only: it changes whose consents a broadcast sees.

A contact is named by its number (``12`` or ``#12``), by an identity ``account:remote user``,
or, in a conversation's room, left out: the customer of the conversation. When a room has
several contacts (a group chat), the answer lists them to pick one."""

from __future__ import annotations

from datetime import UTC, datetime

from ...config import Config
from ...db.consent import ConsentContact, ConsentEvent, ConsentIdentity, ConsentText
from ...seams import Command, CommandContext, Services
from .proof import proof_html
from .registry import ConsentError, Registry

USAGE = "Usage: consent [contact] | consent proof [contact] (a contact: 12, or account:user)"
MERGE_USAGE = "Usage: contact merge <contact> <other> (a contact: 12, or account:user)"
MAX_LINES = 200


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class ConsentCommands:
    def __init__(self, registry: Registry, config: Config) -> None:
        self.registry = registry
        self.config = config

    def commands(self) -> tuple[Command, ...]:
        return (
            Command("consent", "[proof] [contact]", "staff",
                    "a contact's consent history, or its proof as a printable file",
                    self.consent),
            Command("contact", "merge <contact> <other>", "admin",
                    "link the identities of one person across channels", self.contact),
        )  # fmt: skip

    async def find(self, ctx: CommandContext, words: list[str]) -> int | str:
        """The contact ``words`` name (or the room's customer), else the answer to give."""
        if len(words) > 1:
            return USAGE
        if not words:
            ref = ctx.conversation
            if ref is None:
                return f"Name a contact outside a conversation's room. {USAGE}"
            found: list[int] = []
            for identity in await ConsentIdentity.by_chat(ref.account, ref.chat):
                root = await self.registry.root(identity.contact)
                if root is not None and root not in found:
                    found.append(root)
            if not found:
                return "This conversation's customer has no consent records."
            if len(found) > 1:
                listed = ", ".join(str(c) for c in found)
                return f"This conversation has several contacts ({listed}); name one."
            return found[0]
        return await self.find_word(words[0])

    async def find_word(self, word: str) -> int | str:
        """The contact ``word`` names (a number, an identity), else the answer to give."""
        number = word.removeprefix("#")
        if number.isdigit():
            root = await self.registry.root(int(number))
            return f"There is no contact {number}." if root is None else root
        account, sep, user = word.partition(":")
        if not sep or not user or account not in self.config.channels:
            return f"{word!r} is neither a contact number nor an identity account:user. {USAGE}"
        contact = await self.registry.contact_for(account, user)
        return f"{word} has no consent records." if contact is None else contact

    async def _allowed(self, ctx: CommandContext, contact: int, needed: str) -> str | None:
        return await self.refusal(ctx.services, ctx.sender, contact, needed)

    async def refusal(
        self, services: Services, actor: str, contact: int, needed: str
    ) -> str | None:
        """Why ``actor`` may not see (``staff``) or hand out (``admin``) ``contact``'s
        consents: they need ``needed`` on every account the contact has an identity on."""
        accounts = {i.account for i in await self.registry.identities(contact)}
        for account in sorted(accounts):
            level = services.level(actor, account)
            if level != "admin" and (needed == "admin" or level == "none"):
                return f"You need the {needed} permission on {account} for contact {contact}."
        return None

    async def consent(self, ctx: CommandContext, args: list[str]) -> str:
        proof = bool(args) and args[0].lower() == "proof"
        contact = await self.find(ctx, args[1:] if proof else args)
        if isinstance(contact, str):
            return contact
        refused = await self._allowed(ctx, contact, "admin" if proof else "staff")
        if refused:
            return refused
        identities, events = await self.history(contact)
        if proof:
            return await self._proof(ctx, contact, events)
        lines = [
            f"Contact {contact}: " + ", ".join(f"{i.account}:{i.remote_user}" for i in identities)
        ]
        if not events:
            lines.append("No consent steps recorded.")
        versions: dict[str, str] = {}
        for event in events[-MAX_LINES:]:
            version = await self.version(event.text_hash, versions)
            lines.append(
                f"• {when(event.at)} — {event.account} — {event.list}: {event.step}"
                f"{f' (text {version})' if version else ''} — {event.trigger}"
            )
        if len(events) > MAX_LINES:
            lines.insert(1, f"(the latest {MAX_LINES} of {len(events)} steps)")
        return "\n".join(lines)

    async def history(self, contact: int) -> tuple[list[ConsentIdentity], list[ConsentEvent]]:
        """``contact``'s identities and every step of its ledger, oldest first (``consent``
        and the provisioning API, after ``refusal``)."""
        events = await ConsentEvent.history(await ConsentContact.members(contact))
        return await self.registry.identities(contact), events

    async def version(self, hash_: str | None, known: dict[str, str]) -> str:
        if hash_ is None:
            return ""
        if hash_ not in known:
            text = await ConsentText.get(hash_)
            known[hash_] = f"{text.version}, sha256 {hash_[:12]}" if text else hash_[:12]
        return known[hash_]

    async def _proof(self, ctx: CommandContext, contact: int, events: list[ConsentEvent]) -> str:
        texts = {}
        for event in events:
            if event.text_hash and event.text_hash not in texts:
                text = await ConsentText.get(event.text_hash)
                if text is not None:
                    texts[event.text_hash] = text
        identities = await self.registry.identities(contact)
        data = proof_html(contact, identities, events, texts, self.registry.clock())
        filename = f"consent-proof-contact-{contact}.html"
        posted = await ctx.services.post_file(
            ctx.room_id, data, filename, "text/html", txn=f"consent-proof:{ctx.event_id}"
        )
        if posted is None:
            return "The homeserver refused the file; try again."
        return f"📄 Consent proof of contact {contact}: {filename} ({len(events)} steps)."

    async def contact(self, ctx: CommandContext, args: list[str]) -> str:
        if len(args) != 3 or args[0].lower() != "merge":
            return MERGE_USAGE
        into = await self.find(ctx, [args[1]])
        other = await self.find(ctx, [args[2]])
        for found in (into, other):
            if isinstance(found, str):
                return f"{found} {MERGE_USAGE}"
        assert isinstance(into, int) and isinstance(other, int)
        for found in (into, other):
            refused = await self._allowed(ctx, found, "admin")
            if refused:
                return refused
        try:
            await self.registry.merge(into, other, ctx.sender)
        except ConsentError as e:
            return f"{e}. {MERGE_USAGE}"
        identities = await self.registry.identities(into)
        listed = ", ".join(f"{i.account}:{i.remote_user}" for i in identities)
        return f"🔗 Contact {other} is now part of contact {into}: {listed}"
