"""A list's broadcast room: created by the bridge (``broadcast:<list>``, the configured staff
invited), where a staff member's message is a draft or one of the words below.

- any message that is no command (a text, a formatted text, an image or a file): the draft,
  replacing one not yet confirmed; the bridge answers with its recipients per channel. A
  reply (to the draft, to anyone) is staff talking, never a draft.
- ``send``: send the draft now (only its author: a colleague's "looks good" that replaced it
  is refused rather than broadcast); ``send at <time>`` (``18:00``, ``2026-12-24 09:30``, in the
  configured time zone): at that time
- ``pause``, ``resume``, ``cancel``: the list's current broadcast
- ``status``: its counts; ``recipients``: its recipients per status and channel;
  ``recipients failed`` (or any status): up to 50 of them with their reasons

Starting, pausing, resuming and cancelling need a permission level on every channel account
of the list (staff who may not see an account do not broadcast on it)."""

from __future__ import annotations

import datetime
import re
import zoneinfo

from ...db.broadcast import STATUSES, Broadcast
from ...seams import RoomMessage, Services
from .config import BroadcastConfig
from .engine import BroadcastError, Content, Engine

STEERING = ("send", "pause", "resume", "cancel")
_SEND_AT = re.compile(r"^send\s+at\s+(.+)$", re.IGNORECASE)
ACTIONS = ("pause", "resume", "cancel")
_TIME = re.compile(r"^(?:(\d{4})-(\d{2})-(\d{2})[ T])?(\d{1,2}):(\d{2})$")


class NotAllowed(BroadcastError):
    """The sender may not broadcast on every account of the list."""


class BroadcastRooms:
    def __init__(self, engine: Engine, config: BroadcastConfig, services: Services) -> None:
        self.engine = engine
        self.config = config
        self.services = services
        self.rooms: dict[str, str] = {}
        """Room id -> its list."""

    async def ensure(self) -> None:
        """Create (or find) every list's broadcast room."""
        for item in self.config.lists.values():
            room = await self.services.bot_room(
                f"broadcast:{item.name}", f"Broadcast: {item.title}",
                f"Broadcasts to the subscribers of {item.title}: write the message, then "
                "`send`. Also: send at <time>, pause, resume, cancel, status, recipients.",
                list(self.config.staff),
            )  # fmt: skip
            self.rooms[room] = item.name

    async def on_room_message(self, message: RoomMessage) -> bool:
        list_ = self.rooms.get(message.room_id)
        if list_ is None:
            return False
        if message.reply_to is not None:
            return True  # a reply is staff talking about the draft, never the draft itself
        words = message.body.strip()
        lowered = " ".join(words.lower().split())
        is_text = message.media is None and message.msgtype in ("m.text", "m.notice")
        try:
            if is_text and (lowered in STEERING or _SEND_AT.match(words)):
                answer = await self.steer(list_, message.sender, lowered, words)
            elif is_text and (lowered == "status" or lowered.split(" ")[0] == "recipients"):
                answer = await self.look(list_, lowered)
            else:
                answer = await self.draft(list_, message)
        except BroadcastError as e:
            answer = f"⚠️ {e}"
        await self.services.notice(message.room_id, answer, txn=f"broadcast-{message.event_id}")
        return True

    async def draft(self, list_: str, message: RoomMessage) -> str:
        text = message.body
        if message.media is not None and text == message.media.filename:
            text = ""  # a file without a caption (clients put its name in the body)
        content = Content(text, message.html, message.media)
        found = await self.engine.draft(list_, message.room_id, content, message.sender)
        counts = await self.engine.counts(list_)
        per = ", ".join(
            f"{n} on {self.services.channel_title(a)} ({a})" for a, n in counts.items()
        )
        return (
            f"Draft {found.id}: it would go to {sum(counts.values())} recipients ({per}). "
            "Write `send` to send it now, `send at <time>` to schedule it, or a new message "
            "to replace it."
        )

    def room_of(self, list_: str) -> str:
        """The list's broadcast room ("" before it was made)."""
        return next((room for room, name in self.rooms.items() if name == list_), "")

    def may_broadcast(self, list_: str, sender: str) -> None:
        """``NotAllowed`` unless ``sender`` has a level on every account of the list."""
        accounts = self.engine.list(list_).accounts
        refused = [a for a in accounts if self.services.level(sender, a) == "none"]
        if refused:
            raise NotAllowed(f"you may not broadcast on {', '.join(refused)}")

    async def steer(self, list_: str, sender: str, lowered: str, words: str) -> str:
        self.may_broadcast(list_, sender)
        if lowered.startswith("send"):
            at_match = _SEND_AT.match(words)
            at = self.parse_time(at_match.group(1)) if at_match else None
            found = await self.send(list_, sender, at)
            if at is not None:
                when = self.engine.reporter.clock_time(at / 1000)
                return f"Broadcast {found.id} is scheduled for {when}."
            return f"Broadcast {found.id} is starting."
        current = await self.engine.current(list_)
        if current is None:
            raise BroadcastError("no broadcast of this list is scheduled, running or paused")
        await self.control(current, lowered)
        return f"Broadcast {current.id}: {lowered} done."

    async def send(
        self, list_: str, sender: str, at: int | None, draft: Broadcast | None = None
    ) -> Broadcast:
        """Send the list's draft (``draft``, else the latest) now or at ``at``: only its
        author may (``send`` in the room, and the provisioning API)."""
        draft = draft or await Broadcast.latest(list_, ("draft",))
        if draft is None:
            raise BroadcastError("there is no draft: write the message first")
        if draft.created_by != sender:
            # Someone else's message became the draft last: only its author sends it, so
            # "looks good" from a colleague never goes to every subscriber.
            raise BroadcastError(
                f"draft {draft.id} is {draft.created_by}'s: they send it, or write yours"
            )
        return await self.engine.start(draft.id, at)

    async def control(self, found: Broadcast, action: str) -> None:
        """``pause``, ``resume`` or ``cancel`` the broadcast ``found``."""
        done = {
            "pause": self.engine.pause,
            "resume": self.engine.resume,
            "cancel": self.engine.cancel,
        }[action]
        if not await done(found.id):
            raise BroadcastError(f"broadcast {found.id} is {found.state}: cannot {action}")

    async def look(self, list_: str, lowered: str) -> str:
        found = await self.engine.current(list_) or await Broadcast.latest(
            list_, ("done", "cancelled")
        )
        if found is None:
            raise BroadcastError("this list has no broadcast yet")
        if lowered == "status":
            return await self.engine.reporter.status(found)
        parts = lowered.split(" ")
        status = parts[1] if len(parts) > 1 else None
        if len(parts) > 2 or (status is not None and status not in STATUSES):
            raise BroadcastError(f"usage: recipients [{'|'.join(STATUSES)}]")
        return await self.engine.reporter.recipients(found, status)

    def parse_time(self, text: str) -> int:
        """``HH:MM`` (the next such time) or ``YYYY-MM-DD HH:MM``, in the configured zone;
        ms since the epoch."""
        found = _TIME.match(text.strip())
        if found is None:
            raise BroadcastError("a time is HH:MM or YYYY-MM-DD HH:MM")
        zone = zoneinfo.ZoneInfo(self.config.timezone)
        now = datetime.datetime.fromtimestamp(self.engine.clock() / 1000, zone)
        year, month, day, hour, minute = found.groups()
        try:
            if year is None:
                at = now.replace(hour=int(hour), minute=int(minute), second=0, microsecond=0)
                if at <= now:
                    at += datetime.timedelta(days=1)
            else:
                at = datetime.datetime(
                    int(year), int(month), int(day), int(hour), int(minute), tzinfo=zone
                )
        except ValueError as e:
            raise BroadcastError(f"no such time: {e}") from None
        if at <= now:
            raise BroadcastError("that time has passed")
        return int(at.timestamp() * 1000)
