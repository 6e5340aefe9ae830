"""Builders for the Bot API's JSON objects as Telegram sends them (Update, Message, User, Chat,
media, reactions, Telegram Business), and Telegram's text rules: lengths in UTF-16 code units and
the HTML parse mode, ported from TDLib's ``parse_html`` so that errors and entities match.

Builders are pure functions returning plain dicts; the simulator uses the same ones for the
messages the bot sends, so incoming and outgoing shapes cannot drift apart.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Json = dict[str, Any]


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


# -- text -----------------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's offsets and length limits."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def entity(type: str, offset: int, length: int, **extra: Any) -> Json:
    """A MessageEntity; offsets and lengths are in UTF-16 code units."""
    return {"type": type, "offset": offset, "length": length, **_compact(**extra)}


def entity_for(text: str, part: str, type: str, **extra: Any) -> Json:
    """The entity of ``type`` covering the first occurrence of ``part`` in ``text``."""
    start = text.index(part)
    return entity(type, utf16_len(text[:start]), utf16_len(part), **extra)


class EntityParseError(ValueError):
    """The text cannot be parsed in the requested parse mode; ``str()`` is TDLib's message."""


_HTML_TAGS = frozenset(
    "a b strong i em s strike del u ins tg-spoiler tg-emoji tg-time span pre code "
    "blockquote".split()
)
_SIMPLE_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "tg-spoiler": "spoiler",
}  # fmt: skip
# TDLib's sort order for entities sharing offset and length (MessageEntity::get_type_priority).
_PRIORITY = {
    "blockquote": 0, "expandable_blockquote": 0, "pre": 11, "code": 20, "text_link": 49,
    "text_mention": 49, "bold": 90, "italic": 91, "underline": 92, "strikethrough": 93,
    "spoiler": 94, "custom_emoji": 99,
}  # fmt: skip
_SPACES = b" \t\r\n\x0b\x0c\x00"
_USER_LINK = re.compile(r"^tg:(?://)?user\?id=(\d+)$", re.IGNORECASE)


def _decode_html_entity(data: bytes, pos: int) -> tuple[int, int]:
    """TDLib's ``decode_html_entity``: (code point, position after it) or (0, pos)."""

    def at(i: int) -> int:
        return data[i] if i < len(data) else 0

    end = pos + 1
    code = 0
    if at(pos + 1) == ord("#"):
        end += 1
        if at(pos + 2) == ord("x"):
            end += 1
            while chr(at(end)) in "0123456789abcdefABCDEF" and at(end):
                code = code * 16 + int(chr(at(end)), 16)
                end += 1
        else:
            while ord("0") <= at(end) <= ord("9"):
                code = code * 10 + at(end) - ord("0")
                end += 1
        if code == 0 or code >= 0x10FFFF or end - pos >= 10:
            return 0, pos
    else:
        while chr(at(end)).isascii() and chr(at(end)).isalpha():
            end += 1
        names = {b"lt": "<", b"gt": ">", b"amp": "&", b"quot": '"'}
        if data[pos + 1 : end] not in names:
            return 0, pos
        code = ord(names[data[pos + 1 : end]])
    return code, end + 1 if at(end) == ord(";") else end


def _link_entity(url: str, offset: int, length: int) -> Json | None:
    """TDLib's handling of ``<a href>``: user links become text_mention, other links are
    normalised like ``LinkManager::get_checked_link`` (approximately) or dropped."""
    mention = _USER_LINK.match(url)
    if mention:
        uid = int(mention.group(1))
        return entity("text_mention", offset, length, user=user(uid, ""))
    if re.match(r"^(tg|ton|tonsite):", url, re.IGNORECASE):
        return entity("text_link", offset, length, url=url)
    match = re.match(r"^(?:(https?)://)?([^/?#\s]+)([^\s]*)$", url, re.IGNORECASE)
    if not match or "." not in match.group(2):
        return None
    scheme = (match.group(1) or "http").lower()
    rest = match.group(3)
    if not rest.startswith("/"):
        rest = "/" + rest
    return entity("text_link", offset, length, url=f"{scheme}://{match.group(2)}{rest}")


def parse_html(text: str) -> tuple[str, list[Json]]:
    """Telegram's HTML parse mode (TDLib ``parse_html``): the plain text and its entities, or
    :class:`EntityParseError` with TDLib's message (byte offsets are UTF-8 byte offsets)."""
    data = text.encode("utf-8", "surrogatepass")
    size = len(data)

    def at(i: int) -> int:
        return data[i] if i < size else 0

    def fail(message: str) -> EntityParseError:
        return EntityParseError(message)

    out = bytearray()
    entities: list[Json] = []
    utf16 = 0
    # (tag name, argument, date, utf16 offset, byte offset in out)
    nested: list[tuple[str, str, int, int, int]] = []
    i = 0
    while i < size:
        c = data[i]
        if c == ord("&"):
            code, after = _decode_html_entity(data, i)
            if code:
                utf16 += 1 + (code > 0xFFFF)
                out += chr(code).encode("utf-8", "surrogatepass")
                i = after
                continue
        if c != ord("<"):
            if c & 0xC0 != 0x80:
                utf16 += 1 + (c >= 0xF0)
            out.append(c)
            i += 1
            continue
        begin = i
        i += 1
        if at(i) != ord("/"):
            while at(i) not in _SPACES and at(i) != ord(">"):
                i += 1
            if at(i) == 0:
                raise fail(f"Unclosed start tag at byte offset {begin}")
            tag = data[begin + 1 : i].decode("utf-8", "replace").lower()
            if tag not in _HTML_TAGS:
                raise fail(f'Unsupported start tag "{tag}" at byte offset {begin}')
            argument = ""
            date = 0
            while at(i) != ord(">"):
                while at(i) != 0 and at(i) in _SPACES:
                    i += 1
                if at(i) == ord(">"):
                    break
                name_begin = i
                while at(i) not in _SPACES and at(i) not in b"=>/\"'":
                    i += 1
                name = data[name_begin:i].decode("utf-8", "replace")
                if not name:
                    raise fail(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
                while at(i) != 0 and at(i) in _SPACES:
                    i += 1
                if at(i) != ord("="):
                    if at(i) == 0:
                        raise fail(f'Unclosed start tag "{tag}" at byte offset {begin}')
                    if tag == "blockquote" and name == "expandable":
                        argument = "1"
                    continue
                i += 1
                while at(i) != 0 and at(i) in _SPACES:
                    i += 1
                if at(i) == 0:
                    raise fail(f'Unclosed start tag "{tag}" at byte offset {begin}')
                if at(i) not in b"'\"":
                    token_begin = i
                    while chr(at(i)).isascii() and (chr(at(i)).isalnum() or at(i) in b".-"):
                        i += 1
                    value = data[token_begin:i].decode().lower()
                    if at(i) not in _SPACES and at(i) != ord(">"):
                        raise fail(f"Unexpected end of name token at byte offset {token_begin}")
                else:
                    quote = at(i)
                    i += 1
                    raw = bytearray()
                    while at(i) != quote and at(i) != 0:
                        if at(i) == ord("&"):
                            code, after = _decode_html_entity(data, i)
                            if code:
                                raw += chr(code).encode("utf-8", "surrogatepass")
                                i = after
                                continue
                        raw.append(at(i))
                        i += 1
                    if at(i) == quote:
                        i += 1
                    value = raw.decode("utf-8", "replace")
                if at(i) == 0:
                    raise fail(f"Unclosed start tag at byte offset {begin}")
                if tag == "a" and name == "href":
                    argument = value
                elif tag == "code" and name == "class" and value.startswith("language-"):
                    argument = value[9:]
                elif tag == "span" and name == "class" and value.startswith("tg-"):
                    argument = value[3:]
                elif tag == "tg-emoji" and name == "emoji-id":
                    argument = value
                elif tag == "blockquote" and name == "expandable":
                    argument = "1"
                elif tag == "tg-time" and name == "unix":
                    date = int(value) if value.isdigit() else 0
                elif tag == "tg-time" and name == "format":
                    argument = value
            if tag == "span" and argument != "spoiler":
                raise fail(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
            nested.append((tag, argument, date, utf16, len(out)))
        else:
            if not nested:
                raise fail(f"Unexpected end tag at byte offset {begin}")
            while at(i) not in _SPACES and at(i) != ord(">"):
                i += 1
            end_tag = data[begin + 2 : i].decode("utf-8", "replace").lower()
            while at(i) != 0 and at(i) in _SPACES:
                i += 1
            if at(i) != ord(">"):
                raise fail(f"Unclosed end tag at byte offset {begin}")
            tag, argument, date, offset, out_begin = nested[-1]
            if end_tag and end_tag != tag:
                raise fail(
                    f'Unmatched end tag at byte offset {begin}, expected "</{tag}>", '
                    f'found "</{end_tag}>"'
                )
            if utf16 > offset:
                length = utf16 - offset
                last = entities[-1] if entities else None
                same_span = last is not None and (last["offset"], last["length"]) == (
                    offset,
                    length,
                )
                if tag in _SIMPLE_TAGS or tag == "span":
                    entities.append(entity(_SIMPLE_TAGS.get(tag, "spoiler"), offset, length))
                elif tag == "tg-emoji":
                    if not argument.isdigit() or int(argument) == 0:
                        raise fail("Invalid custom emoji identifier specified")
                    entities.append(
                        entity("custom_emoji", offset, length, custom_emoji_id=argument)
                    )
                elif tag == "tg-time":
                    if date > 0:
                        entities.append(
                            entity(
                                "date_time",
                                offset,
                                length,
                                unix_time=date,
                                date_time_format=argument or None,
                            )
                        )
                elif tag == "a":
                    url = argument or out[out_begin:].decode("utf-8", "replace")
                    link = _link_entity(url, offset, length)
                    if link is not None:
                        entities.append(link)
                elif tag == "pre":
                    if (
                        same_span
                        and last is not None
                        and last["type"] == "code"
                        and last.get("_lang")
                    ):
                        last["type"] = "pre"
                        last["language"] = last.pop("_lang")
                    else:
                        entities.append(entity("pre", offset, length))
                elif tag == "code":
                    if same_span and last is not None and last["type"] == "pre" and argument:
                        last["language"] = argument
                    else:
                        entities.append(entity("code", offset, length, _lang=argument or None))
                elif tag == "blockquote":
                    kind = "expandable_blockquote" if argument else "blockquote"
                    entities.append(entity(kind, offset, length))
            nested.pop()
        i += 1
    if nested:
        raise fail(f'Can\'t find end tag corresponding to start tag "{nested[-1][0]}"')
    for item in entities:
        item.pop("_lang", None)
    result = out.decode("utf-8", "surrogatepass")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in result):
        raise fail(
            "Text contains invalid Unicode characters after decoding HTML entities, check for "
            "unmatched surrogate code units"
        )
    return result, sort_entities(entities)


def sort_entities(entities: Iterable[Json]) -> list[Json]:
    """TDLib's order: by offset, longer first, then by type priority."""
    return sorted(
        entities, key=lambda e: (e["offset"], -e["length"], _PRIORITY.get(e["type"], 50))
    )


def trim_text(text: str, entities: Sequence[Json]) -> tuple[str, list[Json]]:
    """TDLib's ``fix_formatted_text`` trimming: trailing spaces and newlines go (entities are
    clipped), leading ones go up to the first entity; empty entities are dropped."""
    ents = [dict(e) for e in entities if e["length"] > 0]
    stripped = text.rstrip(" \n")
    end = utf16_len(stripped)
    ents = [e for e in ents if e["offset"] < end]
    for e in ents:
        e["length"] = min(e["length"], end - e["offset"])
    first = min((e["offset"] for e in ents), default=end)
    lead = 0
    while lead < first and lead < len(stripped) and stripped[lead] in " \n":
        lead += 1
    for e in ents:
        e["offset"] -= lead
    return stripped[lead:], sort_entities(ents)


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
