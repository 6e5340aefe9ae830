"""Finding a data subject: everything the bridge holds of one person, from any identity of
theirs that staff name.

An identity is written as
- a mail address or a phone number: every channel account whose channel reaches such an address
  (``Services.chat_for_address``) is looked at; all that is found is the same person;
- ``<account>:<remote id>``: a remote user or chat on one channel account (a Telegram user id, a
  webhook sender);
- ``contact:<n>``: a contact of the consent registry;
- a bare remote id: looked for on every account; found on more than one (not linked as one
  contact) it is ambiguous, and the answer lists the ``<account>:<id>`` forms to choose from.

From what matches, the subject grows along the links the bridge knows: a direct chat and the
remote user writing in it, and a consent contact with every identity merged into it. Group
chats are not the person's: their messages there are found by their ghost, but the group's
conversation is no part of the subject."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ...config import Config
from ...db import ConsentContact, ConsentIdentity, Ghost, Portal
from ...db.erasure import direct_links
from ...db.privacy import person_key
from ...seams import Services
from ...types import AccountID

MAX_IDENTITY = 512
_CONTACT = re.compile(r"^(?:contact:|#)(\d{1,18})$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]{4,30}$")
_MAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SubjectError(Exception):
    """The identity names nobody, or more than one person: the message says which, for the
    person who asked."""


@dataclass(frozen=True, order=True)
class Identity:
    """A person on a channel account: the remote user and their direct chat."""

    account: str
    remote_user: str
    chat: str


@dataclass
class Subject:
    asked: str
    """The identity as staff wrote it."""
    identities: list[Identity] = field(default_factory=list)
    conversations: list[Portal] = field(default_factory=list)
    """The person's own conversations (direct chats), with a room or not."""
    ghosts: list[Ghost] = field(default_factory=list)
    contacts: list[int] = field(default_factory=list)
    """Consent contacts: the root and every contact merged into it."""

    def references(self, secret: bytes) -> str:
        """The audit log's name for the person: the keyed hashes of every identity (its remote
        user and its chat: the core names a conversation's customer by the chat)."""
        ids = {(i.account, i.remote_user) for i in self.identities}
        ids |= {(i.account, i.chat) for i in self.identities}
        ids |= {(p.account, p.chat) for p in self.conversations}
        return " ".join(sorted({person_key(secret, "audit", a, r) for a, r in ids}))

    @property
    def accounts(self) -> list[str]:
        return sorted({i.account for i in self.identities})


async def find_subject(text: str, services: Services, config: Config) -> Subject:
    """The subject ``text`` names; ``SubjectError`` for none or more than one person."""
    asked = text.strip()
    if not asked or len(asked) > MAX_IDENTITY:
        raise SubjectError(
            f"Name a person by a phone number, a mail address, an "
            f"<account>:<id> or contact:<n> (at most {MAX_IDENTITY} characters)."
        )
    seeds = await _seeds(asked, services, config)
    if not seeds:
        raise SubjectError(f"The bridge holds nothing of {asked!r}.")
    subject = Subject(asked)
    await _grow(subject, seeds, config)
    if not subject.identities and not subject.conversations and not subject.contacts:
        raise SubjectError(f"The bridge holds nothing of {asked!r}.")
    return subject


async def identity_references(
    text: str, services: Services, config: Config, secret: bytes
) -> list[str]:
    """The audit references an identity may have been recorded under, found also when the
    bridge holds nothing of the person any more (after an erasure)."""
    asked = text.strip()
    try:
        subject = await find_subject(asked, services, config)
        return subject.references(secret).split()
    except SubjectError:
        pass
    refs = []
    for account, remote in _candidates(asked, services, config):
        refs.append(person_key(secret, "audit", account, remote))
    return refs


async def _seeds(asked: str, services: Services, config: Config) -> list[tuple[str, str]]:
    """(account, remote id) pairs the identity matches directly."""
    match = _CONTACT.match(asked)
    if match:
        contact = await ConsentContact.get(int(match.group(1)))
        if contact is None:
            return []
        root = contact.merged_into or contact.id
        return [
            (i.account, i.remote_user)
            for i in await ConsentIdentity.of_contacts(await ConsentContact.members(root))
        ] or [("", f"contact:{root}")]
    found: list[tuple[str, str]] = []
    explicit = _explicit(asked, config)
    candidates = [explicit] if explicit else _candidates(asked, services, config)
    for account, remote in candidates:
        if await _known(account, remote):
            found.append((account, remote))
    if explicit is None and not (_MAIL.match(asked) or _PHONE.match(asked)):
        accounts = {a for a, _ in found}
        if len(accounts) > 1 and not await _one_contact(found):
            forms = ", ".join(f"{a}:{r}" for a, r in sorted(found))
            raise SubjectError(
                f"{asked!r} is known on several channel accounts; name one of: {forms}"
            )
    return found


def _explicit(asked: str, config: Config) -> tuple[str, str] | None:
    account, colon, remote = asked.partition(":")
    if colon and account in config.channels and remote:
        return account, remote
    return None


def _candidates(asked: str, services: Services, config: Config) -> list[tuple[str, str]]:
    explicit = _explicit(asked, config)
    if explicit:
        return [explicit]
    out: list[tuple[str, str]] = []
    for account in config.channels:
        if _MAIL.match(asked) or _PHONE.match(asked):
            try:
                out.append((account, services.chat_for_address(account, asked)))
            except ValueError:
                continue
        else:
            out.append((account, asked))
    return out


async def _known(account: str, remote: str) -> bool:
    return bool(
        await Portal.get(account, remote)
        or await Ghost.get(account, remote)
        or await ConsentIdentity.get(account, remote)
        or await ConsentIdentity.by_chat(account, remote)
    )


async def _one_contact(found: Iterable[tuple[str, str]]) -> bool:
    roots = set()
    for account, remote in found:
        identity = await ConsentIdentity.get(account, remote)
        if identity is None:
            return False
        contact = await ConsentContact.get(identity.contact)
        roots.add(contact.merged_into or contact.id if contact else identity.contact)
    return len(roots) == 1


async def _grow(subject: Subject, seeds: list[tuple[str, str]], config: Config) -> None:
    todo = [s for s in seeds if s[0]]
    if not todo and seeds:  # a contact without identities left
        subject.contacts = await ConsentContact.members(int(seeds[0][1].split(":")[1]))
    seen: set[tuple[str, str]] = set()
    contacts: set[int] = set()
    while todo:
        account, remote = todo.pop()
        if (account, remote) in seen:
            continue
        seen.add((account, remote))
        identities = [i for i in [await ConsentIdentity.get(account, remote)] if i]
        identities += await ConsentIdentity.by_chat(account, remote)
        chat = next((i.chat for i in identities), remote)
        user = next((i.remote_user for i in identities), remote)  # ``remote`` may be the chat
        for writer, direct in await direct_links(account, remote):
            if writer == remote and chat == remote:
                chat = direct  # their direct chat, known from the message mappings only
            elif writer != remote:
                todo.append((account, writer))  # ``remote`` is a direct chat: its writer
        _add_identity(subject, Identity(account, user, chat))
        for portal in await _own_portals(account, chat, config):
            if portal not in subject.conversations:
                subject.conversations.append(portal)
        for ghost_id in {remote, chat}:
            ghost = await Ghost.get(account, ghost_id)
            if ghost is not None and ghost not in subject.ghosts:
                subject.ghosts.append(ghost)
        for identity in identities:
            contact = await ConsentContact.get(identity.contact)
            root = (contact.merged_into or contact.id) if contact else identity.contact
            if root in contacts:
                continue
            members = await ConsentContact.members(root)
            contacts.update(members)
            for other in await ConsentIdentity.of_contacts(members):
                todo.append((other.account, other.remote_user))
                todo.append((other.account, other.chat))
    subject.contacts = sorted(contacts | set(subject.contacts))
    subject.identities.sort()


async def _own_portals(account: str, chat: str, config: Config) -> list[Portal]:
    """The person's own conversations on ``account``: their direct chat, and on a mail
    account every thread of their address (``<address>/<message id>``)."""
    found = [p for p in [await Portal.get(account, chat)] if p is not None]
    channel = config.channels.get(AccountID(account))
    if channel is not None and channel.type == "email" and "/" not in chat:
        found += await Portal.with_prefix(account, f"{chat}/")
    return [p for p in found if not p.is_group]


def _add_identity(subject: Subject, identity: Identity) -> None:
    """One identity per chat; the remote user writing in it rather than the chat itself."""
    for n, known in enumerate(subject.identities):
        if (known.account, known.chat) == (identity.account, identity.chat):
            if known.remote_user == known.chat and identity.remote_user != identity.chat:
                subject.identities[n] = identity
            return
    subject.identities.append(identity)
