"""Builders for the Bot API's JSON objects as Telegram sends them (Update, Message, User, Chat,
media, reactions, Telegram Business). Telegram's text rules (UTF-16 lengths, entities, the HTML
parse mode) live in ``text`` and are re-exported here.

Builders are pure functions returning plain dicts; the simulator uses the same ones for the
messages the bot sends, so incoming and outgoing shapes cannot drift apart.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

# Telegram's text rules live in ``text``; builders and tests reach them from here.
from .text import (  # noqa: F401
    EntityParseError,
    Json,
    entity,
    entity_for,
    parse_html,
    sort_entities,
    trim_text,
    utf16_len,
)

# -- identifiers ----------------------------------------------------------------------------------


class _Counter:
    def __init__(self, start: int) -> None:
        self.value = start

    def next(self) -> int:
        self.value += 1
        return self.value

    def bump(self, at_least: int) -> None:
        self.value = max(self.value, at_least)


_message_ids = _Counter(100)


def next_message_id() -> int:
    """A message id larger than every id handed out so far (by builders or the simulator), so
    ids grow in every chat and never collide, whichever side created the message."""
    return _message_ids.next()


def note_message_id(message_id: int) -> None:
    """Tell the counter about an explicitly chosen id so later ids are larger."""
    _message_ids.bump(message_id)


def new_file_ids() -> tuple[str, str]:
    """A fresh ``(file_id, file_unique_id)`` pair shaped like Telegram's (opaque base64url)."""
    return "BQACAgIAAxkBAAI" + secrets.token_urlsafe(36), "AgAD" + secrets.token_urlsafe(9)


def file_ref(file_size: int = 1024) -> Json:
    """A reference to a file that exists nowhere (for updates whose media is never downloaded);
    use ``TelegramSimulator.add_file(...).ref()`` for a downloadable one."""
    file_id, unique_id = new_file_ids()
    return {"file_id": file_id, "file_unique_id": unique_id, "file_size": file_size}


def _compact(**fields: Any) -> Json:
    return {key: value for key, value in fields.items() if value is not None}


def _now() -> int:
    return int(time.time())


# -- users and chats ------------------------------------------------------------------------------


def user(
    user_id: int,
    first_name: str = "User",
    *,
    last_name: str | None = None,
    username: str | None = None,
    is_bot: bool = False,
    language_code: str | None = None,
    is_premium: bool | None = None,
) -> Json:
    return _compact(
        id=user_id,
        is_bot=is_bot,
        first_name=first_name,
        last_name=last_name,
        username=username,
        language_code=language_code,
        is_premium=is_premium,
    )


def private_chat(of_user: Mapping[str, Any]) -> Json:
    """The private chat with a user: its id is the user's id."""
    return _compact(
        id=of_user["id"],
        type="private",
        first_name=of_user["first_name"],
        last_name=of_user.get("last_name"),
        username=of_user.get("username"),
    )


def group_chat(
    chat_id: int, title: str, *, type: str = "supergroup", username: str | None = None
) -> Json:
    """A group (``type="group"``), supergroup or channel; ids of those are negative."""
    return _compact(id=chat_id, type=type, title=title, username=username)


# -- media ----------------------------------------------------------------------------------------


def _file_fields(ref: Mapping[str, Any]) -> Json:
    return _compact(
        file_id=ref["file_id"],
        file_unique_id=ref["file_unique_id"],
        file_size=ref.get("file_size"),
    )


def photo_size(ref: Mapping[str, Any], width: int, height: int) -> Json:
    return {**_file_fields(ref), "width": width, "height": height}


def document(
    ref: Mapping[str, Any], *, file_name: str | None = None, mime_type: str | None = None
) -> Json:
    return {**_file_fields(ref), **_compact(file_name=file_name, mime_type=mime_type)}


def audio(
    ref: Mapping[str, Any],
    *,
    duration: int = 0,
    performer: str | None = None,
    title: str | None = None,
    file_name: str | None = None,
    mime_type: str | None = "audio/mpeg",
) -> Json:
    return {
        **_file_fields(ref),
        "duration": duration,
        **_compact(performer=performer, title=title, file_name=file_name, mime_type=mime_type),
    }


def voice(ref: Mapping[str, Any], *, duration: int = 0, mime_type: str = "audio/ogg") -> Json:
    return {**_file_fields(ref), "duration": duration, "mime_type": mime_type}


def video(
    ref: Mapping[str, Any],
    *,
    width: int = 640,
    height: int = 360,
    duration: int = 0,
    file_name: str | None = None,
    mime_type: str | None = "video/mp4",
) -> Json:
    return {
        **_file_fields(ref),
        "width": width,
        "height": height,
        "duration": duration,
        **_compact(file_name=file_name, mime_type=mime_type),
    }


def video_note(ref: Mapping[str, Any], *, length: int = 240, duration: int = 0) -> Json:
    return {**_file_fields(ref), "length": length, "duration": duration}


def sticker(
    ref: Mapping[str, Any],
    *,
    emoji: str | None = "👍",
    width: int = 512,
    height: int = 512,
    is_animated: bool = False,
    is_video: bool = False,
    set_name: str | None = None,
) -> Json:
    return {
        **_file_fields(ref),
        "type": "regular",
        "width": width,
        "height": height,
        "is_animated": is_animated,
        "is_video": is_video,
        **_compact(emoji=emoji, set_name=set_name),
    }


# -- messages -------------------------------------------------------------------------------------


def message(
    chat: Mapping[str, Any],
    sender: Mapping[str, Any] | None,
    *,
    message_id: int | None = None,
    date: int | None = None,
    reply_to: Mapping[str, Any] | None = None,
    business_connection_id: str | None = None,
    sender_business_bot: Mapping[str, Any] | None = None,
    **content: Any,
) -> Json:
    """A Message; ``content`` holds the kind-specific fields (text, photo, caption, ...)."""
    if message_id is None:
        message_id = next_message_id()
    else:
        note_message_id(message_id)
    replied = None
    if reply_to is not None:
        replied = {k: v for k, v in reply_to.items() if k != "reply_to_message"}
    return _compact(
        message_id=message_id,
        **{"from": dict(sender) if sender is not None else None},
        sender_business_bot=dict(sender_business_bot) if sender_business_bot else None,
        date=_now() if date is None else date,
        business_connection_id=business_connection_id,
        chat=dict(chat),
        reply_to_message=replied,
        **content,
    )


def text_message(
    chat: Mapping[str, Any],
    sender: Mapping[str, Any] | None,
    text: str,
    *,
    entities: Sequence[Json] | None = None,
    **kw: Any,
) -> Json:
    """A text message; pass ``entities`` (see :func:`entity_for`) or build the text and
    entities from HTML with :func:`parse_html`."""
    return message(chat, sender, text=text, entities=list(entities) if entities else None, **kw)


def html_message(
    chat: Mapping[str, Any], sender: Mapping[str, Any] | None, html: str, **kw: Any
) -> Json:
    """A text message whose text and entities come from Telegram-HTML markup."""
    text, entities = parse_html(html)
    return text_message(chat, sender, text, entities=entities, **kw)


def start_message(
    chat: Mapping[str, Any], sender: Mapping[str, Any], payload: str | None = None, **kw: Any
) -> Json:
    """``/start <payload>`` as sent by a deep link ``t.me/<bot>?start=<payload>``."""
    text = "/start" if not payload else f"/start {payload}"
    return text_message(chat, sender, text, entities=[entity("bot_command", 0, 6)], **kw)


def _caption(caption: str | None, caption_entities: Sequence[Json] | None) -> Json:
    return _compact(caption=caption, caption_entities=list(caption_entities or []) or None)


def photo_message(
    chat: Mapping[str, Any],
    sender: Mapping[str, Any] | None,
    ref: Mapping[str, Any],
    *,
    width: int = 1280,
    height: int = 960,
    caption: str | None = None,
    caption_entities: Sequence[Json] | None = None,
    **kw: Any,
) -> Json:
    """A photo: Telegram sends several sizes, smallest first; here a thumbnail and ``ref``."""
    thumb = photo_size(
        file_ref(min(ref.get("file_size") or 1024, 4096)), 90, max(1, 90 * height // width)
    )
    sizes = [thumb, photo_size(ref, width, height)]
    return message(chat, sender, photo=sizes, **_caption(caption, caption_entities), **kw)


def _media_message(
    field: str,
    content: Json,
    chat: Mapping[str, Any],
    sender: Mapping[str, Any] | None,
    caption: str | None,
    caption_entities: Sequence[Json] | None,
    kw: dict[str, Any],
) -> Json:
    fields: dict[str, Any] = {field: content, **_caption(caption, caption_entities)}
    return message(chat, sender, **fields, **kw)


def document_message(
    chat: Mapping[str, Any],
    sender: Mapping[str, Any] | None,
    ref: Mapping[str, Any],
    *,
    file_name: str | None = "file.pdf",
    mime_type: str | None = "application/pdf",
    caption: str | None = None,
    caption_entities: Sequence[Json] | None = None,
    **kw: Any,
) -> Json:
    content = document(ref, file_name=file_name, mime_type=mime_type)
    return _media_message("document", content, chat, sender, caption, caption_entities, kw)


def audio_message(
    chat: Mapping[str, Any],
    sender: Mapping[str, Any] | None,
    ref: Mapping[str, Any],
    *,
    duration: int = 30,
    performer: str | None = None,
    title: str | None = None,
    file_name: str | None = "audio.mp3",
    mime_type: str | None = "audio/mpeg",
    caption: str | None = None,
    caption_entities: Sequence[Json] | None = None,
    **kw: Any,
) -> Json:
    content = audio(
        ref,
        duration=duration,
        performer=performer,
        title=title,
        file_name=file_name,
        mime_type=mime_type,
    )
    return _media_message("audio", content, chat, sender, caption, caption_entities, kw)


def voice_message(
    chat: Mapping[str, Any],
    sender: Mapping[str, Any] | None,
    ref: Mapping[str, Any],
    *,
    duration: int = 5,
    caption: str | None = None,
    caption_entities: Sequence[Json] | None = None,
    **kw: Any,
) -> Json:
    content = voice(ref, duration=duration)
    return _media_message("voice", content, chat, sender, caption, caption_entities, kw)


def video_message(
    chat: Mapping[str, Any],
    sender: Mapping[str, Any] | None,
    ref: Mapping[str, Any],
    *,
    width: int = 640,
    height: int = 360,
    duration: int = 10,
    file_name: str | None = "video.mp4",
    mime_type: str | None = "video/mp4",
    caption: str | None = None,
    caption_entities: Sequence[Json] | None = None,
    **kw: Any,
) -> Json:
    content = video(
        ref,
        width=width,
        height=height,
        duration=duration,
        file_name=file_name,
        mime_type=mime_type,
    )
    return _media_message("video", content, chat, sender, caption, caption_entities, kw)


def video_note_message(
    chat: Mapping[str, Any],
    sender: Mapping[str, Any] | None,
    ref: Mapping[str, Any],
    *,
    length: int = 240,
    duration: int = 5,
    **kw: Any,
) -> Json:
    return message(
        chat, sender, video_note=video_note(ref, length=length, duration=duration), **kw
    )


def sticker_message(
    chat: Mapping[str, Any],
    sender: Mapping[str, Any] | None,
    ref: Mapping[str, Any],
    *,
    emoji: str = "😀",
    set_name: str | None = None,
    **kw: Any,
) -> Json:
    """A static (WebP) sticker."""
    return message(chat, sender, sticker=sticker(ref, emoji=emoji, set_name=set_name), **kw)


def location_message(
    chat: Mapping[str, Any],
    sender: Mapping[str, Any] | None,
    latitude: float,
    longitude: float,
    **kw: Any,
) -> Json:
    return message(chat, sender, location={"latitude": latitude, "longitude": longitude}, **kw)


def contact_message(
    chat: Mapping[str, Any],
    sender: Mapping[str, Any] | None,
    phone_number: str,
    first_name: str,
    *,
    last_name: str | None = None,
    user_id: int | None = None,
    vcard: str | None = None,
    **kw: Any,
) -> Json:
    contact = _compact(
        phone_number=phone_number,
        first_name=first_name,
        last_name=last_name,
        user_id=user_id,
        vcard=vcard,
    )
    return message(chat, sender, contact=contact, **kw)


def poll_message(
    chat: Mapping[str, Any],
    sender: Mapping[str, Any] | None,
    question: str,
    options: Sequence[str],
    *,
    poll_id: str | None = None,
    is_anonymous: bool = True,
    allows_multiple_answers: bool = False,
    **kw: Any,
) -> Json:
    poll = {
        "id": poll_id or str(secrets.randbelow(10**18)),
        "question": question,
        "options": [
            {"persistent_id": str(n), "text": text, "voter_count": 0}
            for n, text in enumerate(options)
        ],
        "total_voter_count": 0,
        "is_closed": False,
        "is_anonymous": is_anonymous,
        "type": "regular",
        "allows_multiple_answers": allows_multiple_answers,
        "allows_revoting": True,
        "members_only": False,
    }
    return message(chat, sender, poll=poll, **kw)


def edited(original: Mapping[str, Any], *, edit_date: int | None = None, **changes: Any) -> Json:
    """The message as it looks after an edit: same id, new content, ``edit_date`` set."""
    result = {**original, **changes, "edit_date": _now() if edit_date is None else edit_date}
    return {key: value for key, value in result.items() if value is not None}


# -- reactions and business -----------------------------------------------------------------------


def reaction_emoji(emoji: str) -> Json:
    return {"type": "emoji", "emoji": emoji}


def message_reaction(
    chat: Mapping[str, Any],
    message_id: int,
    by: Mapping[str, Any],
    *,
    old: Sequence[str] = (),
    new: Sequence[str] = (),
    date: int | None = None,
) -> Json:
    """A MessageReactionUpdated: ``by`` changed its reactions from ``old`` to ``new`` emoji."""
    return {
        "chat": dict(chat),
        "message_id": message_id,
        "user": dict(by),
        "date": _now() if date is None else date,
        "old_reaction": [reaction_emoji(e) for e in old],
        "new_reaction": [reaction_emoji(e) for e in new],
    }


def business_connection(
    connection_id: str,
    owner: Mapping[str, Any],
    *,
    user_chat_id: int | None = None,
    is_enabled: bool = True,
    can_reply: bool = True,
    date: int | None = None,
) -> Json:
    """A BusinessConnection: ``owner`` (a Telegram Business user) connected the bot."""
    return {
        "id": connection_id,
        "user": dict(owner),
        "user_chat_id": owner["id"] if user_chat_id is None else user_chat_id,
        "date": _now() if date is None else date,
        "is_enabled": is_enabled,
        "rights": {"can_reply": can_reply, "can_read_messages": True},
    }


def deleted_business_messages(
    connection_id: str, chat: Mapping[str, Any], message_ids: Sequence[int]
) -> Json:
    return {
        "business_connection_id": connection_id,
        "chat": dict(chat),
        "message_ids": list(message_ids),
    }


# -- updates (``update_id`` is added by the simulator's push_update) ------------------------------


def message_update(msg: Json) -> Json:
    return {"message": msg}


def edited_message_update(msg: Json) -> Json:
    return {"edited_message": msg}


def business_message_update(msg: Json) -> Json:
    return {"business_message": msg}


def edited_business_message_update(msg: Json) -> Json:
    return {"edited_business_message": msg}


def message_reaction_update(reaction: Json) -> Json:
    return {"message_reaction": reaction}


def business_connection_update(connection: Json) -> Json:
    return {"business_connection": connection}


def deleted_business_messages_update(deleted: Json) -> Json:
    return {"deleted_business_messages": deleted}


def my_chat_member_update(
    chat: Json, by: Json, bot: Json, *, old: str, new: str, date: int | None = None
) -> Json:
    """The bot's own membership changed (a private chat: ``kicked`` = the user blocked it)."""

    def member(status: str) -> Json:
        return {
            "status": status,
            "user": dict(bot),
            **({"until_date": 0} if status == "kicked" else {}),
        }

    changed = {"chat": chat, "from": dict(by), "date": _now() if date is None else date}
    return {
        "my_chat_member": {
            **changed,
            "old_chat_member": member(old),
            "new_chat_member": member(new),
        }
    }


UPDATE_KINDS = (
    "message", "edited_message", "channel_post", "edited_channel_post", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages",
    "message_reaction", "message_reaction_count", "inline_query", "chosen_inline_result",
    "callback_query", "shipping_query", "pre_checkout_query", "purchased_paid_media", "poll",
    "poll_answer", "my_chat_member", "chat_member", "chat_join_request", "chat_boost",
    "removed_chat_boost",
)  # fmt: skip


def update_kind(update: Mapping[str, Any]) -> str:
    """The update's type: its one field besides ``update_id``."""
    kinds = [key for key in update if key != "update_id"]
    if len(kinds) != 1:
        raise ValueError(f"an update has exactly one payload field, got {kinds}")
    return kinds[0]
