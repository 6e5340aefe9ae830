"""The email double opt-in: asking (from the sign-up form or a mail with a list's keyword) and
the confirmation mail with its signed link; the pages that confirm are ``web``'s.

Asking records a ``requested`` step whose evidence names the confirmation token's id, and
mails the link. Only the latest request can be confirmed: a link confirms while the latest
step of the contact's consent (list, account) is ``requested`` with that token. A consent that
holds already is not asked again (a request would end it: anyone can type an address into a
form), and the form answers the same either way, so it tells nobody whether an address is
known. Nor does it send a fourth mail within an hour to one address for one list
(``FORM_LIMIT``): the form cannot be used to flood a mailbox.

The chat of an address: the email connector makes a contact's conversation the address
itself (lower-cased, as it reads ``From``) in ``contact`` threading, and ``<address>/<message
id>`` per thread otherwise; a mail the bridge starts (a confirmation, a broadcast) goes to the
address, so an identity's chat is the one the connector names for the address
(``Services.chat_for_address``: the lower-cased address).

An address is accepted only when it is ``plausible`` and the email connector names a chat for
it (``deliverable``); a keyword mail from an address it refuses asks nothing (logged): it
never raises out of the hook, which would hold up the conversation's queue.

Keyword by mail (``MailKeywordHook``): a mail on an email account whose first line (the
connector trims quoted history and signatures from ``text``) is, as a whole, a keyword of a
list offered there asks for that list; the link goes as a bridge-initiated message in the
conversation (``Services.send_text``: staff see it), deduplicated by the mail's id. The request
is recorded first, with the mail as its cause: a retried hook records nothing again and queues
nothing new (a crash between the two leaves a request without its mail, which expires; the
customer can write again)."""

from __future__ import annotations

import logging
import re
from typing import Any

from ...config import Config
from ...connector import PermanentDeliveryError
from ...db.consent import ConsentContact, ConsentEvent
from ...events import RemoteMessage
from ...logsafe import pii
from ...seams import DirectMessage, Inbound, Services
from ...types import AccountID
from .config import ConsentList
from .enforce import first_line
from .links import Links
from .registry import Registry

log = logging.getLogger("bridge.consent.mail")

MAX_ADDRESS = 254
FORM = "sign-up form"
FORM_LIMIT = 3
"""Confirmation mails the form sends to one address for one list per hour."""
_PART = r"[^@\s<>,;:\"()\[\]\\\x00-\x1f\x7f\u0085\u2028\u2029]"
_ADDRESS = re.compile(f"{_PART}{{1,64}}@{_PART}{{1,189}}")
_DOMAIN = re.compile(r"[^.@]+(\.[^.@]+)+")


def plausible(address: str) -> bool:
    """An address a mail can go to: bounded, one ``@``, a domain with a dot, no spaces,
    controls (CR, LF) or characters that would break a header."""
    return (
        len(address) <= MAX_ADDRESS
        and _ADDRESS.fullmatch(address) is not None
        and _DOMAIN.fullmatch(address.split("@", 1)[1]) is not None
    )


def confirmation(item: ConsentList, url: str, hours: float) -> str:
    return (
        f"Please confirm that you want to receive: {item.title}\n\n"
        f"What you agree to (version {item.version}):\n{item.text}\n\n"
        f"To confirm, open this link and press the Confirm button:\n{url}\n\n"
        f"The link is valid for {hours:g} hours. If you did not ask for this, ignore this "
        "mail: nothing happens without your confirmation."
    )


class MailOptIn:
    def __init__(
        self, registry: Registry, services: Services, config: Config, links: Links
    ) -> None:
        self.registry = registry
        self.services = services
        self.config = config
        self.options = registry.config
        self.links = links

    def is_mail(self, account: str) -> bool:
        channel = self.config.channels.get(AccountID(account))
        return channel is not None and channel.type == "email"

    def accounts(self, item: ConsentList) -> list[str]:
        """The email accounts ``item`` is offered on."""
        return [a for a in (item.accounts or list(self.config.channels)) if self.is_mail(a)]

    def deliverable(self, account: str, address: str) -> bool:
        """An address the flows accept: ``plausible``, and one the connector of ``account``
        names a chat for (its own rules: the two never disagree)."""
        if not plausible(address):
            return False
        try:
            self.services.chat_for_address(account, address)
        except ValueError:
            return False
        return True

    def chat(self, account: str, address: str) -> str:
        """The chat that reaches ``address`` (an address the connector refuses: permanent)."""
        try:
            return self.services.chat_for_address(account, address)
        except ValueError as e:
            raise PermanentDeliveryError(str(e)) from None

    async def ask(
        self, item: ConsentList, account: str, address: str, evidence: dict[str, Any],
        trigger: str, cause: str | None = None,
    ) -> tuple[int, str, str] | None:  # fmt: skip
        """Record a request; the contact, the link and its token id (None: the consent holds
        already, or ``cause`` was recorded before)."""
        contact = await self.registry.contact_for(
            account, address, chat=self.chat(account, address), create=True
        )
        assert contact is not None
        if (await self.registry.state(contact, item.name, account)).confirmed:
            return None
        url, token_id = self.links.confirm(contact, address, item.name, account)
        evidence = {**evidence, "token": token_id}
        if not await self.registry.request(contact, item.name, account, evidence, trigger, cause):
            return None
        return contact, url, token_id

    async def _flooded(self, item: ConsentList, account: str, address: str) -> bool:
        """The form asked ``address`` for ``item`` ``FORM_LIMIT`` times in the last hour: no
        more mail (the form answers the same), so it cannot flood someone's mailbox."""
        contact = await self.registry.contact_for(account, address)
        if contact is None:
            return False
        since = self.registry.clock() - 3600_000
        members = await ConsentContact.members(await self.registry.root(contact) or contact)
        count = await ConsentEvent.count_requested(members, item.name, account, since, FORM)
        return count >= FORM_LIMIT

    async def subscribe(self, item: ConsentList, account: str, address: str, ip: str | None
                        ) -> None:  # fmt: skip
        """The sign-up form: a request and the confirmation mail, sent now. Raises the
        connector's ``TemporaryDeliveryError`` / ``PermanentDeliveryError``."""
        address = address.lower()
        evidence: dict[str, Any] = {"source": FORM, "address": address}
        if ip is not None and self.options.record_ip:
            evidence["ip"] = ip
        if await self._flooded(item, account, address):
            return
        asked = await self.ask(item, account, address, evidence, FORM)
        if asked is None:
            return
        _, url, token_id = asked
        # The request is recorded before the mail goes. Should sending fail, the form says
        # "try again": a request without its mail is harmless (nothing holds until the link is
        # confirmed; it expires, and the next request supersedes it).
        text = confirmation(item, url, self.options.confirm_hours)
        subject = " ".join(f"Please confirm: {item.title}".split())  # one line, whatever the title
        message = DirectMessage(
            text=text, headers=(("Subject", subject),), key=f"consent-confirm:{token_id}"
        )
        await self.services.send_direct(account, self.chat(account, address), message)


class MailKeywordHook:
    def __init__(self, flow: MailOptIn) -> None:
        self.flow = flow

    async def on_inbound(self, inbound: Inbound) -> None:
        event, ref = inbound.event, inbound.conversation
        if not isinstance(event, RemoteMessage) or event.notice:
            return
        if not self.flow.is_mail(ref.account):
            return
        line = first_line(event.text)
        item = next(
            (i for i in self.flow.options.lists.values()
             if i.offered(ref.account) and i.asked_by(line)),
            None,
        )  # fmt: skip
        address = str(event.sender.id).lower()
        if item is None or not self.flow.deliverable(ref.account, address):
            return
        cause = f"keyword:{ref.chat}:{event.message_id}"
        evidence = {"source": "mail keyword", "message_id": event.message_id, "text": line}
        try:
            asked = await self.flow.ask(
                item, ref.account, address, evidence, f"keyword {line!r} by mail", cause
            )
        except PermanentDeliveryError as error:  # never stall the conversation's queue
            log.warning("A keyword mail on %s asked nothing: %s", ref.account, pii(error))
            return
        if asked is None:
            contact = await self.flow.registry.contact_for(ref.account, address)
            assert contact is not None
            if (await self.flow.registry.state(contact, item.name, ref.account)).confirmed:
                text = f"You are already subscribed to: {item.title}"
                await self.flow.services.send_text(
                    ref, text, reason=f"consent:{item.name}", dedup=cause
                )
            return
        _, url, _ = asked
        text = confirmation(item, url, self.flow.options.confirm_hours)
        await self.flow.services.send_text(ref, text, reason=f"consent:{item.name}", dedup=cause)
