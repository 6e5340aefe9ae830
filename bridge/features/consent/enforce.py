"""Opt-out and enforcement: the consent feature's inbound hook and outbound gate.

Opt-out (``OptOutHook``)
    A customer message that is, as a whole, one of the opt-out keywords (trimmed, any case,
    punctuation around it ignored: ``stop!`` counts, ``please stop`` does not; the keywords
    of every language work on every channel) withdraws every consent its sender's identity
    holds on that channel account, at once. The customer gets ONE confirmation (in the
    language of the conversation if the channel tells it, else of the keyword) and the room
    a notice for the staff. The withdrawals carry the message as their cause, so a retried
    hook records nothing twice and queues the same confirmation (same dedup key) and notice
    (same transaction id) again, which the core keeps to one. A keyword with nothing left to
    withdraw (a second STOP, or someone who never consented) sends the customer nothing: the
    room says so, and staff answer as they see fit. On an email account the first non-empty
    line counts (``STOP`` over a mail client's signature withdraws): the same rule as a list's
    keyword by mail, so opting out is never harder than opting in (GDPR Art. 7(3)); the copy of
the whole mail the email connector attaches is no attachment of the customer's.

Enforcement (``ConsentGate``)
    Only messages the bridge starts are checked; staff answering in a conversation need no
    consent. A message whose ``reason`` is ``broadcast:<list>`` (or ``broadcast:<list>:...``)
    needs a consent to that list that holds on the conversation's channel account. A template
    to a chat whose customer never wrote (no message of theirs was ever bridged) needs, under
    the account's ``strict`` policy (the default), a consent to some list on that channel.
    Refusals name what is missing; the core shows them as a failed delivery."""

from __future__ import annotations

import hashlib

from ...config import Config
from ...db import Conversation, Message
from ...db.consent import ConsentIdentity
from ...db.conversation import BUSINESS_STARTED
from ...events import RemoteMessage
from ...seams import PASS, Inbound, Origin, Outgoing, Refuse, Services, Verdict
from ...types import AccountID
from .config import ConsentConfig, TemplatePolicy
from .registry import Registry

BROADCAST = "broadcast:"
OPT_OUT_REASON = "consent:opt-out"


def txn(*parts: object) -> str:
    key = "\x00".join(str(part) for part in parts)
    return "consent-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def titles(config: ConsentConfig, lists: list[str]) -> str:
    return ", ".join(config.lists[n].title if n in config.lists else n for n in lists)


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _attached(event: RemoteMessage) -> bool:
    """The message carries files: not a keyword. The email connector's copy of the whole mail
    (``original``) is no file the customer attached."""
    return any(not a.extra.get("original") for a in event.attachments)


class OptOutHook:
    def __init__(
        self, registry: Registry, services: Services, bridge: Config | None = None
    ) -> None:
        self.registry = registry
        self.services = services
        self.config = registry.config
        self.bridge = bridge

    def said(self, account: str, text: str) -> str:
        """What a message says as a keyword: on an email account its first non-empty line."""
        channel = self.bridge.channels.get(AccountID(account)) if self.bridge else None
        return first_line(text) if channel is not None and channel.type == "email" else text

    async def on_inbound(self, inbound: Inbound) -> None:
        event, ref = inbound.event, inbound.conversation
        if not isinstance(event, RemoteMessage) or event.notice or _attached(event):
            return
        word = self.said(ref.account, event.text).strip()
        language = self.config.opt_out.match(word)
        if language is None:
            return
        contact = await self.registry.contact_for(ref.account, event.sender.id)
        cause = f"opt-out:{ref.chat}:{event.message_id}"
        withdrawn: list[str] = []
        if contact is not None:
            evidence = {"message_id": event.message_id, "chat": ref.chat, "text": word}
            withdrawn = await self.registry.withdraw_all(
                contact, ref.account, f"opt-out keyword {word!r} from the customer", evidence,
                cause,
            )  # fmt: skip
        notice_txn = txn("opt-out", ref.account, ref.chat, event.message_id)
        if not withdrawn:
            if ref.room_id:
                await self.services.notice(
                    ref.room_id,
                    f"🛑 The customer wrote {word!r}: there is no consent to withdraw on this "
                    "channel, so no confirmation was sent.",
                    txn=notice_txn,
                )
            return
        routing = event.metadata.get("routing")
        said = routing.get("language") if isinstance(routing, dict) else None
        text = self.config.opt_out.confirm(said if isinstance(said, str) else language)
        names = titles(self.config, withdrawn)
        await self.services.send_text(
            ref, text.replace("{lists}", names), reason=OPT_OUT_REASON, dedup=cause
        )
        if ref.room_id:
            await self.services.notice(
                ref.room_id, f"🛑 The customer withdrew consent: {names}", txn=notice_txn
            )


async def customer_wrote(account: str, chat: str) -> bool:
    """A message of the customer was ever bridged in this conversation."""
    conversation = await Conversation.get(account, chat)
    if conversation is not None and conversation.first_message not in (None, BUSINESS_STARTED):
        return True
    return await Message.last_in_chat(account, chat, remote=True) is not None


class ConsentGate:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.config = registry.config

    async def _contacts(self, account: str, chat: str) -> list[int]:
        found = []
        for identity in await ConsentIdentity.by_chat(account, chat):
            root = await self.registry.root(identity.contact)
            if root is not None and root not in found:
                found.append(root)
        return found

    async def check(self, outgoing: Outgoing) -> Verdict:
        if outgoing.origin != Origin.BRIDGE:
            return PASS
        ref = outgoing.conversation
        if outgoing.reason.startswith(BROADCAST):
            list_ = outgoing.reason[len(BROADCAST) :].split(":", 1)[0]
            for contact in await self._contacts(ref.account, ref.chat):
                if (await self.registry.state(contact, list_, ref.account)).confirmed:
                    return PASS
            return Refuse(
                f"no consent: the customer has not confirmed the list {list_!r} on "
                f"{ref.account}, so the broadcast was not sent to them"
            )
        if outgoing.template is None:
            return PASS
        if self.config.policy(ref.account) == TemplatePolicy.LENIENT:
            return PASS
        if await customer_wrote(ref.account, ref.chat):
            return PASS
        for contact in await self._contacts(ref.account, ref.chat):
            if await self.registry.any_confirmed(contact, ref.account):
                return PASS
        return Refuse(
            f"no consent: this customer never wrote on {ref.account} and has confirmed no "
            "consent there; a template to them needs one (features.consent.templates: strict)"
        )
