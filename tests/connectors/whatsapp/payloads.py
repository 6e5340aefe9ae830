"""The JSON the WhatsApp Cloud API exchanges: builders of webhook payloads (inbound messages of
every type, status updates) and of Graph API error bodies, and the checks of send requests
(message types, lengths, media types, interactive limits, template parameters).

Shapes follow Meta's "messages" webhook reference (developers.facebook.com/documentation/
business-messaging/whatsapp/webhooks/reference/messages/...) and the Cloud API error-code
reference. Builders are pure functions: ids and timestamps are generated unless given, and
optional fields are left out rather than sent as ``null``, as Meta does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

Json = dict[str, Any]

OBJECT = "whatsapp_business_account"
PRODUCT = "whatsapp"
ERROR_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
MEDIA_KINDS = ("image", "audio", "video", "document", "sticker")
STATUSES = ("sent", "delivered", "read", "failed")


# -- ids, times, signatures -----------------------------------------------------------------------


def new_wamid(wa_id: str = "") -> str:
    """A message id shaped like Meta's: ``wamid.`` and base64 of a small binary record that
    carries the user's number and a random hex id (so it starts ``wamid.HBg``)."""
    number = wa_id.encode()[:255]
    raw = (
        b"\x1c\x18"
        + bytes([len(number)])
        + number
        + b"\x15\x02\x00\x11\x18\x12"
        + secrets.token_hex(9).upper().encode()
        + b"\x00"
    )
    return "wamid." + base64.b64encode(raw).decode()


def new_media_id() -> str:
    """Media ids are numeric strings of 15-16 digits."""
    return str(secrets.randbelow(9 * 10**15) + 10**15)


def new_fbtrace_id() -> str:
    return "A" + secrets.token_urlsafe(16)[:22]


def ts(value: float | None = None) -> str:
    """Webhook timestamps are Unix seconds as a *string*."""
    return str(int(time.time() if value is None else value))


def signature(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def sha256_b64(data: bytes) -> str:
    """Inbound media webhooks carry the file hash base64-encoded."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# -- Graph API errors -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorSpec:
    http_status: int
    title: str
    details: str
    subcode: int | None = None


ERRORS: dict[int, ErrorSpec] = {
    # Graph / authorization errors.
    1: ErrorSpec(500, "An unknown error occurred", "An unknown error occurred"),
    2: ErrorSpec(503, "Service temporarily unavailable", "Service temporarily unavailable"),
    100: ErrorSpec(400, "Invalid parameter", "Invalid parameter"),
    190: ErrorSpec(401, "Invalid OAuth access token - Cannot parse access token", ""),
    # Throttling. Meta's table gives 400 for both; the documented 130429 example has a subcode.
    130429: ErrorSpec(
        400, "Rate limit hit", "Cloud API message throughput has been reached.", 2494055
    ),
    131056: ErrorSpec(
        400,
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone number "
        "to the same phone number in a short period of time.",
    ),
    # Sending.
    131000: ErrorSpec(
        500, "Something went wrong", "Message failed to send due to an unknown error."
    ),
    131009: ErrorSpec(400, "Parameter value is not valid", "Parameter value is not valid"),
    131016: ErrorSpec(500, "Service unavailable", "A service is temporarily unavailable."),
    131026: ErrorSpec(400, "Message Undeliverable", "Message Undeliverable."),
    131047: ErrorSpec(
        400,
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last "
        "replied to this number.",
    ),
    131051: ErrorSpec(400, "Unsupported message type", "Message type is not currently supported."),
    131053: ErrorSpec(
        400, "Media upload error", "Unable to upload the media used in the message."
    ),
    # Templates.
    132000: ErrorSpec(
        400,
        "Number of parameters does not match the expected number of params",
        "Number of parameters does not match the expected number of params",
    ),
    132001: ErrorSpec(
        404,
        "Template name does not exist in the translation",
        "Template name does not exist in the translation",
    ),
    132015: ErrorSpec(400, "Template is Paused", "Template is paused due to low quality."),
    132016: ErrorSpec(400, "Template is Disabled", "Template is disabled due to low quality."),
}


def graph_error(
    code: int,
    *,
    details: str | None = None,
    message: str | None = None,
    error_type: str = "OAuthException",
    subcode: int | None = None,
    fbtrace_id: str | None = None,
) -> Json:
    """A Graph API error body: ``{"error": {message, type, code, error_data, fbtrace_id}}``.
    ``message`` defaults to ``(#code) title`` as Cloud API answers; ``details`` to the
    catalogue's text. Code 190 carries no ``error_data`` (it is not a WhatsApp error)."""
    spec = ERRORS.get(code, ErrorSpec(400, "Unknown error", "Unknown error"))
    error: Json = {"message": message or f"(#{code}) {spec.title}", "type": error_type}
    error["code"] = code
    if code != 190:
        error["error_data"] = {"messaging_product": PRODUCT, "details": details or spec.details}
    if subcode is None:
        subcode = spec.subcode
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = fbtrace_id or new_fbtrace_id()
    return {"error": error}


def webhook_error(
    code: int, *, title: str | None = None, details: str | None = None, href: bool = True
) -> Json:
    """An entry of ``errors[]`` in webhooks (statuses, messages, value): code, title, message
    (the same text as title), ``error_data.details`` and the error-codes ``href``."""
    spec = ERRORS.get(code, ErrorSpec(400, "Unknown error", "Unknown error"))
    text = title or spec.title
    error: Json = {
        "code": code,
        "title": text,
        "message": text,
        "error_data": {"details": details or spec.details},
    }
    if href:
        error["href"] = ERROR_HREF
    return error


class ApiError(Exception):
    """A Graph error answer: ``status`` and the ``{"error": ...}`` body."""

    def __init__(
        self,
        code: int,
        *,
        details: str | None = None,
        message: str | None = None,
        status: int | None = None,
        subcode: int | None = None,
        error_type: str = "OAuthException",
        error_data: bool = True,
    ) -> None:
        spec = ERRORS.get(code)
        self.code = code
        self.status = status or (spec.http_status if spec else 400)
        self.body = graph_error(
            code, details=details, message=message, error_type=error_type, subcode=subcode
        )
        if not error_data:
            self.body["error"].pop("error_data", None)
        super().__init__(self.body["error"]["message"])


def param_error(details: str) -> ApiError:
    return ApiError(100, details=details)


def no_object_error(node: str, method: str) -> ApiError:
    return ApiError(
        100,
        message=(
            f"Unsupported {method} request. Object with ID '{node}' does not exist, cannot be "
            "loaded due to missing permissions, or does not support this operation. Please read "
            "the Graph API documentation at https://developers.facebook.com/docs/graph-api"
        ),
        subcode=33,
        error_type="GraphMethodException",
        error_data=False,
    )


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
    """Reply buttons: 1-3, titles up to 20; lists: button text up to 20, 1-10 sections, 1-10
    rows in all, row titles up to 24, descriptions up to 72; body text up to 1024."""
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
        for button in buttons:
            reply = button.get("reply") if isinstance(button, dict) else None
            title = reply.get("title") if isinstance(reply, dict) else None
            if not isinstance(title, str) or not 1 <= len(title) <= 20:
                raise _invalid("Button title length invalid. Min length: 1, Max length: 20")
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


# -- inbound messages -----------------------------------------------------------------------------


def reply_context(
    from_: str, message_id: str, *, forwarded: bool = False, frequently_forwarded: bool = False
) -> Json:
    """``context`` of a reply: the number that sent the quoted message and its wamid."""
    ctx: Json = {"from": from_, "id": message_id}
    if forwarded:
        ctx["forwarded"] = True
    if frequently_forwarded:
        ctx["frequently_forwarded"] = True
    return ctx


def message(
    from_: str,
    type_: str,
    content: Any = None,
    *,
    wamid: str | None = None,
    timestamp: float | None = None,
    context: Json | None = None,
) -> Json:
    """One entry of ``messages[]``: from, id, timestamp, type and ``{type: content}``."""
    msg: Json = {"from": from_, "id": wamid or new_wamid(from_), "timestamp": ts(timestamp)}
    if context is not None:
        msg["context"] = context
    msg["type"] = type_
    if content is not None:
        msg[type_] = content
    return msg


def text_message(from_: str, body: str, **kw: Any) -> Json:
    return message(from_, "text", {"body": body}, **kw)


def media_message(
    kind: str,
    from_: str,
    media_id: str,
    *,
    mime_type: str,
    sha256: str,
    caption: str | None = None,
    filename: str | None = None,
    voice: bool | None = None,
    animated: bool | None = None,
    **kw: Any,
) -> Json:
    """image / audio / video / document / sticker: id, mime_type, sha256 (base64) and, where
    the type has them, caption, filename (documents), voice (audio), animated (stickers)."""
    if kind not in MEDIA_KINDS:
        raise ValueError(f"not a media kind: {kind}")
    content: Json = {"mime_type": mime_type, "sha256": sha256, "id": media_id}
    if caption is not None:
        content["caption"] = caption
    if filename is not None:
        content["filename"] = filename
    if voice is not None:
        content["voice"] = voice
    if animated is not None:
        content["animated"] = animated
    return message(from_, kind, content, **kw)


def image_message(from_: str, media_id: str, **kw: Any) -> Json:
    kw.setdefault("mime_type", "image/jpeg")
    return media_message("image", from_, media_id, **kw)


def audio_message(from_: str, media_id: str, *, voice: bool = False, **kw: Any) -> Json:
    kw.setdefault("mime_type", "audio/ogg; codecs=opus" if voice else "audio/mpeg")
    return media_message("audio", from_, media_id, voice=voice, **kw)


def video_message(from_: str, media_id: str, **kw: Any) -> Json:
    kw.setdefault("mime_type", "video/mp4")
    return media_message("video", from_, media_id, **kw)


def document_message(from_: str, media_id: str, **kw: Any) -> Json:
    kw.setdefault("mime_type", "application/pdf")
    return media_message("document", from_, media_id, **kw)


def sticker_message(from_: str, media_id: str, *, animated: bool = False, **kw: Any) -> Json:
    kw.setdefault("mime_type", "image/webp")
    return media_message("sticker", from_, media_id, animated=animated, **kw)


def location_message(
    from_: str,
    latitude: float,
    longitude: float,
    *,
    name: str | None = None,
    address: str | None = None,
    url: str | None = None,
    **kw: Any,
) -> Json:
    content: Json = {"latitude": latitude, "longitude": longitude}
    for key, value in (("name", name), ("address", address), ("url", url)):
        if value is not None:
            content[key] = value
    return message(from_, "location", content, **kw)


def contact_card(
    formatted_name: str,
    *,
    first_name: str | None = None,
    last_name: str | None = None,
    phones: Sequence[str | Mapping[str, Any]] = (),
    emails: Sequence[str] = (),
    org: Mapping[str, Any] | None = None,
    urls: Sequence[str] = (),
    birthday: str | None = None,
) -> Json:
    """One shared contact: ``name`` (formatted_name required), phones ({phone, type, wa_id}),
    emails, org, urls, birthday (YYYY-MM-DD)."""
    name: Json = {"formatted_name": formatted_name}
    if first_name is not None:
        name["first_name"] = first_name
    if last_name is not None:
        name["last_name"] = last_name
    card: Json = {"name": name}
    if phones:
        card["phones"] = [
            dict(p) if isinstance(p, Mapping) else {"phone": p, "type": "CELL"} for p in phones
        ]
    if emails:
        card["emails"] = [{"email": e, "type": "WORK"} for e in emails]
    if org is not None:
        card["org"] = dict(org)
    if urls:
        card["urls"] = [{"url": u, "type": "WORK"} for u in urls]
    if birthday is not None:
        card["birthday"] = birthday
    return card


def contacts_message(from_: str, cards: Sequence[Json], **kw: Any) -> Json:
    return message(from_, "contacts", [dict(c) for c in cards], **kw)


def button_reply_message(from_: str, button_id: str, title: str, **kw: Any) -> Json:
    """A tap on a reply button of an interactive message (``context`` names that message)."""
    content = {"type": "button_reply", "button_reply": {"id": button_id, "title": title}}
    return message(from_, "interactive", content, **kw)


def list_reply_message(
    from_: str, row_id: str, title: str, description: str | None = None, **kw: Any
) -> Json:
    reply: Json = {"id": row_id, "title": title}
    if description is not None:
        reply["description"] = description
    return message(from_, "interactive", {"type": "list_reply", "list_reply": reply}, **kw)


def template_button_message(from_: str, payload: str, text: str, **kw: Any) -> Json:
    """A tap on a quick-reply button of a template message: type ``button``."""
    return message(from_, "button", {"payload": payload, "text": text}, **kw)


def reaction_message(from_: str, message_id: str, emoji: str, **kw: Any) -> Json:
    """A reaction to ``message_id``; an empty ``emoji`` is a removed reaction, which Meta sends
    without the ``emoji`` field."""
    content: Json = {"message_id": message_id}
    if emoji:
        content["emoji"] = emoji
    return message(from_, "reaction", content, **kw)


def unsupported_message(from_: str, unsupported_type: str = "unknown", **kw: Any) -> Json:
    """A message Cloud API cannot pass on (polls, edits, ...): type ``unsupported`` with the
    131051 "Message type unknown" error."""
    msg = message(from_, "unsupported", {"type": unsupported_type}, **kw)
    msg["errors"] = [
        webhook_error(
            131051,
            title="Message type unknown",
            details="Message type is currently not supported.",
            href=False,
        )
    ]
    return msg


def with_errors(msg: Json, errors: Sequence[Json]) -> Json:
    """A copy of ``msg`` carrying ``errors[]`` (entry.changes.value.messages.errors)."""
    return {**msg, "errors": [dict(e) for e in errors]}


# -- statuses -------------------------------------------------------------------------------------


def conversation(
    conversation_id: str | None = None,
    *,
    origin: str = "service",
    expiration_timestamp: float | None = None,
) -> Json:
    conv: Json = {"id": conversation_id or secrets.token_hex(16)}
    if expiration_timestamp is not None:
        conv["expiration_timestamp"] = ts(expiration_timestamp)
    conv["origin"] = {"type": origin}
    return conv


def pricing(
    category: str = "service",
    *,
    billable: bool = True,
    pricing_model: str = "PMP",
    pricing_type: str = "regular",
) -> Json:
    """The per-message pricing object (``PMP`` since July 2025; older payloads say ``CBP`` and
    have no ``type``)."""
    price: Json = {"billable": billable, "pricing_model": pricing_model}
    if pricing_model == "PMP":
        price["type"] = pricing_type
    price["category"] = category
    return price


def status_update(
    wamid: str,
    status: str,
    recipient_id: str,
    *,
    timestamp: float | None = None,
    conversation: Json | None = None,
    pricing: Json | None = None,
    errors: Sequence[Json] | None = None,
    biz_opaque_callback_data: str | None = None,
) -> Json:
    """One entry of ``statuses[]``: id, status (sent/delivered/read/failed), timestamp,
    recipient_id, and conversation/pricing (sent, delivered, read) or errors (failed)."""
    if status not in STATUSES:
        raise ValueError(f"unknown status: {status}")
    entry: Json = {"id": wamid, "status": status, "timestamp": ts(timestamp)}
    entry["recipient_id"] = recipient_id
    if biz_opaque_callback_data is not None:
        entry["biz_opaque_callback_data"] = biz_opaque_callback_data
    if conversation is not None:
        entry["conversation"] = conversation
    if pricing is not None:
        entry["pricing"] = pricing
    if errors:
        entry["errors"] = [dict(e) for e in errors]
    return entry


# -- envelopes ------------------------------------------------------------------------------------


def contact_profile(wa_id: str, name: str) -> Json:
    return {"profile": {"name": name}, "wa_id": wa_id}


def envelope(
    *,
    waba_id: str,
    phone_number_id: str,
    display_phone_number: str,
    messages: Sequence[Json] | None = None,
    contacts: Sequence[Json] | None = None,
    statuses: Sequence[Json] | None = None,
    errors: Sequence[Json] | None = None,
) -> Json:
    """The ``messages`` webhook: object, entry[{id: WABA, changes[{field, value}]}] with value
    {messaging_product, metadata{display_phone_number, phone_number_id}, contacts?, messages?,
    statuses?, errors?}."""
    value: Json = {
        "messaging_product": PRODUCT,
        "metadata": {
            "display_phone_number": display_phone_number,
            "phone_number_id": phone_number_id,
        },
    }
    if contacts:
        value["contacts"] = [dict(c) for c in contacts]
    if messages:
        value["messages"] = [dict(m) for m in messages]
    if statuses:
        value["statuses"] = [dict(s) for s in statuses]
    if errors:
        value["errors"] = [dict(e) for e in errors]
    change = {"value": value, "field": "messages"}
    return {"object": OBJECT, "entry": [{"id": waba_id, "changes": [change]}]}


def messages_payload(
    messages: Sequence[Json],
    *,
    waba_id: str,
    phone_number_id: str,
    display_phone_number: str,
    names: Mapping[str, str] | None = None,
) -> Json:
    """An envelope for inbound ``messages`` with one ``contacts`` entry per sender (profile
    name from ``names``, else the number)."""
    senders = list(dict.fromkeys(m["from"] for m in messages))
    return envelope(
        waba_id=waba_id,
        phone_number_id=phone_number_id,
        display_phone_number=display_phone_number,
        messages=messages,
        contacts=[contact_profile(s, (names or {}).get(s, s)) for s in senders],
    )


def iter_values(payload: Mapping[str, Any]) -> Iterator[Json]:
    """Every ``entry[].changes[].value`` of a webhook payload."""
    for entry in payload.get("entry") or []:
        for change in entry.get("changes") or []:
            value = change.get("value")
            if isinstance(value, dict):
                yield value


def iter_messages(payload: Mapping[str, Any]) -> Iterator[Json]:
    for value in iter_values(payload):
        yield from value.get("messages") or []


def iter_statuses(payload: Mapping[str, Any]) -> Iterator[Json]:
    for value in iter_values(payload):
        yield from value.get("statuses") or []
