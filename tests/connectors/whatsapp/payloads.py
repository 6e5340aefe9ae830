"""The JSON the WhatsApp Cloud API exchanges: builders of webhook payloads (inbound messages of
every type, status updates). Ids, signatures and Graph API error bodies (``graph``) and the checks
of send requests and templates (``checks``) are re-exported here, so tests use one module.

Shapes follow Meta's "messages" webhook reference (developers.facebook.com/documentation/
business-messaging/whatsapp/webhooks/reference/messages/...) and the Cloud API error-code
reference. Builders are pure functions: ids and timestamps are generated unless given, and
optional fields are left out rather than sent as ``null``, as Meta does.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

# One module for tests: the request side lives in ``graph`` and ``checks``.
from .checks import (  # noqa: F401
    CAPTIONED,
    INTERACTIVE_TYPES,
    MESSAGE_TYPES,
    SUPPORTED_MIME,
    Template,
    base_mime,
    check_message,
    check_template_params,
    is_animated_webp,
    kind_for_mime,
    new_template_id,
    placeholders,
    render,
    templates_page,
)
from .graph import (  # noqa: F401
    ERROR_HREF,
    ERRORS,
    PRODUCT,
    ApiError,
    ErrorSpec,
    Json,
    graph_error,
    new_fbtrace_id,
    new_media_id,
    new_wamid,
    no_object_error,
    param_error,
    sha256_b64,
    signature,
    ts,
    webhook_error,
)

OBJECT = "whatsapp_business_account"
MEDIA_KINDS = ("image", "audio", "video", "document", "sticker")
STATUSES = ("sent", "delivered", "read", "failed")


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
