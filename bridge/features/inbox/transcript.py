"""Transcripts: a conversation as a readable HTML document, for the staff or for the customer.

``transcript`` (sent in a conversation's room by a member or lead of its team, or an admin)
posts ``transcript-<customer>-<date>.html`` into the room: the staff view, with everything
the room holds: the customer's messages, what was sent to them, internal notes (marked as
such), staff messages that did not go out, and the bridge's notices. A Matrix bot user that
has the staff permission and is a member of the team runs it like anyone else: a
minute-taker bot needs nothing more.

``transcript mail`` sends the customer view to the customer, in a conversation of an email
account, as a bridge-initiated message (reason ``transcript``): the HTML document with a
plain-text alternative, once per command (a repeated command event queues nothing). The
customer view holds only what crossed the bridge, told by the message mapping: the customer's
own messages and those delivered to them. A message without a mapping (an internal note, a
refused or undelivered message, a command, a notice of the bridge) is never in it, whatever
its text says. It names neither the channel account nor the team.

Other channels get no transcript by mail: the core can open a conversation towards a new
remote chat only for channels whose connector turns an address into a chat (templates), and
an email conversation needs a contact the customer wrote from first, so ``transcript mail
<address>`` is answered with that.

Bounds: the newest ``HISTORY_CAP`` events of the room are read; the document keeps the newest
messages that fit in ``MAX_DOCUMENT`` bytes, the mail's plain-text part those that fit in one
Matrix event (the room shows it). The answer says when something was left out.

Everything that came from someone (names, texts, file names) is escaped; files are named, not
embedded. Times are in the team's timezone (of its business hours; UTC without).

HTML only, no PDF: the well-kept HTML-to-PDF renderer (WeasyPrint) needs Pango and HarfBuzz
from the system, and the pure-Python ones (fpdf2, xhtml2pdf) render a small part of CSS and
need fonts shipped for scripts beyond Latin-1; every browser prints the HTML to PDF."""

from __future__ import annotations

import enum
import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo

from ...config import Config
from ...db import Message, Portal
from ...seams import Command, CommandContext, ConversationRef, HistoryEntry
from .assignment import now_ms
from .desk import Desk
from .figures import instant
from .gates import is_note

HISTORY_CAP = 5000
"""Events of the room read at most."""
MAX_DOCUMENT = 1_000_000
"""Bytes of HTML a transcript may take."""
MAX_PLAIN_JSON = 40_000
"""Bytes of JSON the mail's plain-text part may take: the room shows it in one event."""
USAGE = "Usage: transcript (post it here) | transcript mail (send it to the customer)"
NO_MAIL = (
    "Only conversations on an email account can get a transcript by mail: the bridge cannot"
    " start a mail conversation towards another address. `transcript` posts it here."
)
OWN_ADDRESS = (
    "`transcript mail` sends the transcript to this conversation's customer; the bridge cannot"
    " start a mail conversation towards another address."
)
_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")
STYLE = (
    "body{font-family:sans-serif;max-width:50em;margin:2em auto;color:#222}"
    "h1{font-size:1.4em}h2{font-size:1.05em;border-bottom:1px solid #ccc;margin-top:1.5em}"
    ".meta{color:#666}.cut{background:#fff3cd;padding:.5em}"
    ".msg{margin:.6em 0;padding:.3em .6em;border-left:3px solid #9ab}"
    ".customer{border-color:#4a8}.note{border-color:#e0a000;background:#fff8e1}"
    ".notice,.unsent{border-color:#bbb;color:#555}"
    ".time{color:#888}.who{font-weight:bold}.tag{font-size:.85em;color:#a60}"
    ".text{white-space:pre-wrap;overflow-wrap:anywhere}"
)


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    """A message of the customer (bridged from the remote side)."""
    SENT = "sent"
    """Delivered to the customer: a staff message or one the bridge started."""
    NOTE = "note"
    """An internal note (never sent)."""
    UNSENT = "unsent"
    """Any other staff message that did not go to the customer (a command, a refused one)."""
    NOTICE = "notice"
    """The bridge's notice to staff."""


TAGS = {
    Role.NOTE: "internal note",
    Role.UNSENT: "not sent to the customer",
    Role.NOTICE: "bridge notice",
}


@dataclass(frozen=True)
class Line:
    """One message of a transcript."""

    when: datetime
    who: str
    role: Role
    text: str
    filename: str | None = None
    edited: bool = False
    emote: bool = False


@dataclass(frozen=True)
class Heading:
    title: str
    zone: tzinfo
    made: datetime
    account: str | None = None
    """Named in the staff view only (as the team)."""
    team: str | None = None
    history_cut: bool = False
    """The room's history was longer than ``HISTORY_CAP``."""


def clean(text: str) -> str:
    """``text`` without control characters and lone surrogates (not valid in a document)."""
    return _UNSAFE.sub("\ufffd", text)


def lines(
    entries: Iterable[HistoryEntry],
    crossed: dict[str, str | None],
    bot: str,
    zone: tzinfo,
    *,
    customer: bool,
) -> list[Line]:
    """The transcript's messages, oldest first. ``crossed`` is ``Message.crossed`` of the
    entries: in the customer view (``customer``) nothing else is shown. An edit changes the
    text of its sender's own message (in the customer view only the customer's own)."""
    found: dict[str, int] = {}
    senders: dict[str, str] = {}
    out: list[Line] = []
    for entry in entries:
        if entry.replaces is not None:
            at = found.get(entry.replaces)
            if at is None or senders[entry.replaces] != entry.sender:
                continue
            if customer and out[at].role != Role.CUSTOMER:
                continue
            out[at] = replace(out[at], text=entry.body, edited=True)
            continue
        role = _role(entry, crossed, bot)
        if customer and role not in (Role.CUSTOMER, Role.SENT):
            continue
        found[entry.event_id], senders[entry.event_id] = len(out), entry.sender
        filename = entry.filename
        text = "" if filename is not None and entry.body == filename else entry.body
        out.append(
            Line(
                instant(entry.timestamp).astimezone(zone), entry.sender_name, role, text,
                filename, emote=entry.msgtype == "m.emote",
            )
        )  # fmt: skip
    return out


def _role(entry: HistoryEntry, crossed: dict[str, str | None], bot: str) -> Role:
    if entry.event_id in crossed:
        return Role.SENT if crossed[entry.event_id] is None else Role.CUSTOMER
    if entry.sender == bot:
        return Role.NOTICE
    return Role.NOTE if is_note(entry.body) else Role.UNSENT


def _e(text: str) -> str:
    return html.escape(clean(text), quote=True)


def _line_html(line: Line) -> str:
    tag = TAGS.get(line.role)
    parts = [
        f'<div class="msg {line.role.value}">',
        f'<span class="time">{line.when:%H:%M}</span> ',
        f'<span class="who">{_e(line.who)}</span>',
    ]
    if tag:
        parts.append(f' <span class="tag">({tag})</span>')
    if line.edited:
        parts.append(' <span class="tag">(edited)</span>')
    if line.filename is not None:
        parts.append(f'<div class="file">📎 {_e(line.filename)}</div>')
    if line.text:
        text = f"* {line.who} {line.text}" if line.emote else line.text
        parts.append(f'<div class="text">{_e(text)}</div>')
    parts.append("</div>\n")
    return "".join(parts)


def _newest_that_fit(blocks: list[str], budget: int, size: int = 0) -> int:
    """How many of ``blocks`` (oldest first) are left out so that the rest, the newest, take
    at most ``budget`` bytes."""
    keep = 0
    for block in reversed(blocks):
        size += len(block.encode())
        if size > budget:
            break
        keep += 1
    return len(blocks) - keep


def render_html(
    heading: Heading, messages: list[Line], limit: int = MAX_DOCUMENT
) -> tuple[str, int]:
    """The HTML document, and how many of the earliest messages were left out to stay within
    ``limit`` bytes."""
    blocks: list[str] = []
    day = None
    for line in messages:
        # A day heading travels with the first message of its day.
        head = ""
        if line.when.date() != day:
            day = line.when.date()
            head = f"<h2>{day.isoformat()}</h2>\n"
        blocks.append(head + _line_html(line))
    top = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>Transcript: {_e(heading.title)}</title><style>{STYLE}</style></head><body>\n",
        f"<h1>Transcript: {_e(heading.title)}</h1>\n",
    ]
    facts = []
    if heading.account is not None:
        facts.append(f"Account {_e(heading.account)}")
    if heading.team is not None:
        facts.append(f"team {_e(heading.team)}")
    facts.append(f"times in {_e(str(heading.zone))}")
    if messages:
        facts.append(f"{messages[0].when:%Y-%m-%d %H:%M} to {messages[-1].when:%Y-%m-%d %H:%M}")
    facts.append(f"made {heading.made:%Y-%m-%d %H:%M}")
    top.append(f'<p class="meta">{" · ".join(facts)}</p>\n')
    bottom = "</body></html>\n"
    notice_room = 300
    budget = limit - len("".join(top).encode()) - len(bottom) - notice_room
    left_out = _newest_that_fit(blocks, budget)
    if left_out or heading.history_cut:
        top.append('<p class="cut">The earliest messages of this conversation are left out.</p>\n')
    if not messages:
        top.append("<p>No messages.</p>\n")
    # A day heading lost with its first message is given back to the first one kept.
    kept = blocks[left_out:]
    if kept and left_out and not kept[0].startswith("<h2>"):
        kept[0] = f"<h2>{messages[left_out].when.date().isoformat()}</h2>\n" + kept[0]
    return "".join([*top, *kept, bottom]), left_out


def render_text(heading: Heading, messages: list[Line], limit: int = MAX_PLAIN_JSON) -> str:
    """The plain-text version of the customer's transcript: the newest messages whose JSON
    takes at most ``limit`` bytes."""
    rows = []
    for line in messages:
        who = f"* {line.who}" if line.emote else f"{line.who}:"
        text = " ".join(p for p in (f"[{line.filename}]" if line.filename else "", line.text) if p)
        rows.append(clean(f"{line.when:%Y-%m-%d %H:%M} {who} {text}\n"))
    top = clean(f"Transcript: {heading.title} (times in {heading.zone})\n\n")
    cut_note = "(Earlier messages are in the HTML version of this mail.)\n"
    sizes = [len(json.dumps(r)) - 2 for r in rows]
    budget = limit - len(json.dumps(top)) - len(json.dumps(cut_note))
    keep, size = 0, 0
    for n in reversed(sizes):
        size += n
        if size > budget:
            break
        keep += 1
    cut = len(rows) - keep
    return top + (cut_note if cut or heading.history_cut else "") + "".join(rows[cut:])


def file_name(customer: str, made: datetime) -> str:
    slug = _SLUG.sub("-", customer).strip("-.")[:40] or "conversation"
    return f"transcript-{slug}-{made:%Y-%m-%d}.html"


class Transcripts:
    def __init__(self, desk: Desk, config: Config) -> None:
        self.desk = desk
        self.config = config

    def command(self) -> Command:
        return Command(
            "transcript", "[mail]", "staff",
            "this conversation as a document, here or mailed to the customer", self.run,
        )  # fmt: skip

    async def run(self, ctx: CommandContext, args: list[str]) -> str:
        if len(args) > 2 or (args and args[0].lower() != "mail"):
            return USAGE
        mail = bool(args)
        row = await self.desk.target(ctx.conversation, ctx.sender)
        if isinstance(row, str):
            return row
        ref = ctx.conversation
        assert ref is not None and ref.room_id is not None
        channel = self.config.channels.get(ref.account)
        if mail and (channel is None or channel.type != "email"):
            return NO_MAIL
        if len(args) == 2:
            return OWN_ADDRESS
        zone = self.desk.zone(row.team)
        history = await ctx.services.history(ref.room_id, limit=HISTORY_CAP)
        entries = history.entries
        crossed = await Message.crossed(ref.room_id, [e.event_id for e in entries])
        portal = await Portal.get(ref.account, ref.chat)
        customer = (portal.name if portal and portal.name else None) or ref.chat
        made = instant(now_ms()).astimezone(zone)
        messages = lines(entries, crossed, self.config.bot_mxid, zone, customer=mail)
        if mail:
            heading = Heading(customer, zone, made, history_cut=not history.complete)
            return await self._mail(ctx, ref, heading, messages)
        heading = Heading(
            customer, zone, made, ref.account, row.team, history_cut=not history.complete
        )
        document, left_out = render_html(heading, messages)
        name = file_name(customer, made)
        posted = await ctx.services.post_file(
            ref.room_id, document.encode(), name, "text/html", txn=f"transcript:{ctx.event_id}"
        )
        if posted is None:
            return "The transcript could not be posted: the homeserver refused the file."
        return f"📄 Transcript posted as {name}: {len(messages) - left_out} messages." + _cut(
            left_out, history.complete
        )

    async def _mail(
        self, ctx: CommandContext, ref: ConversationRef, heading: Heading, messages: list[Line]
    ) -> str:
        document, left_out = render_html(heading, messages)
        text = render_text(heading, messages[left_out:])
        queued = await ctx.services.send_text(
            ref, text, reason="transcript", dedup=f"transcript:{ctx.event_id}", html=document
        )
        if not queued:
            return "This transcript was queued already."
        shown = len(messages) - left_out
        return (
            f"📧 The transcript ({shown} messages the customer saw, no notes) goes to the"
            " customer by mail; the room shows it once it went out."
            + _cut(left_out, not heading.history_cut)
        )


def _cut(left_out: int, complete: bool) -> str:
    if left_out:
        return f" The earliest {left_out} messages are left out (over {MAX_DOCUMENT:,} bytes)."
    if not complete:
        return f" Only the newest {HISTORY_CAP:,} events of the room were read."
    return ""
