"""The checks of send requests (message types, lengths, media types, interactive limits) and
message templates (parameters, the paged template list). ``payloads`` re-exports all of it."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .graph import ApiError, Json, new_media_id, param_error

# -- send requests --------------------------------------------------------------------------------

# "Supported media types" of the media reference, by the message type that carries them.
SUPPORTED_MIME: dict[str, frozenset[str]] = {
    "audio": frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
    "document": frozenset({
        "text/plain", "application/pdf", "application/msword", "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }),
    "image": frozenset({"image/jpeg", "image/png"}),
    "sticker": frozenset({"image/webp"}),
    "video": frozenset({"video/3gpp", "video/mp4"}),
}  # fmt: skip
MESSAGE_TYPES = frozenset(
    "audio contacts document image interactive location reaction sticker template text video"
    .split()
)  # fmt: skip
INTERACTIVE_TYPES = frozenset(
    "button list cta_url flow product product_list catalog_message location_request_message "
    "address_message call_permission_request".split()
)
CAPTIONED = frozenset({"image", "video", "document"})
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


def base_mime(mime: str) -> str:
    return mime.split(";", 1)[0].strip().lower()


def kind_for_mime(mime: str) -> str | None:
    base = base_mime(mime)
    return next((kind for kind, types in SUPPORTED_MIME.items() if base in types), None)


def is_animated_webp(data: bytes) -> bool:
    """A WebP with a VP8X header whose animation flag (0x02) is set."""
    return (
        len(data) > 20
        and data[:4] == b"RIFF"
        and data[8:16] == b"WEBPVP8X"
        and bool(data[20] & 0x02)
    )


def check_message(
    body: Mapping[str, Any], *, text_length: int = 4096, caption_length: int = 1024
) -> tuple[str, str, Any]:
    """Check a ``POST /messages`` send request the way Cloud API does before looking anything
    up; returns (type, recipient wa_id, the type object). Raises ``ApiError`` 100/131009."""
    if body.get("recipient_type", "individual") != "individual":
        raise param_error("Param recipient_type must be individual.")
    to = body.get("to")
    wa_id = re.sub(r"\D", "", to) if isinstance(to, str) else ""
    if not wa_id:
        raise param_error("The parameter to is required.")
    type_ = body.get("type", "text")
    if type_ not in MESSAGE_TYPES:
        choices = ", ".join(sorted(t.upper() for t in MESSAGE_TYPES))
        raise param_error(f"Param type must be one of {{{choices}}} - got {type_!r}.")
    content = body.get(type_)
    if type_ == "contacts":
        _check_contacts(content)
    elif not isinstance(content, dict):
        raise param_error(f"The parameter {type_} is required and must be an object.")
    elif type_ == "text":
        text = content.get("body")
        if not isinstance(text, str) or not text:
            raise param_error("The parameter text['body'] is required.")
        if len(text) > text_length:
            raise param_error(f"Param text['body'] must be at most {text_length} characters long.")
    elif type_ in SUPPORTED_MIME:
        _check_media(type_, content, caption_length)
    elif type_ == "reaction":
        if not isinstance(content.get("message_id"), str):
            raise param_error("The parameter reaction['message_id'] is required.")
        if not isinstance(content.get("emoji", ""), str):
            raise param_error("Param reaction['emoji'] must be a string.")
    elif type_ == "location":
        for key in ("latitude", "longitude"):
            try:
                float(content[key])
            except (KeyError, TypeError, ValueError):
                raise param_error(f"The parameter location['{key}'] is required.") from None
    elif type_ == "interactive":
        _check_interactive(content)
    elif type_ == "template":
        language = content.get("language")
        if not isinstance(content.get("name"), str) or not content["name"]:
            raise param_error("The parameter template['name'] is required.")
        if not isinstance(language, dict) or not isinstance(language.get("code"), str):
            raise param_error("The parameter template['language']['code'] is required.")
    context = body.get("context")
    if context is not None and not (
        isinstance(context, dict) and isinstance(context.get("message_id"), str)
    ):
        raise param_error("Param context['message_id'] must be a message id.")
    return type_, wa_id, content


def _check_media(kind: str, content: Json, caption_length: int) -> None:
    if ("id" in content) == ("link" in content):
        raise param_error(f"Param {kind} must contain exactly one of id or link.")
    caption = content.get("caption")
    if caption is not None:
        if kind not in CAPTIONED:
            raise param_error(f"Param {kind}['caption'] is not supported for {kind} messages.")
        if len(str(caption)) > caption_length:
            raise param_error(
                f"Param {kind}['caption'] must be at most {caption_length} characters long."
            )
    link = content.get("link")
    if "link" in content and not (isinstance(link, str) and re.match(r"https?://", link)):
        raise param_error(f"Param {kind}['link'] must be a valid URL.")


def _check_contacts(cards: Any) -> None:
    if not isinstance(cards, list) or not cards:
        raise param_error("Param contacts must be an array with at least one contact.")
    for n, card in enumerate(cards):
        name = card.get("name") if isinstance(card, dict) else None
        if not isinstance(name, dict) or not name.get("formatted_name"):
            raise param_error(
                f"The parameter contacts[{n}]['name']['formatted_name'] is required."
            )


def _invalid(details: str) -> ApiError:
    return ApiError(131009, details=details)


def _check_interactive(content: Json) -> None:
    """Reply buttons: 1-3, unique titles up to 20 and ids up to 256; lists: button text up to
    20, 1-10 sections, 1-10 rows in all, row titles up to 24, descriptions up to 72; body text
    up to 1024."""
    kind = content.get("type")
    if kind not in INTERACTIVE_TYPES:
        raise param_error("Param interactive['type'] is not a valid interactive type.")
    if kind not in ("button", "list"):
        return
    body, action = content.get("body"), content.get("action")
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise param_error("The parameter interactive['body']['text'] is required.")
    if len(body["text"]) > 1024:
        raise _invalid("Body text length invalid. Max length: 1024")
    if not isinstance(action, dict):
        raise param_error("The parameter interactive['action'] is required.")
    if kind == "button":
        buttons = action.get("buttons")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            raise _invalid("Buttons count invalid. Min: 1, Max: 3")
        seen: set[tuple[str, str]] = set()
        for button in buttons:
            if not isinstance(button, dict) or button.get("type") != "reply":
                raise param_error("Param interactive['action']['buttons'][0]['type'] is invalid.")
            reply = button.get("reply")
            title = reply.get("title") if isinstance(reply, dict) else None
            ident = reply.get("id") if isinstance(reply, dict) else None
            if not isinstance(title, str) or not 1 <= len(title) <= 20:
                raise _invalid("Button title length invalid. Min length: 1, Max length: 20")
            if not isinstance(ident, str) or not 1 <= len(ident) <= 256:
                raise _invalid("Button ID length invalid. Min length: 1, Max length: 256")
            for key in (("title", title), ("id", ident)):
                if key in seen:
                    raise _invalid(f"Button {key[0]} must be unique.")
                seen.add(key)
        return
    sections = action.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
        raise _invalid("Sections count invalid. Min: 1, Max: 10")
    button_text = action.get("button")
    if not isinstance(button_text, str) or not 1 <= len(button_text) <= 20:
        raise _invalid("Button text length invalid. Min length: 1, Max length: 20")
    rows = [r for s in sections if isinstance(s, dict) for r in s.get("rows") or []]
    if not 1 <= len(rows) <= 10:
        raise _invalid("Total row count invalid. Min: 1, Max: 10")
    for row in rows:
        if not isinstance(row.get("title"), str) or not 1 <= len(row["title"]) <= 24:
            raise _invalid("Row title length invalid. Min length: 1, Max length: 24")
        if len(str(row.get("description", ""))) > 72:
            raise _invalid("Row description length invalid. Max length: 72")


# -- message templates ----------------------------------------------------------------------------


def new_template_id() -> str:
    return new_media_id()


@dataclass
class Template:
    """A message template as ``GET /{waba-id}/message_templates`` lists it."""

    name: str
    language: str
    body_text: str
    status: str = "APPROVED"
    category: str = "UTILITY"
    header_text: str | None = None
    footer_text: str | None = None
    id: str = field(default_factory=new_template_id)

    def json(self) -> Json:
        components: list[Json] = []
        if self.header_text is not None:
            components.append({"type": "HEADER", "format": "TEXT", "text": self.header_text})
        components.append({"type": "BODY", "text": self.body_text})
        if self.footer_text is not None:
            components.append({"type": "FOOTER", "text": self.footer_text})
        return {
            "name": self.name,
            "parameter_format": "POSITIONAL",
            "components": components,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.id,
        }


def placeholders(text: str | None) -> list[str]:
    """The distinct ``{{1}}`` / ``{{name}}`` placeholders of a template text, in order."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(text or "")))


def _param_value(param: Any) -> str:
    if not isinstance(param, dict):
        return str(param)
    value = param.get(param.get("type", "text"))
    if isinstance(value, dict):
        return str(value.get("fallback_value") or value.get("id") or value.get("link") or "")
    return str(value if value is not None else "")


def render(text: str, params: Sequence[Any]) -> str:
    """``text`` with ``{{n}}`` (and ``{{name}}`` via ``parameter_name``) filled in."""
    by_name = {p.get("parameter_name"): p for p in params if isinstance(p, dict)}

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key.isdigit() and 0 < int(key) <= len(params):
            return _param_value(params[int(key) - 1])
        return _param_value(by_name[key]) if key in by_name else match.group(0)

    return _PLACEHOLDER.sub(fill, text)


def check_template_params(template: Template, content: Mapping[str, Any]) -> str:
    """Match the request's header/body parameters with the template's placeholders (132000)
    and return the rendered body text."""
    given: dict[str, list[Any]] = {}
    for comp in content.get("components") or []:
        if isinstance(comp, dict):
            params = comp.get("parameters")
            given[str(comp.get("type", "")).lower()] = params if isinstance(params, list) else []
    for comp_type, text in (("header", template.header_text), ("body", template.body_text)):
        expected, got = len(placeholders(text)), len(given.get(comp_type, []))
        if expected != got:
            raise ApiError(
                132000,
                details=f"{comp_type}: number of localizable_params ({got}) does not match the "
                f"expected number of params ({expected})",
            )
    return render(template.body_text, given.get("body", []))


def templates_page(templates: Sequence[Template], query: Mapping[str, str], url: str) -> Json:
    """A page of ``GET /{waba-id}/message_templates``: ``data`` and Graph cursor ``paging``
    (``cursors.before/after``, ``next``/``previous`` only where there is more). Filters: name,
    status, language, category; ``limit`` (default 25), ``after``, ``before``."""
    try:
        limit = max(1, min(int(query.get("limit", "25")), 1000))
    except ValueError:
        raise param_error("Param limit must be an integer.") from None
    filters = ("name", "status", "language", "category")
    matching = [
        t for t in templates if all(query.get(k) in (None, getattr(t, k)) for k in filters)
    ]
    start = 0
    if "after" in query:
        start = _cursor(query["after"]) + 1
    elif "before" in query:
        start = max(0, _cursor(query["before"]) - limit)
    page = matching[start : start + limit]
    result: Json = {"data": [t.json() for t in page]}
    if page:
        cursors = {"before": _encode(start), "after": _encode(start + len(page) - 1)}
        paging: Json = {"cursors": cursors}
        keep = {k: v for k, v in query.items() if k not in ("after", "before")}
        keep["limit"] = str(limit)
        if start + len(page) < len(matching):
            paging["next"] = f"{url}?{urlencode({**keep, 'after': cursors['after']})}"
        if start > 0:
            paging["previous"] = f"{url}?{urlencode({**keep, 'before': cursors['before']})}"
        result["paging"] = paging
    return result


def _encode(index: int) -> str:
    return base64.urlsafe_b64encode(f"tpl:{index}".encode()).decode().rstrip("=")


def _cursor(value: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        return int(raw.removeprefix("tpl:"))
    except ValueError:
        raise param_error("Param after/before must be a valid cursor.") from None
