"""The messenger opt-in flows: the consent feature's second inbound hook, and the expiry job.

Asking (Telegram, WhatsApp)
    On a Telegram account, the customer's ``/start <payload>`` (a deep link
    ``t.me/<bot>?start=<payload>``, the connector's ``routing["start"]``) whose payload is a
    list's ``start``; on a WhatsApp account, a whole message that is one of a list's keywords
    (a click-to-chat link ``wa.me/<number>?text=<keyword>`` fills it in). Only a list offered
    on that account counts. The customer becomes a contact (their own action), the ledger
    records ``requested`` (cause: the message, so a retried hook records nothing twice) and
    the customer gets the list's text and version with two reply buttons, ``Yes, subscribe``
    and ``No thanks``, as a bridge-initiated message of the conversation (staff see it).
    Someone whose consent holds already is told so instead.

Answering (the buttons)
    A ``RemoteButtonPress`` of ``consent:yes:<list>`` / ``consent:no:<list>`` records
    ``confirmed`` / ``declined`` (evidence: the press and the message pressed; cause: the
    press) when the contact's latest step of that list on the account is a request younger
    than ``confirm_hours``; the customer gets a short answer. A press on a list no longer
    configured, or after the request expired or was answered, records nothing and is
    answered that the request expired. A retried press records nothing again and queues
    the same answer (same dedup key), which the core keeps to one.

The in-house system (``RemoteConsent``)
    A webhook ``consent`` event names a list, a step (``confirmed``, ``declined``,
    ``withdrawn``) and its proof; the proof needs ``at`` (ms since the epoch, not in the
    future) and ``source``, and a ``text_version`` when given must be the list's. It is
    recorded with the proof as its evidence and the event's ``consent_id`` as its cause; only
    a confirmation makes a new contact. A refused one is logged with the reason (and told in
    the room, when the chat has one); a recorded one is shown in the room.

Blocking (``RemoteBlocked``)
    The customer blocked the bot: every consent on the account is withdrawn
    (``Registry.blocked``); the room, when there is one, hears what was withdrawn.

Expiry (``Expiry``, a periodic job)
    A request still unanswered ``confirm_hours`` after it was made gets ``expired``, read in
    bounded pages of the ledger; the cause is the request, so a rerun records nothing twice."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ...config import Config
from ...db.consent import ConsentEvent
from ...events import (
    Button,
    RemoteBlocked,
    RemoteButtonPress,
    RemoteConsent,
    RemoteMessage,
    consent_proof_problem,
)
from ...seams import ConversationRef, Inbound, Services
from ...types import AccountID
from .config import DEFAULT_LANGUAGE, ConsentList
from .enforce import titles, txn
from .registry import Registry, erased

log = logging.getLogger("bridge.consent")

PREFIX = "consent:"
YES, NO = "yes", "no"
REQUEST_REASON = "consent:request"
WEBHOOK_STEPS = ("confirmed", "declined", "withdrawn")
EXPIRY_PAGE = 500


@dataclass(frozen=True)
class Texts:
    """What the customer reads; the button titles fit every channel (WhatsApp: 20)."""

    yes: str = "Yes, subscribe"
    no: str = "No thanks"
    version: str = "(Consent text version {version})"
    confirmed: str = "Thank you: you are subscribed to {title}. Write {stop} to end it any time."
    declined: str = "All right: you are not subscribed to {title}."
    already: str = "You are subscribed to {title} already. Write {stop} to end it any time."
    expired: str = "This request has expired. Ask again to subscribe."


def buttons(list_: str, texts: Texts = Texts()) -> tuple[Button, Button]:
    return Button(f"{PREFIX}{YES}:{list_}", texts.yes), Button(f"{PREFIX}{NO}:{list_}", texts.no)


def parse_button(button_id: str) -> tuple[str, str] | None:
    """(``yes``/``no``, list) of a consent button's id, else None (another feature's)."""
    if not button_id.startswith(PREFIX):
        return None
    answer, sep, list_ = button_id[len(PREFIX) :].partition(":")
    if not sep or answer not in (YES, NO) or not list_:
        return None
    return answer, list_


class OptInHook:
    def __init__(
        self, registry: Registry, services: Services, config: Config, texts: Texts = Texts()
    ) -> None:
        self.registry = registry
        self.services = services
        self.config = config
        self.lists = registry.config.lists
        self.texts = texts

    def _type(self, account: str) -> str | None:
        channel = self.config.channels.get(AccountID(account))
        return channel.type if channel is not None else None

    async def on_inbound(self, inbound: Inbound) -> None:
        event, ref = inbound.event, inbound.conversation
        if isinstance(event, RemoteMessage):
            await self._asked(ref, event)
        elif isinstance(event, RemoteButtonPress):
            await self._pressed(ref, event)
        elif isinstance(event, RemoteConsent):
            await self._webhook(ref, event)
        elif isinstance(event, RemoteBlocked):
            await self._blocked(ref, event)

    # Asking

    def asked(self, account: str, event: RemoteMessage) -> ConsentList | None:
        """The list the message asks for on ``account``, if any."""
        kind = self._type(account)
        if event.notice or event.attachments or kind not in ("telegram", "whatsapp"):
            return None
        routing = event.metadata.get("routing")
        start = routing.get("start") if isinstance(routing, dict) else None
        for item in self.lists.values():
            if not item.offered(account):
                continue
            if kind == "telegram" and isinstance(start, str) and start == item.start:
                return item
            if kind == "whatsapp" and item.asked_by(event.text):
                return item
        return None

    async def _asked(self, ref: ConversationRef, event: RemoteMessage) -> None:
        item = self.asked(ref.account, event)
        if item is None:
            return
        contact = await self.registry.contact_for(
            ref.account, event.sender.id, chat=ref.chat, create=True
        )
        assert contact is not None
        dedup = f"consent-request:{ref.account}:{ref.chat}:{event.message_id}"
        cause = f"request:{ref.chat}:{event.message_id}"
        if not await ConsentEvent.of_cause(ref.account, cause):  # else: a retry, go on
            state = await self.registry.state(contact, item.name, ref.account)
            if state.confirmed:
                await self._say(ref, self._text(self.texts.already, item), dedup)
                return
        evidence = {"message_id": event.message_id, "chat": ref.chat}
        if self._type(ref.account) == "telegram":
            trigger = f"Telegram deep link {item.start!r} from the customer"
        else:
            trigger = f"keyword {event.text.strip()!r} from the customer"
        await self._ask(ref, contact, item, evidence, trigger, cause, dedup)

    async def _ask(
        self, ref: ConversationRef, contact: int, item: ConsentList, evidence: dict[str, Any],
        trigger: str, cause: str, dedup: str,
    ) -> None:  # fmt: skip
        """Record the request and show the list's text with the two buttons."""
        await self.registry.request(contact, item.name, ref.account, evidence, trigger, cause)
        text = f"{item.text}\n\n{self.texts.version.format(version=item.version)}"
        await self.services.send_text(
            ref, text, reason=f"consent:{item.name}", dedup=dedup,
            buttons=buttons(item.name, self.texts),
        )  # fmt: skip

    # Answering

    async def _pressed(self, ref: ConversationRef, event: RemoteButtonPress) -> None:
        parsed = parse_button(event.button_id)
        if parsed is None:
            return
        answer, name = parsed
        press = event.press_id or f"{event.message_id}:{event.button_id}"
        cause = f"press:{ref.chat}:{press}"
        dedup = f"consent-press:{ref.account}:{ref.chat}:{press}"
        item = self.lists.get(name)
        contact = await self.registry.contact_for(ref.account, event.sender.id)
        if item is None or contact is None or not item.offered(ref.account):
            await self._say(ref, self.texts.expired, dedup)
            return
        done = await ConsentEvent.of_cause(ref.account, cause)
        asked_again = (
            {"message_id": event.message_id, "chat": ref.chat}, "the consent text changed",
            cause, dedup,
        )  # fmt: skip
        if done and done[0].step == "requested":  # a retry of a press that asked again
            await self._ask(ref, contact, item, *asked_again)
            return
        if not done:
            state = await self.registry.state(contact, name, ref.account)
            if state.confirmed:  # "No" on an old question ends nothing: STOP does
                await self._say(ref, self._text(self.texts.already, item), dedup)
                return
            if state.step == "requested" and state.text_hash != item.hash:
                # The text changed since the question: a yes would be to a text never
                # shown. Ask again with the text as it is now.
                await self._ask(ref, contact, item, *asked_again)
                return
            if state.step != "requested" or not self._fresh(state.at):
                await self._say(ref, self.texts.expired, dedup)
                return
            evidence = {"press_id": event.press_id, "message_id": event.message_id,
                        "button": event.button_id}  # fmt: skip
            trigger = f"button {event.title!r} pressed by the customer"
            step = self.registry.confirm if answer == YES else self.registry.decline
            await step(contact, name, ref.account, evidence, trigger, cause)
        text = self.texts.confirmed if answer == YES else self.texts.declined
        await self._say(ref, self._text(text, item), dedup)

    def _text(self, text: str, item: ConsentList) -> str:
        """``text`` with the list's title and the first opt-out keyword filled in."""
        words = self.registry.config.opt_out.keywords
        stop = next(iter(words.get(DEFAULT_LANGUAGE) or next(iter(words.values()))))
        return text.format(title=item.title, stop=stop)

    def _fresh(self, at: int | None) -> bool:
        limit = self.registry.config.confirm_hours * 3600 * 1000
        return at is not None and self.registry.clock() - at <= limit

    async def _say(self, ref: ConversationRef, text: str, dedup: str) -> None:
        await self.services.send_text(ref, text, reason=REQUEST_REASON, dedup=dedup)

    # The in-house system

    def refusal(self, account: str, event: RemoteConsent) -> str | None:
        """Why the consent event cannot be recorded, else None."""
        if not event.consent_id:
            return "the event has no consent_id"
        item = self.lists.get(event.list)
        if item is None:
            return f"there is no consent list {event.list!r}"
        if not item.offered(account):
            return f"the list {event.list!r} is not offered on {account}"
        if event.step not in WEBHOOK_STEPS:
            return f"the step {event.step!r} is none of {', '.join(WEBHOOK_STEPS)}"
        proof = event.proof if isinstance(event.proof, dict) else {}
        problem = consent_proof_problem(event.step, proof, self.registry.clock())
        if problem is not None:  # the connector refused it already; an event from elsewhere
            return f"the proof is not enough: {problem}"
        version = proof.get("text_version")
        if version is not None and str(version) != item.version:
            return f"the proof names text version {version!r}, the list's is {item.version!r}"
        return None

    async def _webhook(self, ref: ConversationRef, event: RemoteConsent) -> None:
        why = self.refusal(ref.account, event)
        if why is None and await erased(ref.account, event.sender.id, ref.chat):
            why = "the person was erased and is not to be contacted again"
        contact = None
        if why is None:
            create = event.step == "confirmed"
            contact = await self.registry.contact_for(
                ref.account, event.sender.id, chat=ref.chat, create=create
            )
            if contact is None:
                why = f"the customer has no consent records on {ref.account}"
        notice = txn("webhook", ref.account, event.consent_id)
        if why is not None or contact is None:
            log.warning("consent %s from %s refused: %s", event.consent_id, ref.account, why)
            if ref.room_id:
                await self.services.notice(
                    ref.room_id, f"⚠️ The in-house system's consent step {event.step!r} "
                    f"({event.consent_id}) was not recorded: {why}.", txn=notice,
                )  # fmt: skip
            return
        cause = f"webhook:{event.consent_id}"
        recorded = await self.registry.step(
            event.step, contact, event.list, ref.account, dict(event.proof),
            f"in-house system {ref.account}", cause,
        )  # fmt: skip
        if not recorded:
            earlier = [e.step for e in await ConsentEvent.of_cause(ref.account, cause)]
            if event.step not in earlier:  # the id was used for another step: not a repeat
                why = f"its consent_id was used before for the step {', '.join(earlier)}"
                log.error("consent %s from %s refused: %s", event.consent_id, ref.account, why)
                if ref.room_id:
                    await self.services.notice(
                        ref.room_id, f"⚠️ The in-house system's consent step {event.step!r} "
                        f"({event.consent_id}) was not recorded: {why}.",
                        txn=txn("webhook-reused", ref.account, event.consent_id, event.step),
                    )  # fmt: skip
                return
        if ref.room_id:
            title = self.lists[event.list].title
            await self.services.notice(
                ref.room_id, f"📋 The in-house system recorded: {title} {event.step} "
                f"({event.consent_id}).", txn=notice,
            )  # fmt: skip

    # Blocking

    async def _blocked(self, ref: ConversationRef, event: RemoteBlocked) -> None:
        at = int(event.timestamp * 1000) if event.timestamp else self.registry.clock()
        evidence: dict[str, Any] = {"block_id": event.block_id, "at": at}
        withdrawn = await self.registry.blocked(ref.account, event.sender.id, evidence)
        if withdrawn and ref.room_id:
            names = titles(self.registry.config, withdrawn)
            await self.services.notice(
                ref.room_id, f"🛑 The customer blocked the bot: consent withdrawn ({names})",
                txn=txn("blocked", ref.account, event.sender.id, event.block_id),
            )  # fmt: skip


class Expiry:
    """The periodic job: ``expired`` for every request unanswered after ``confirm_hours``."""

    def __init__(self, registry: Registry, page: int = EXPIRY_PAGE) -> None:
        self.registry = registry
        self.page = page

    async def run(self) -> None:
        await self.expire()

    async def expire(self) -> int:
        """Expire what is due; returns how many requests expired."""
        hours = self.registry.config.confirm_hours
        before = self.registry.clock() - int(hours * 3600 * 1000)
        after, count = 0, 0
        while True:
            found = await ConsentEvent.open_requests(before, after, self.page)
            if not found:
                return count
            for request in found:
                state = await self.registry.state(request.contact, request.list, request.account)
                if state.step != "requested" or state.at != request.at:
                    continue  # a merged contact's later step answered it
                evidence = {"request": request.id, "requested_at": request.at}
                count += await self.registry.expire(
                    request.contact, request.list, request.account, evidence,
                    f"not confirmed within {hours:g} hours", f"expired:{request.id}",
                )  # fmt: skip
            after = found[-1].id
