"""``privacy export <identity>``: everything the bridge holds of a person, as one zip archive
for the admin who asked (Art. 15 and, machine-readable, Art. 20 GDPR).

The archive holds
- ``export.json``: the machine-readable export (``schema`` / ``schema_version`` name its form):
  the person's identities, their profile as the bridge knows it (the ghosts' display names and
  avatars), their consent contacts with the consent ledger and the consent texts they were
  shown (by hash), and every conversation of theirs (account, chat, channel, room, name,
  created, the inbox's status) with every message of its room in both directions;
- ``index.html``: the same, readable in a browser (``exporthtml.py``);
- ``README.txt``: what the archive is and what the fields mean;
- ``media/<n>-<filename>``: the files of the messages, as long as they fit in
  ``max_export_mb`` together; those past it are listed as left out (with the reason).

A message is read from the room's timeline (``Services.timeline``) and told apart by the
bridge's message mapping: ``customer`` (bridged from the person), ``staff`` (a staff member's
message that went to them; ``staff`` names who wrote it, with the display name in the room),
``bridge`` (one the bridge started: a template, an automatic reply, a broadcast; posted by the
bot). Edits are listed under the message they change (the newest one gives its ``text``),
reactions with it; a redacted message keeps its place, marked, without content.

What the bridge knows of delivery (``delivery.status``): ``received`` for the person's own
messages; ``sent`` when the channel accepted a message (the mapping holds its remote id and
time); ``failed`` when the bridge told the room it was not delivered (the reason is given);
``not sent`` for anything else. Read and delivery receipts of the person are shown in Matrix as
read markers of their ghost and are not stored by the bridge: they are not in the export.

Internal messages, that never went to the person, are left out unless the setting
``features.privacy.export_notes`` is true: internal notes (staff messages starting with ``//``
or ``note:``, kept in Matrix by the inbox), other staff messages that did not go out (a command,
a refused message), and the bridge's notices in the room. A staff message whose delivery
failed is always included (it was meant for the person). Either way ``notes_included`` says
which it was.

The archive is posted only into the asking admin's direct room with the bot
(``privacy-<admin>``, created once), never into a conversation's room, once per command
(the command's event id makes the upload's transaction id). It is built in a temporary file;
the media in it are bounded by ``max_export_bytes``. Who may: an admin of every channel
account the person has an identity on. Each export is recorded in the audit log (counts and
size, the person named by hashes only)."""

from __future__ import annotations

import json
import logging
import re
import tempfile
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from ...config import Config
from ...db import (
    ConsentContact,
    ConsentEvent,
    ConsentText,
    Ghost,
    InboxConversation,
    Message,
    Portal,
)
from ...db.privacy_read import mappings
from ...seams import CommandContext, Services, TimelineEvent
from ...seams_api import ApiError
from ..inbox.gates import is_note
from .audit import Audit, admin_everywhere
from .config import PrivacyConfig
from .exporthtml import readme, render_html
from .subject import Subject, SubjectError, find_subject

log = logging.getLogger("bridge.privacy.export")

SCHEMA = "matrix-bridge-privacy-export"
SCHEMA_VERSION = 1
TIMELINE_LIMIT = 20_000
"""Events of a conversation's room read at most (the export says when it was cut)."""
FILE_TYPES = ("m.file", "m.image", "m.video", "m.audio")
FAILED = "⚠️ Not delivered: "
ROOM_NAME = "Data protection"
ROOM_TOPIC = "Exports of personal data you asked the bridge for. Keep this room to yourself."
USAGE = "Usage: privacy export <identity> (a phone number, a mail address, <account>:<id>, …)"
_UNSAFE_NAME = re.compile(r"[^\w.+-]+")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def safe_filename(name: str) -> str:
    """A file name for the archive: no directories, no control characters, not empty."""
    cleaned = _UNSAFE_NAME.sub("_", name.rsplit("/", 1)[-1]).strip("._")[:80]
    return cleaned or "file"


@dataclass
class Media:
    """The archive's media part: files added while they fit in ``limit`` bytes."""

    archive: zipfile.ZipFile
    download: Callable[[str, int, dict[str, Any] | None], Awaitable[bytes]]
    limit: int
    used: int = 0
    count: int = 0
    left_out: list[dict[str, Any]] = field(default_factory=list)

    async def add(
        self,
        url: str | None,
        name: str,
        size: Any,
        event_id: str,
        file: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The file's entry for ``export.json``, with ``path`` when it is in the archive
        (``file``: the ``EncryptedFile`` of a file sent in an encrypted room)."""
        entry: dict[str, Any] = {"name": name, "path": None}
        if isinstance(size, int) and not isinstance(size, bool):
            entry["size"] = size
        reason = None
        if url is None:
            reason = "the file has no address"
        elif isinstance(size, int) and size > self.limit - self.used:
            reason = "past the export's size limit"
        else:
            try:
                data = await self.download(url, self.limit - self.used, file)
            except ValueError:
                reason = "past the export's size limit"
            except Exception as e:  # the homeserver lost it, refused it, timed out
                log.warning("A file of %s could not be downloaded: %s", event_id, e)
                reason = "could not be downloaded"
            else:
                self.count += 1
                path = f"media/{self.count}-{safe_filename(name)}"
                self.archive.writestr(path, data, zipfile.ZIP_STORED)
                self.used += len(data)
                entry.update(path=path, size=len(data))
        if reason is not None:
            entry["left_out"] = reason
            self.left_out.append({"event_id": event_id, "name": name, "reason": reason})
        return entry


@dataclass
class Room:
    """What classifying a room's messages needs: the bot, the person's ghosts, the mapping."""

    room_id: str
    bot: str
    ghosts: set[str]
    mapped: dict[str, Message]
    names: Callable[[str], Awaitable[str]]
    notes: bool


async def messages(
    room: Room, events: list[TimelineEvent], media: Media
) -> tuple[list[dict[str, Any]], int]:
    """The messages of a room for the export, oldest first, and how many internal ones were
    left out."""
    edits: dict[str, list[TimelineEvent]] = {}
    reactions: dict[str, list[TimelineEvent]] = {}
    failures: dict[str, str] = {}
    for event in events:
        relates = event.content.get("m.relates_to")
        relates = relates if isinstance(relates, dict) else {}
        target = relates.get("event_id")
        if event.type == "m.reaction" and isinstance(target, str):
            reactions.setdefault(target, []).append(event)
        elif relates.get("rel_type") == "m.replace" and isinstance(target, str):
            edits.setdefault(target, []).append(event)
        elif event.sender == room.bot and _text(event.content).startswith(FAILED):
            reply = relates.get("m.in_reply_to")
            if isinstance(reply, dict) and isinstance(reply.get("event_id"), str):
                failures[reply["event_id"]] = _text(event.content).removeprefix(FAILED)
    out: list[dict[str, Any]] = []
    left_out = 0
    for event in events:
        if event.type != "m.room.message" or _is_edit(event):
            continue
        item = await _message(room, event, failures, media)
        if item is None:
            left_out += 1
            continue
        own = [e for e in edits.get(event.event_id, []) if e.sender == event.sender]
        item["edits"] = [_edit(e) for e in own]
        if own and not event.redacted:
            item["original_text"], item["text"] = item["text"], item["edits"][-1]["text"]
        item["reactions"] = [
            {"sender": r.sender, "key": _str(r.content.get("m.relates_to", {}).get("key")),
             "time": iso(r.timestamp), "time_ms": r.timestamp}
            for r in reactions.get(event.event_id, []) if not r.redacted
        ]  # fmt: skip
        out.append(item)
    return out, left_out


def _is_edit(event: TimelineEvent) -> bool:
    relates = event.content.get("m.relates_to")
    return isinstance(relates, dict) and relates.get("rel_type") == "m.replace"


async def _message(
    room: Room, event: TimelineEvent, failures: dict[str, str], media: Media
) -> dict[str, Any] | None:
    mapping = room.mapped.get(event.event_id)
    staff: str | None = None
    if (mapping is not None and mapping.sender is not None) or event.sender in room.ghosts:
        direction, kind, status = "customer", "message", "received"
    elif mapping is not None:
        direction, kind, status = (
            "bridge" if event.sender == room.bot else "staff",
            "message",
            "sent",
        )
        staff = mapping.sender_mxid if mapping.sender_mxid != room.bot else None
    elif event.event_id in failures:
        direction, kind, status = "staff", "message", "failed"
        staff = event.sender
    elif event.sender == room.bot:
        direction, kind, status = "bridge", "notice", "not sent"
    else:
        note = is_note(_text(event.content))
        direction, kind, status = "staff", "note" if note else "unsent", "not sent"
        staff = event.sender
    if kind != "message" and not room.notes:
        return None
    content = event.content
    item: dict[str, Any] = {
        "event_id": event.event_id,
        "time": iso(event.timestamp),
        "time_ms": event.timestamp,
        "direction": direction,
        "kind": kind,
        "sender": event.sender,
        "sender_name": await room.names(event.sender),
        "staff": {"mxid": staff, "name": await room.names(staff)} if staff else None,
        "msgtype": _str(content.get("msgtype")) or None,
        "text": None,
        "files": [],
        "redacted": event.redacted,
        "delivery": {"status": status},
    }
    if mapping is not None:
        item["remote_message_id"] = mapping.message_id
        item["delivery"].update(at=iso(mapping.timestamp), at_ms=mapping.timestamp)
    if status == "failed":
        item["delivery"]["reason"] = failures[event.event_id]
    if event.redacted:
        return item
    body = _text(content)
    if content.get("msgtype") in FILE_TYPES:
        name = _str(content.get("filename")) or body or "file"
        info = content.get("info")
        info = info if isinstance(info, dict) else {}
        url = content.get("url") if isinstance(content.get("url"), str) else None
        file = content.get("file") if isinstance(content.get("file"), dict) else None
        if url is None and file is not None and isinstance(file.get("url"), str):
            url = file["url"]
        size = info.get("size")
        item["files"].append(await media.add(url, name, size, event.event_id, file))
        item["text"] = body if body and body != name else ""
    else:
        item["text"] = body
    return item


def _edit(event: TimelineEvent) -> dict[str, Any]:
    new = event.content.get("m.new_content")
    text = _text(new) if isinstance(new, dict) else _text(event.content).removeprefix("* ")
    return {
        "event_id": event.event_id,
        "time": iso(event.timestamp),
        "time_ms": event.timestamp,
        "text": None if event.redacted else text,
        "redacted": event.redacted,
    }


def _text(content: dict[str, Any]) -> str:
    return _str(content.get("body"))


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


class Exporter:
    def __init__(
        self, services: Services, config: Config, options: PrivacyConfig, audit: Audit
    ) -> None:
        self.services = services
        self.config = config
        self.options = options
        self.audit = audit

    async def command(self, ctx: CommandContext, words: list[str]) -> str:
        if not words:
            return USAGE
        try:
            return await self.export(ctx.sender, " ".join(words), ctx.event_id)
        except ApiError as e:
            return e.message

    async def export(self, actor: str, asked: str, key: str) -> str:
        """Export the person ``asked`` names into ``actor``'s room with the bot (``key``: the
        command's event, once); the answer, or ``ApiError`` for a refusal (``privacy
        export`` and the provisioning API)."""
        try:
            subject = await find_subject(asked, self.services, self.config)
        except SubjectError as e:
            raise ApiError(404, str(e)) from e
        if not self.allowed(actor, subject):
            raise ApiError(
                403,
                "Only an admin of every channel account this person is known on "
                f"({', '.join(subject.accounts) or 'all accounts'}) may export their data.",
            )
        made = datetime.now(UTC)
        with tempfile.TemporaryFile() as file:
            document = await self.build(subject, file, made)
            size = file.tell()
            file.seek(0)
            data = file.read()
        room = await self.services.bot_room(f"privacy-{actor}", ROOM_NAME, ROOM_TOPIC, [actor])
        name = f"privacy-export-{made:%Y%m%d-%H%M%S}.zip"
        posted = await self.services.post_file(
            room, data, name, "application/zip", txn=f"privacy-export:{key}"
        )
        if posted is None:
            raise ApiError(502, "The export could not be posted: the homeserver refused the file.")
        counts = document["counts"]
        await self.audit.record(actor, "export", subject, {**counts, "bytes": size})
        left = f", {counts['media_left_out']} left out" if counts["media_left_out"] else ""
        return (
            f"📦 Export {name} ({size:,} bytes: {counts['conversations']} conversations, "
            f"{counts['messages']} messages, {counts['media']} files{left}) is in your direct "
            f"room with the bot ({room}), for you only."
        )

    def allowed(self, actor: str, subject: Subject) -> bool:
        if not subject.accounts:
            return admin_everywhere(self.services, self.config, actor)
        return all(self.services.level(actor, a) == "admin" for a in subject.accounts)

    async def build(self, subject: Subject, file: IO[bytes], made: datetime) -> dict[str, Any]:
        """Write the archive into ``file``; returns ``export.json``'s document."""
        with zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED) as archive:
            media = Media(archive, self._download, self.options.max_export_bytes)
            document = await self.document(subject, media, made)
            archive.writestr("export.json", json.dumps(document, indent=1, ensure_ascii=False))
            archive.writestr("index.html", render_html(document))
            archive.writestr("README.txt", readme(document))
        return document

    async def _download(self, url: str, limit: int, file: dict[str, Any] | None) -> bytes:
        return await self.services.download(url, limit=limit, file=file)

    async def document(self, subject: Subject, media: Media, made: datetime) -> dict[str, Any]:
        conversations = [
            await self._conversation(p, subject, media) for p in subject.conversations
        ]
        events = await ConsentEvent.history(subject.contacts) if subject.contacts else []
        texts: dict[str, Any] = {}
        for event in events:
            if event.text_hash and event.text_hash not in texts:
                text = await ConsentText.get(event.text_hash)
                texts[event.text_hash] = text and {
                    "list": text.list, "version": text.version, "text": text.text,
                }  # fmt: skip
        contacts = [c for c in [await ConsentContact.get(i) for i in subject.contacts] if c]
        profiles = [await self._profile(ghost, media) for ghost in subject.ghosts]
        messages_total = sum(len(c["messages"]) for c in conversations)
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "made": made.isoformat(timespec="seconds"),
            "asked": subject.asked,
            "notes_included": self.options.export_notes,
            "identities": [
                {
                    "account": i.account,
                    "channel": self.services.channel_title(i.account),
                    "remote_user": i.remote_user,
                    "chat": i.chat,
                }
                for i in subject.identities
            ],  # fmt: skip
            "profiles": profiles,
            "consent": {
                "contacts": [
                    {"id": c.id, "created": iso(c.created_at), "merged_into": c.merged_into}
                    for c in contacts
                ],
                "events": [
                    {
                        "id": e.id,
                        "contact": e.contact,
                        "list": e.list,
                        "account": e.account,
                        "step": e.step,
                        "time": iso(e.at),
                        "time_ms": e.at,
                        "text_hash": e.text_hash,
                        "evidence": e.evidence,
                        "trigger": e.trigger,
                    }
                    for e in events
                ],
                "texts": texts,
            },  # fmt: skip
            "conversations": conversations,
            "media": {
                "limit_bytes": media.limit,
                "included_bytes": media.used,
                "left_out": media.left_out,
            },
            "counts": {
                "identities": len(subject.identities),
                "conversations": len(conversations),
                "messages": messages_total,
                "media": media.count,
                "media_left_out": len(media.left_out),
                "consent_events": len(events),
            },
        }

    async def _profile(self, ghost: Ghost, media: Media) -> dict[str, Any]:
        """A ghost's profile, with its avatar among the media."""
        found: dict[str, Any] = {
            "account": ghost.account,
            "remote_user": ghost.remote_user,
            "matrix_user": ghost.mxid,
            "display_name": ghost.displayname,
            "avatar": ghost.avatar_url,
        }
        if ghost.avatar_url and ghost.avatar_url.startswith("mxc://"):
            name = f"avatar-{ghost.account}"
            found["avatar_file"] = await media.add(ghost.avatar_url, name, None, "profile")
        return found

    async def _conversation(
        self, portal: Portal, subject: Subject, media: Media
    ) -> dict[str, Any]:
        inbox = await InboxConversation.get(portal.account, portal.chat)
        found: dict[str, Any] = {
            "account": portal.account,
            "channel": self.services.channel_title(portal.account),
            "chat": portal.chat,
            "room_id": portal.room_id,
            "name": portal.name,
            "created": iso(portal.created_at) if portal.created_at else None,
            "inbox": inbox and {
                "team": inbox.team, "status": inbox.status, "assignee": inbox.assignee,
                "created": iso(inbox.created_at),
                "resolved": iso(inbox.resolved_at) if inbox.resolved_at else None,
            },
            "history_complete": True,
            "internal_left_out": 0,
            "messages": [],
        }  # fmt: skip
        if portal.room_id is None:
            return found
        timeline = await self.services.timeline(portal.room_id, limit=TIMELINE_LIMIT)
        ids = [e.event_id for e in timeline.events]
        mapped = await mappings(portal.room_id, ids)
        names: dict[str, str] = {}
        room_id = portal.room_id

        async def name(user: str) -> str:
            if user not in names:
                names[user] = await self.services.displayname(room_id, user)
            return names[user]

        ghosts = {g.mxid for g in subject.ghosts if g.account == portal.account}
        room = Room(room_id, self.config.bot_mxid, ghosts, mapped, name, self.options.export_notes)
        found["messages"], found["internal_left_out"] = await messages(
            room, timeline.events, media
        )
        found["history_complete"] = timeline.complete
        return found
