"""Telegram's text rules: lengths and offsets in UTF-16 code units, MessageEntity builders, and
the HTML parse mode, ported from TDLib's ``parse_html`` so that errors and entities match.
``updates`` re-exports all of it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

Json = dict[str, Any]


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's offsets and length limits."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def entity(type: str, offset: int, length: int, **extra: Any) -> Json:
    """A MessageEntity; offsets and lengths are in UTF-16 code units."""
    return {
        "type": type,
        "offset": offset,
        "length": length,
        **{k: v for k, v in extra.items() if v is not None},
    }


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
        mentioned = {"id": uid, "is_bot": False, "first_name": ""}  # updates.user(uid, "")
        return entity("text_mention", offset, length, user=mentioned)
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
