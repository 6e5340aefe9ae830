"""Telegram -> bridge: one ``Update`` as the typed remote events the core records.

Pure mapping, no network calls. Files become ``tg-file:<file_id>`` attachments that the
connector's ``download_attachment`` fetches later. Business chats get the chat id
``b:<business connection id>:<chat id>`` so that answers go out through the same connection.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from aiogram.types import (
    Chat,
    ChatMemberUpdated,
    Location,
    Message,
    MessageReactionUpdated,
    ReactionTypeEmoji,
    Update,
    User,
)

from ...events import (
    RemoteAttachment,
    RemoteBlocked,
    RemoteChat,
    RemoteDelete,
    RemoteEdit,
    RemoteEvent,
    RemoteMessage,
    RemoteReaction,
    RemoteReactionRemove,
    RemoteUser,
)
from ...types import MessageID, RemoteChatID, RemoteUserID
from .format import entities_to_html

FILE_PREFIX = "tg-file:"
GROUP_TYPES = frozenset({"group", "supergroup", "channel"})
START_COMMAND = re.compile(r"/start(?: ([A-Za-z0-9_-]{1,64}))?")
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8}){0,3}")
"""An IETF language tag as Telegram gives it (``de``, ``pt-br``); anything else is dropped."""

UNSUPPORTED = frozenset(
    {"dice", "game", "story", "invoice", "paid_media", "giveaway", "giveaway_winners"}
    | {"checklist", "rich_message", "unknown"}
)
"""Content a person sent that cannot be shown in Matrix: a notice says what it was. Every
other kind not handled below is a service message (members, titles, pins...) and is skipped."""


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class UnreadableUpdate(ValueError):
    """An update no real Telegram sends, which the bridge cannot keep: refused as a whole."""


# --------------------------------------------------------------------------- identities


def business_chat_id(connection_id: str, chat_id: int) -> RemoteChatID:
    # The connection id becomes part of a database key; any length and script is fine, but
    # NUL and lone surrogates (JSON escapes can carry them) no database column takes.
    if _UNSTORABLE.search(connection_id):
        raise UnreadableUpdate("business_connection_id holds NUL or a lone surrogate")
    return RemoteChatID(f"b:{connection_id}:{chat_id}")


def _storable(text: str) -> str:
    """``text`` with NUL and lone surrogates (which no database column takes) as U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text)


def _person_name(first: str | None, last: str | None, username: str | None, ident: int) -> str:
    name = " ".join(part.strip() for part in (first, last) if part and part.strip())
    if name:
        return _storable(name)
    return _storable(f"@{username}") if username else str(ident)


def chat_name(chat: Chat) -> str:
    """A group's title, or the full name of the person in a private chat."""
    if chat.title and chat.title.strip():
        return _storable(chat.title.strip())
    return _person_name(chat.first_name, chat.last_name, chat.username, chat.id)


def remote_chat(chat: Chat, business_connection_id: str | None = None) -> RemoteChat:
    if business_connection_id is not None:
        chat_id = business_chat_id(business_connection_id, chat.id)
    else:
        chat_id = RemoteChatID(str(chat.id))
    return RemoteChat(id=chat_id, name=chat_name(chat), is_group=chat.type in GROUP_TYPES)


def remote_user(user: User) -> RemoteUser:
    name = _person_name(user.first_name, user.last_name, user.username, user.id)
    return RemoteUser(id=RemoteUserID(str(user.id)), displayname=name)


def remote_sender_chat(chat: Chat) -> RemoteUser:
    """The sender of a message posted on behalf of a chat (channel, anonymous admin)."""
    return RemoteUser(id=RemoteUserID(str(chat.id)), displayname=chat_name(chat))


def _timestamp(value: datetime | int | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


# --------------------------------------------------------------------------- dispatch


def update_to_events(update: Update, *, bot_id: int, business: bool) -> list[RemoteEvent]:
    """The remote events carried by ``update``; [] for anything the bridge does not show
    (service messages, the bot's own messages, Business updates when ``business`` is off).
    Raises ``UnreadableUpdate`` for an update whose ids the bridge cannot keep."""
    if update.message is not None:
        return message_events(update.message, bot_id=bot_id)
    if update.edited_message is not None:
        return edit_events(update.edited_message, bot_id=bot_id)
    if update.message_reaction is not None:
        return reaction_events(update.message_reaction, bot_id=bot_id)
    if update.my_chat_member is not None:
        return blocked_events(update.my_chat_member)
    if not business:
        return []
    if update.business_message is not None:
        message = update.business_message
        return message_events(message, bot_id=bot_id, connection=_connection(message))
    if update.edited_business_message is not None:
        message = update.edited_business_message
        return edit_events(message, bot_id=bot_id, connection=_connection(message))
    deleted = update.deleted_business_messages
    if deleted is not None:
        chat = remote_chat(deleted.chat, deleted.business_connection_id)
        sender = remote_sender_chat(deleted.chat)
        return [
            RemoteDelete(chat=chat, sender=sender, message_id=MessageID(str(message_id)))
            for message_id in deleted.message_ids
        ]
    return []


def blocked_events(changed: ChatMemberUpdated) -> list[RemoteEvent]:
    """A user blocked the bot: in their private chat the bot's status became ``kicked``. The
    block's id is the update's date (equal for a second delivery). Unblocking (``member``
    again) and the bot's membership in groups are no events."""
    if changed.chat.type != "private" or changed.new_chat_member.status != "kicked":
        return []
    date = _timestamp(changed.date)
    return [
        RemoteBlocked(
            chat=remote_chat(changed.chat),
            sender=remote_user(changed.from_user),
            timestamp=date,
            block_id=str(int(date or 0)),
        )
    ]


def _connection(message: Message) -> str:
    return message.business_connection_id or ""


def _sender(message: Message, *, bot_id: int) -> RemoteUser | None:
    """Who sent ``message``, or None when it is the bot's own."""
    if message.sender_business_bot is not None and message.sender_business_bot.id == bot_id:
        return None
    if message.sender_chat is not None:
        return remote_sender_chat(message.sender_chat)
    if message.from_user is not None:
        if message.from_user.id == bot_id:
            return None
        return remote_user(message.from_user)
    return remote_sender_chat(message.chat)


# --------------------------------------------------------------------------- messages


def message_events(
    message: Message, *, bot_id: int, connection: str | None = None
) -> list[RemoteEvent]:
    sender = _sender(message, bot_id=bot_id)
    content = message_content(message)
    if sender is None or content is None:
        return []
    metadata: dict[str, Any] = {}
    routing: dict[str, str] = {}
    # Deep links (t.me/<bot>?start=<payload>) open the bot's own private chat, never a
    # Business chat.
    if connection is None and message.chat.type == "private" and message.text is not None:
        match = START_COMMAND.fullmatch(message.text)
        if match and match.group(1):
            metadata["portal"] = {"start_payload": match.group(1)}
            routing["start"] = match.group(1)
    language = _language(message, connection)
    if language is not None:
        routing["language"] = language
    if routing:
        metadata["routing"] = routing
    return [
        RemoteMessage(
            chat=remote_chat(message.chat, connection),
            sender=sender,
            timestamp=_timestamp(message.date),
            metadata=metadata,
            message_id=MessageID(str(message.message_id)),
            text=content.text,
            html=content.html,
            attachments=content.attachments,
            reply_to=_reply_to(message),
            notice=content.notice,
        )
    ]


def _language(message: Message, connection: str | None) -> str | None:
    """The language the customer's Telegram app is set to (``from.language_code``), lower-cased;
    None for a channel's or group's post and for the owner's messages in a Business chat."""
    user = message.from_user
    if user is None or message.sender_chat is not None or not user.language_code:
        return None
    if connection is not None and user.id != message.chat.id:
        return None  # the Business account's owner
    code = user.language_code.lower()
    return code if LANGUAGE_CODE.fullmatch(code) else None


def edit_events(
    message: Message, *, bot_id: int, connection: str | None = None
) -> list[RemoteEvent]:
    sender = _sender(message, bot_id=bot_id)
    content = message_content(message)
    if sender is None or content is None:
        return []
    return [
        RemoteEdit(
            chat=remote_chat(message.chat, connection),
            sender=sender,
            timestamp=_timestamp(message.edit_date or message.date),
            message_id=MessageID(str(message.message_id)),
            text=content.text,
            html=content.html,
            edit_id=str(message.edit_date) if message.edit_date is not None else None,
        )
    ]


def _reply_to(message: Message) -> MessageID | None:
    target = message.reply_to_message
    if target is None:
        return None
    # In forum topics every message "replies" to the topic's creation; that is no reply.
    if target.forum_topic_created is not None:
        return None
    return MessageID(str(target.message_id))


@dataclass(frozen=True)
class Content:
    """What a message shows: text, HTML, files, and whether it is a notice."""

    text: str = ""
    html: str | None = None
    attachments: tuple[RemoteAttachment, ...] = ()
    notice: bool = False


def message_content(message: Message) -> Content | None:
    """The visible content of ``message``, or None for a service message."""
    text = message.text if message.text is not None else message.caption or ""
    entities = message.entities if message.text is not None else message.caption_entities
    kind = str(getattr(message.content_type, "value", message.content_type))
    attachment = media_attachment(message)
    if attachment is not None:
        return Content(text, entities_to_html(text, entities), (attachment,))
    if message.text is not None:
        return Content(text, entities_to_html(text, entities))
    if message.venue is not None or message.location is not None:
        return location_content(message)
    if message.contact is not None:
        contact = message.contact
        phone = contact.phone_number
        parts = (contact.first_name, contact.last_name)
        name = " ".join(part.strip() for part in parts if part and part.strip()) or phone
        digits = "".join(ch for ch in phone if ch.isascii() and ch.isdigit())
        tel = f"tel:{'+' if phone.strip().startswith('+') else ''}{digits}"
        html = f"👤 Contact: {escape(name)}, "
        html += f'<a href="{escape(tel)}">{escape(phone)}</a>' if digits else escape(phone)
        return Content(f"👤 Contact: {name}, {phone}", html)
    if message.poll is not None:
        poll = message.poll
        options = [option.text for option in poll.options]
        lines = [f"📊 Poll: {poll.question}", *(f"• {option}" for option in options)]
        items = "".join(f"<li>{escape(option)}</li>" for option in options)
        html = f"📊 Poll: {escape(poll.question)}" + (f"<ul>{items}</ul>" if items else "")
        return Content("\n".join(lines), html)
    if kind in UNSUPPORTED:
        notice = f"(unsupported Telegram message: {kind})"
        return Content(f"{notice}\n{text}" if text else notice, notice=True)
    return None


def _coordinate(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


def location_content(message: Message) -> Content:
    venue = message.venue
    location: Location | None = venue.location if venue is not None else message.location
    assert location is not None
    lat, lon = _coordinate(location.latitude), _coordinate(location.longitude)
    geo = f"geo:{lat},{lon}"
    osm = f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=16/{lat}/{lon}"
    text = f"📍 Location: {lat}, {lon}"
    html = (
        f'📍 Location: <a href="{escape(geo)}">{lat}, {lon}</a> '
        f'(<a href="{escape(osm)}">OpenStreetMap</a>)'
    )
    if venue is not None:
        details = [part for part in (venue.title, venue.address) if part]
        text += "".join(f"\n{part}" for part in details)
        html += "".join(f"<br>{escape(part)}" for part in details)
    return Content(text, html)


# --------------------------------------------------------------------------- media

_MIME_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "video/mp4": "mp4",
    "video/webm": "webm",
    "application/pdf": "pdf",
    "application/x-tgsticker": "tgs",
}


def _safe_filename(name: str | None) -> str | None:
    if not name:
        return None
    name = "".join("_" if ch in "/\\" or ord(ch) < 0x20 else ch for ch in name).strip()
    return name if name.strip("._ ") else None


def _attachment(
    kind: str,
    file: Any,
    *,
    default_mime: str,
    file_name: str | None = None,
    mime_type: str | None = None,
    **extra: Any,
) -> RemoteAttachment:
    mimetype = mime_type or default_mime
    filename = _safe_filename(file_name)
    if filename is None:
        extension = _MIME_EXTENSIONS.get(mimetype, "bin")
        filename = f"{kind}_{file.file_unique_id}.{extension}"
    return RemoteAttachment(
        url=f"{FILE_PREFIX}{file.file_id}",
        filename=filename,
        mimetype=mimetype,
        size=file.file_size,
        extra={
            "file_id": file.file_id,
            "file_unique_id": file.file_unique_id,
            "kind": kind,
            **{key: value for key, value in extra.items() if value is not None},
        },
    )


def media_attachment(message: Message) -> RemoteAttachment | None:
    """The file a message carries (Telegram messages carry at most one), if any."""
    if message.animation is not None:  # GIFs come with a duplicate ``document``
        animation = message.animation
        return _attachment(
            "animation",
            animation,
            default_mime="video/mp4",
            file_name=animation.file_name,
            mime_type=animation.mime_type,
        )
    if message.photo:
        largest = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        return _attachment("photo", largest, default_mime="image/jpeg")
    if message.sticker is not None:
        sticker = message.sticker
        if sticker.is_animated:
            mime, note = "application/x-tgsticker", "animated sticker (Lottie, .tgs)"
        elif sticker.is_video:
            mime, note = "video/webm", "video sticker (.webm)"
        else:
            mime, note = "image/webp", None
        return _attachment("sticker", sticker, default_mime=mime, emoji=sticker.emoji, note=note)
    if message.document is not None:
        document = message.document
        return _attachment(
            "document",
            document,
            default_mime="application/octet-stream",
            file_name=document.file_name,
            mime_type=document.mime_type,
        )
    if message.audio is not None:
        audio = message.audio
        return _attachment(
            "audio",
            audio,
            default_mime="audio/mpeg",
            file_name=audio.file_name,
            mime_type=audio.mime_type,
        )
    if message.voice is not None:
        voice = message.voice
        return _attachment("voice", voice, default_mime="audio/ogg", mime_type=voice.mime_type)
    if message.video is not None:
        video = message.video
        return _attachment(
            "video",
            video,
            default_mime="video/mp4",
            file_name=video.file_name,
            mime_type=video.mime_type,
        )
    if message.video_note is not None:
        return _attachment("video_note", message.video_note, default_mime="video/mp4")
    if message.live_photo is not None:
        live = message.live_photo
        return _attachment("live_photo", live, default_mime="video/mp4", mime_type=live.mime_type)
    return None


# --------------------------------------------------------------------------- reactions


def _emojis(reactions: Sequence[Any]) -> list[str]:
    """The plain emoji reactions, in order; custom emoji and paid reactions are skipped."""
    seen: list[str] = []
    for reaction in reactions:
        if isinstance(reaction, ReactionTypeEmoji) and reaction.emoji not in seen:
            seen.append(reaction.emoji)
    return seen


def reaction_events(update: MessageReactionUpdated, *, bot_id: int) -> list[RemoteEvent]:
    if update.user is not None:
        if update.user.id == bot_id:
            return []
        sender = remote_user(update.user)
    elif update.actor_chat is not None:
        sender = remote_sender_chat(update.actor_chat)
    else:
        return []
    chat = remote_chat(update.chat)
    timestamp = _timestamp(update.date)
    message_id = MessageID(str(update.message_id))
    old, new = _emojis(update.old_reaction), _emojis(update.new_reaction)
    events: list[RemoteEvent] = []
    for emoji in old:
        if emoji not in new:
            events.append(
                RemoteReactionRemove(
                    chat=chat,
                    sender=sender,
                    timestamp=timestamp,
                    message_id=message_id,
                    emoji=emoji,
                    removal_id=str(int(timestamp or 0)),
                )
            )
    for emoji in new:
        if emoji not in old:
            events.append(
                RemoteReaction(
                    chat=chat,
                    sender=sender,
                    timestamp=timestamp,
                    message_id=message_id,
                    emoji=emoji,
                )
            )
    return events
