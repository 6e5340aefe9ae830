"""Inbound: the ``POST /events`` endpoint and the payload schema it accepts.

Checks run in this order, and nothing from a rejected request reaches the host: body size
(413), signature (401), JSON syntax (400), schema (400, naming the bad field). An accepted
event is answered only after ``BridgeHost.handle_remote_event`` returned; if that fails the
answer is 503 so the sender retries. ``html`` is remote HTML: it goes through the same
allow-list sanitiser as mail (``bridge.connectors.sanitize``) before anything else sees it.

Every event has ``type`` (default ``message``), ``id``, ``chat`` and ``sender``. For
``message`` ``id`` is the new message's; for ``edit``, ``delete``, ``reaction``,
``reaction_remove`` and ``button`` it names the message acted on. A ``button`` event reports
that the customer pressed a reply button the bridge sent (``buttons`` of an outbound
message): ``button_id`` (the button's ``id``, required), ``title`` (as shown) and
``press_id`` (required: the system's own id of this press, the same when it is sent again,
so that a repeat is recorded once).

A ``consent`` event records a consent step the in-house system took for one of its users
(the sender): ``id`` is the system's own id of the step (the same when sent again), ``list``
the consent list's name, ``step`` one of ``CONSENT_STEPS``, and ``proof`` what the system
keeps as its proof: a flat object of at most 20 strings (each at most 1,000 characters) and
numbers, with ``at`` (required: when, in milliseconds since the epoch), usually
``text_version`` and ``source``. It becomes a ``RemoteConsent``, which makes no room.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Mapping
from typing import Any, NoReturn

from aiohttp import web
from yarl import URL

from ...connector import BridgeHost
from ...events import (
    RemoteAttachment,
    RemoteButtonPress,
    RemoteChat,
    RemoteConsent,
    RemoteDelete,
    RemoteEdit,
    RemoteEvent,
    RemoteMessage,
    RemoteReaction,
    RemoteReactionRemove,
    RemoteUser,
    consent_proof_problem,
)
from ...logsafe import pii
from ...types import MessageID, RemoteChatID, RemoteUserID
from ..http import BodyTooLarge, read_body
from ..sanitize import sanitize_html
from .config import WebhookConfig
from .protocol import SIGNATURE_HEADER, SignatureError, check

MAX_ID_LENGTH = 255
MAX_NAME_LENGTH = 255
MAX_TOPIC_LENGTH = 4096
MAX_URL_LENGTH = 4096
MAX_ADDRESS_LENGTH = 320
MAX_FIELDS = 50
MAX_FIELD_NAME_LENGTH = 64
MAX_FIELD_VALUE_LENGTH = 1000
LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,3}")
"""An IETF language tag (``de``, ``pt-BR``)."""
ROUTING_KEYS = ("language", "to", "fields")
MAX_TIMESTAMP = 1e11
"""Timestamps are seconds; anything from the year 5138 on is milliseconds sent by mistake."""
EVENT_TYPES = ("message", "edit", "delete", "reaction", "reaction_remove", "button", "consent")
CONSENT_STEPS = ("confirmed", "declined", "withdrawn")
MAX_PROOF_VALUES = 20
MAX_PROOF_TEXT = 1000
MIN_PROOF_AT = 1e11
"""``proof.at`` is milliseconds: anything before 1973 is seconds sent by mistake."""


class SchemaError(ValueError):
    """The payload does not match the schema; ``field`` is the dotted path of the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class _Object:
    """One JSON object of the payload, read field by field with the path kept for errors."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise SchemaError(path or "body", "must be a JSON object")
        self.data: dict[str, Any] = data
        self.path = path

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, problem: str) -> NoReturn:
        raise SchemaError(self.name(key), problem)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def string(
        self, key: str, *, required: bool = False, max_length: int | None = None
    ) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.fail(key, "is required")
            return None
        if not isinstance(value, str):
            self.fail(key, "must be a string")
        if "\x00" in value:
            self.fail(key, "must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.fail(key, "must be valid Unicode (no lone surrogates)")
        if max_length is not None and len(value) > max_length:
            self.fail(key, f"must be at most {max_length} characters")
        return value

    def ident(self, key: str, *, required: bool = False) -> str | None:
        value = self.string(key, required=required)
        if value is not None and not value:
            self.fail(key, "must not be empty")
        # Bytes, as Matrix counts them: ids end up in user ids, room state and index keys.
        if value is not None and len(value.encode()) > MAX_ID_LENGTH:
            self.fail(key, f"must be at most {MAX_ID_LENGTH} bytes of UTF-8")
        return value

    def required_ident(self, key: str) -> str:
        value = self.ident(key, required=True)
        assert value is not None
        return value

    def html(self, key: str) -> str | None:
        """Remote HTML through the shared allow-list (the same as mail); None when nothing
        survives it, so the plain text stands alone."""
        value = self.string(key)
        return (sanitize_html(value) or None) if value else None

    def boolean(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, bool):
            self.fail(key, "must be true or false")
        return value

    def number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, "must be a number")
        if not math.isfinite(value):
            self.fail(key, "must be a finite number")
        return value

    def url(self, key: str, *, required: bool = False) -> str | None:
        value = self.string(key, required=required, max_length=MAX_URL_LENGTH)
        if value is None:
            return None
        try:
            url = URL(value)
        except (ValueError, TypeError):
            self.fail(key, "must be an http(s) URL")
        if url.scheme not in ("http", "https") or not url.host:
            self.fail(key, "must be an http(s) URL")
        return value

    def child(self, key: str, *, required: bool = False) -> _Object | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.fail(key, "is required")
            return None
        return _Object(value, self.name(key))


def parse_event(data: Any) -> RemoteEvent:
    """Map a decoded payload to a typed remote event, or raise ``SchemaError``."""
    body = _Object(data, "")
    kind = body.string("type") or "message"
    if kind not in EVENT_TYPES:
        body.fail("type", f"must be one of {', '.join(EVENT_TYPES)}")
    message_id = MessageID(body.required_ident("id"))
    chat = _chat(body)
    sender = _sender(body)
    timestamp = body.number("timestamp")
    if timestamp is not None and not 0 <= timestamp < MAX_TIMESTAMP:
        body.fail("timestamp", "must be seconds since the epoch")
    common: dict[str, Any] = {"chat": chat, "sender": sender, "timestamp": timestamp}

    if kind == "message":
        attachments = _attachments(body)
        text = body.string("text") or ""
        if not text and not attachments:
            body.fail("text", "is required unless an attachment is given")
        reply_to = body.ident("reply_to")
        routing = _routing(body)
        return RemoteMessage(
            **common,
            metadata={"routing": routing} if routing else {},
            message_id=message_id,
            text=text,
            html=body.html("html"),
            attachments=attachments,
            reply_to=MessageID(reply_to) if reply_to is not None else None,
            notice=bool(body.boolean("notice")),
        )
    if kind == "edit":
        new_text = body.string("text", required=True)
        if not new_text:
            body.fail("text", "must not be empty")
        return RemoteEdit(
            **common,
            message_id=message_id,
            text=new_text,
            html=body.html("html"),
            edit_id=body.ident("edit_id"),
        )
    if kind == "delete":
        return RemoteDelete(**common, message_id=message_id)
    if kind == "consent":
        return _consent(body, message_id, common)
    if kind == "button":
        return RemoteButtonPress(
            **common,
            message_id=message_id,
            button_id=body.required_ident("button_id"),
            title=body.string("title", max_length=MAX_NAME_LENGTH) or "",
            press_id=body.required_ident("press_id"),
        )
    emoji = body.string("emoji", required=True, max_length=MAX_ID_LENGTH)
    if not emoji:
        body.fail("emoji", "must not be empty")
    if kind == "reaction":
        return RemoteReaction(**common, message_id=message_id, emoji=emoji)
    return RemoteReactionRemove(
        **common, message_id=message_id, emoji=emoji, removal_id=body.ident("removal_id")
    )


def _consent(body: _Object, step_id: str, common: dict[str, Any]) -> RemoteConsent:
    step = body.string("step", required=True)
    if step not in CONSENT_STEPS:
        body.fail("step", f"must be one of {', '.join(CONSENT_STEPS)}")
    proof_object = body.child("proof", required=True)
    assert proof_object is not None
    proof = _flat(proof_object, most=MAX_PROOF_VALUES, text=MAX_PROOF_TEXT, booleans=False)
    at = proof.get("at")
    if not isinstance(at, int | float) or not MIN_PROOF_AT <= at < MAX_TIMESTAMP * 1000:
        proof_object.fail("at", "is required: when, in milliseconds since the epoch")
    problem = consent_proof_problem(step, proof, time.time() * 1000)
    if problem is not None:  # refused now, while the in-house system still listens
        body.fail("proof", problem)
    if common["timestamp"] is None:
        common = {**common, "timestamp": at / 1000}
    return RemoteConsent(
        **common,
        consent_id=step_id,
        list=body.required_ident("list"),
        step=step,
        proof=proof,
    )


def _chat(body: _Object) -> RemoteChat:
    chat = body.child("chat", required=True)
    assert chat is not None
    return RemoteChat(
        id=RemoteChatID(chat.required_ident("id")),
        name=chat.string("name", max_length=MAX_NAME_LENGTH),
        topic=chat.string("topic", max_length=MAX_TOPIC_LENGTH),
        is_group=bool(chat.boolean("is_group")),
    )


def _sender(body: _Object) -> RemoteUser:
    sender = body.child("sender", required=True)
    assert sender is not None
    return RemoteUser(
        id=RemoteUserID(sender.required_ident("id")),
        displayname=sender.string("name", max_length=MAX_NAME_LENGTH),
        avatar_url=sender.url("avatar_url"),
    )


def _routing(body: _Object) -> dict[str, Any]:
    """The facts the team inbox routes a new conversation by: ``language`` (lower-cased),
    ``to`` and ``fields``, a flat object of strings, numbers and booleans."""
    routing = body.child("routing")
    if routing is None:
        return {}
    for key in routing.data:
        if key not in ROUTING_KEYS:
            routing.fail(key, f"is not a routing fact (use {', '.join(ROUTING_KEYS)})")
    facts: dict[str, Any] = {}
    language = routing.string("language", max_length=35)
    if language is not None:
        if not LANGUAGE.fullmatch(language):
            routing.fail("language", "must be a language tag like de or pt-BR")
        facts["language"] = language.lower()
    to = routing.string("to", max_length=MAX_ADDRESS_LENGTH)
    if to:
        facts["to"] = to
    fields = routing.child("fields")
    if fields is not None and fields.data:
        facts["fields"] = _flat(
            fields, most=MAX_FIELDS, text=MAX_FIELD_VALUE_LENGTH, booleans=True
        )
    return facts


def _flat(
    values: _Object, *, most: int, text: int, booleans: bool
) -> dict[str, str | float | bool]:
    """A flat object of at most ``most`` strings (of at most ``text`` characters), numbers and,
    with ``booleans``, true/false, under names of 1 to ``MAX_FIELD_NAME_LENGTH`` characters."""
    if len(values.data) > most:
        raise SchemaError(values.path, f"must have at most {most} values")
    found: dict[str, str | float | bool] = {}
    for key, value in values.data.items():
        if not _valid_name(key):
            raise SchemaError(
                values.path,
                f"names must be 1 to {MAX_FIELD_NAME_LENGTH} characters of valid Unicode",
            )
        if isinstance(value, str):
            found[key] = values.string(key, max_length=text) or ""
        elif isinstance(value, bool) and booleans:
            found[key] = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            number = values.number(key)
            assert number is not None
            found[key] = number
        else:
            kinds = "a string, a number or true/false" if booleans else "a string or a number"
            values.fail(key, f"must be {kinds}")
    return found


def _valid_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return 0 < len(name) <= MAX_FIELD_NAME_LENGTH and "\x00" not in name


def _attachments(body: _Object) -> tuple[RemoteAttachment, ...]:
    if body.has("attachments") and body.has("attachment"):
        body.fail("attachment", "give either attachment or attachments, not both")
    if body.has("attachment"):
        single = body.child("attachment")
        assert single is not None
        return (_attachment(single),)
    items = body.data.get("attachments")
    if items is None:
        return ()
    if not isinstance(items, list):
        body.fail("attachments", "must be a list of objects")
    return tuple(_attachment(_Object(item, f"attachments[{i}]")) for i, item in enumerate(items))


def _attachment(item: _Object) -> RemoteAttachment:
    size = item.data.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        item.fail("size", "must be a whole number of bytes")
    url = item.url("url", required=True)
    assert url is not None
    return RemoteAttachment(
        url=url,
        filename=item.string("filename", max_length=MAX_NAME_LENGTH),
        mimetype=item.string("mimetype", max_length=MAX_NAME_LENGTH),
        size=size,
    )


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


class InboundEndpoint:
    """Serves ``POST /events`` for one account."""

    def __init__(self, config: WebhookConfig, host: BridgeHost) -> None:
        self.config = config
        self.host = host
        self.log: logging.Logger = host.log
        self.open = False

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = await read_body(request, self.config.max_body_size)
        except BodyTooLarge as e:
            return _error(413, str(e))
        except Exception as e:
            self.log.debug("Could not read webhook body: %s", e)
            return _error(400, "could not read the request body")

        try:
            check(
                self.config.secret,
                body,
                request.headers.get(SIGNATURE_HEADER),
                tolerance=self.config.signature_tolerance,
            )
        except SignatureError as e:
            return _error(401, str(e))

        try:
            data = json.loads(body, parse_constant=_reject_constant)
        except RecursionError:
            return _error(400, "body is nested too deeply")
        except ValueError:
            return _error(400, "body is not valid JSON")
        try:
            event = parse_event(data)
        except SchemaError as e:
            return _error(400, str(e))

        # No await between this check and the hand-over: after stop() nothing new is handed.
        if not self.open:
            return _error(503, "the connector is stopped", {"Retry-After": "30"})
        try:
            new = await self.host.handle_remote_event(event)
        except Exception:
            self.log.exception("Could not record webhook event %s", pii(event.dedup_key()))
            return _error(503, "could not record the event, retry later", {"Retry-After": "5"})
        return web.json_response({"status": "accepted" if new else "duplicate"})
