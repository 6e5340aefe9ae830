"""The inbox's outbound gates for staff messages: internal notes and canned replies.

Internal notes
    A staff message whose text, after the sender prefix, starts with ``//`` or ``note:``
    (any case, leading spaces ignored) is a note: it stays in the portal room (``Internal``)
    and never reaches the customer. Two markers: ``//`` is quick to type, ``note:`` reads
    plainly and survives a client that takes a leading slash for one of its commands. The
    price: a message meant for the customer cannot start with either (write "Please note:
    ..." instead).
    Notes are a prefix rather than Matrix threads because every client can type a prefix and
    a thread reply that a client sends as a plain message would leak. Edits and captions are
    checked the same way; an emote (``/me``) is never a note.

Canned replies
    A staff message that is, after the prefix, exactly a short form (``!thanks``, see
    ``canned``) is rewritten to the prefix and the reply's text with ``{customer}`` (the
    portal's name, empty if it has none), ``{agent}`` (the sender's name in the room) and
    ``{team}`` filled in. The sender's own reply of that code wins over the team's; an
    unknown code is refused so that a typo never reaches the customer. Only in conversations
    of the inbox (those with a team).

The sender prefix comes from ``portals.sender_prefix_template`` (``{displayname}: `` by
default). Display names may contain the template's own separator, so every place in the
first line where the prefix could end is tried: a note is recognised even then (a false
"note" keeps a message in Matrix, a missed one leaks it)."""

from __future__ import annotations

from collections.abc import Iterator

from ...db import InboxConversation, Portal
from ...seams import PASS, Internal, Origin, Outgoing, Refuse, Rewrite, Services, Verdict
from .canned import expand, short_code
from .canned_commands import find_canned
from .config import InboxConfig

DEFAULT_PREFIX = "{displayname}: "
NOTE_MARKERS = ("//", "note:")
MAX_NAME = 512
"""How far into the text a display name in the prefix may reach."""


def split_prefix(text: str, sender: str, template: str = DEFAULT_PREFIX) -> Iterator[str]:
    """Each way ``text`` may be a sender prefix (of ``template``) and a body: the bodies,
    the one without a prefix first."""
    yield text
    head_template, found, tail_template = template.partition("{displayname}")
    try:
        head = head_template.format(mxid=sender)
        tail = tail_template.format(mxid=sender, displayname="")
    except (KeyError, IndexError, ValueError):
        return
    if not found:
        if head and text.startswith(head):
            yield text[len(head) :]
        return
    if not text.startswith(head):
        return
    start = len(head)
    line_end = text.find("\n", start)
    end = min(len(text) if line_end < 0 else line_end, start + MAX_NAME)
    for i in range(start, end + 1):
        if text.startswith(tail, i):
            yield text[i + len(tail) :]


def is_note(body: str) -> bool:
    return body.lstrip().lower().startswith(NOTE_MARKERS)


class NoteGate:
    def __init__(self, prefix_template: str = DEFAULT_PREFIX) -> None:
        self.prefix_template = prefix_template

    async def check(self, outgoing: Outgoing) -> Verdict:
        if outgoing.origin != Origin.STAFF:
            return PASS
        bodies = split_prefix(outgoing.text, outgoing.sender, self.prefix_template)
        return Internal() if any(is_note(body) for body in bodies) else PASS


class CannedGate:
    def __init__(
        self, services: Services, config: InboxConfig, prefix_template: str = DEFAULT_PREFIX
    ) -> None:
        self.services = services
        self.config = config
        self.prefix_template = prefix_template

    async def check(self, outgoing: Outgoing) -> Verdict:
        if outgoing.origin != Origin.STAFF:
            return PASS
        text = outgoing.text
        for body in split_prefix(text, outgoing.sender, self.prefix_template):
            code = short_code(body)
            if code is not None:
                return await self._expand(outgoing, text[: len(text) - len(body)], code)
        return PASS

    async def _expand(self, outgoing: Outgoing, prefix: str, code: str) -> Verdict:
        ref = outgoing.conversation
        conversation = await InboxConversation.get(ref.account, ref.chat)
        if conversation is None:
            return PASS  # not a conversation of the inbox
        team = conversation.team
        canned = await find_canned(self.config, code, team=team, sender=outgoing.sender)
        if canned is None:
            return Refuse(f"no canned reply !{code}; see canned list")
        portal = await Portal.get(ref.account, ref.chat)
        agent = (
            await self.services.displayname(ref.room_id, outgoing.sender)
            if ref.room_id
            else outgoing.sender
        )
        customer = portal.name if portal is not None and portal.name else ""
        text = expand(canned, customer=customer, agent=agent, team=team)
        return Rewrite(prefix + text, None)
