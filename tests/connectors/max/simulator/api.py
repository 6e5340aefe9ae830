"""The Bot API methods of the MAX simulator: what the bot calls, answered as MAX does
(JSON, errors as ``{"code": …, "message": …}`` with the HTTP status), with the documented
limits: the token only in ``Authorization``, text up to 4000 characters, about 2 messages a
second per chat and 30 requests a second per bot (429 beyond), one-time upload URLs,
``attachment.not.ready`` while an upload is processed, deletion only of the bot's own messages
younger than 24 hours, long polling off while a webhook subscription is set."""

from __future__ import annotations

import re
import secrets
from json import JSONDecodeError
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .records import ApiError, DeletionRecord, EditRecord, Json, SentMessage, StoredMessage, Upload
from .updates import new_mid

if TYPE_CHECKING:
    from .server import MaxSimulator

UPLOAD_TYPES = ("image", "video", "audio", "file")
FORMATS = ("markdown", "html")
SECRET = re.compile(r"[A-Za-z0-9_-]{5,256}")


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


def routes(sim: MaxSimulator) -> list[web.RouteDef]:
    def guarded(handler: Any) -> Any:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                _authorize(sim, request)
                return web.json_response(await handler(sim, request))
            except Refused as e:
                sim.errors.append(
                    ApiError(
                        request.method, request.path, e.status, e.code, e.message, sim.clock.now()
                    )
                )
                sim.notify()
                headers = {"Retry-After": str(e.retry_after)} if e.retry_after else None
                return web.json_response(
                    {"code": e.code, "message": e.message}, status=e.status, headers=headers
                )

        return run

    return [
        web.get("/me", guarded(me)),
        web.get("/subscriptions", guarded(list_subscriptions)),
        web.post("/subscriptions", guarded(subscribe)),
        web.delete("/subscriptions", guarded(unsubscribe)),
        web.get("/updates", guarded(updates)),
        web.post("/messages", guarded(send)),
        web.put("/messages", guarded(edit)),
        web.delete("/messages", guarded(delete)),
        web.post("/uploads", guarded(upload_slot)),
        web.post("/answers", guarded(answer)),
        web.post("/chats/{chat_id}/actions", guarded(chat_action)),
        web.post("/upload/{slot}", lambda request: receive_upload(sim, request)),
        web.get("/files/{id}", lambda request: serve_file(sim, request)),
    ]


def _authorize(sim: MaxSimulator, request: web.Request) -> None:
    sim.calls.append((request.method, request.path, dict(request.query)))
    if "access_token" in request.query:
        raise Refused(
            401, "verify.token", "Passing the token in query parameters is not supported"
        )
    if request.headers.get("Authorization") != sim.token:
        raise Refused(401, "verify.token", "Invalid access_token")
    sim.rate.check_global(sim.clock.now())


async def _json(request: web.Request) -> Json:
    try:
        body = await request.json()
    except (JSONDecodeError, UnicodeDecodeError):
        raise Refused(400, "proto.payload", "Could not parse the request body") from None
    if not isinstance(body, dict):
        raise Refused(400, "proto.payload", "The request body must be an object")
    return body


def _int_param(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise Refused(400, "proto.payload", f"{name} must be a number") from None


async def me(sim: MaxSimulator, request: web.Request) -> Json:
    return {"user_id": sim.bot_id, "name": sim.bot_name, "username": sim.username, "is_bot": True}


async def list_subscriptions(sim: MaxSimulator, request: web.Request) -> Json:
    subs = [sim.subscription] if sim.subscription else []
    return {"subscriptions": subs}


async def subscribe(sim: MaxSimulator, request: web.Request) -> Json:
    body = await _json(request)
    url, secret = body.get("url"), body.get("secret")
    loopback = isinstance(url, str) and url.startswith("http://127.")
    if not isinstance(url, str) or not (url.startswith("https://") or loopback):
        raise Refused(400, "proto.payload", "The webhook URL must be HTTPS")
    if secret is not None and (not isinstance(secret, str) or not SECRET.fullmatch(secret)):
        raise Refused(400, "proto.payload", "secret: 5-256 characters of A-Z, a-z, 0-9, _ and -")
    types = body.get("update_types")
    sim.subscription = {
        "url": url,
        "time": int(sim.clock.now() * 1000),
        "update_types": types if isinstance(types, list) else None,
        "secret": secret,
    }
    sim.notify()
    return {"success": True}


async def unsubscribe(sim: MaxSimulator, request: web.Request) -> Json:
    if sim.subscription and sim.subscription["url"] == request.query.get("url"):
        sim.subscription = None
    return {"success": True}


async def updates(sim: MaxSimulator, request: web.Request) -> Json:
    if sim.subscription is not None:
        raise Refused(409, "conflict", "Long polling is off while a webhook subscription is set")
    timeout = _int_param(request, "timeout") or 30
    if not 0 <= timeout <= sim.limits.poll_timeout:
        raise Refused(400, "proto.payload", "timeout must be 0-90")
    marker = _int_param(request, "marker")
    limit = _int_param(request, "limit") or 100
    types = request.query.get("types")
    wanted = set(types.split(",")) if types else None
    sim.polls += 1
    sim.notify()
    start = sim.acknowledged if marker is None else marker

    def ready() -> list[tuple[int, Json]]:
        return [
            (seq, u)
            for seq, u in sim.queue
            if seq >= start and (wanted is None or u["update_type"] in wanted)
        ][:limit]

    found = ready()
    if not found and timeout:
        try:
            found = await sim.wait_for(ready, timeout)
        except TimeoutError:
            found = []
    next_marker = found[-1][0] + 1 if found else start
    if found:
        sim.fetched_by = sim.polls
    sim.acknowledged = max(sim.acknowledged, next_marker)
    return {"updates": [u for _, u in found], "marker": next_marker}


def _check_text(sim: MaxSimulator, body: Json) -> tuple[str | None, str | None]:
    text, fmt = body.get("text"), body.get("format")
    if text is not None and not isinstance(text, str):
        raise Refused(400, "proto.payload", "text must be a string")
    if text is not None and len(text) > sim.limits.text:
        raise Refused(400, "proto.payload", f"text: size must be between 0 and {sim.limits.text}")
    if fmt is not None and fmt not in FORMATS:
        raise Refused(400, "proto.payload", "format must be markdown or html")
    return text, fmt


def _check_attachments(sim: MaxSimulator, raw: Any) -> tuple[list[Json], list[Upload]]:
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        raise Refused(400, "proto.payload", "attachments must be a list")
    uploads: list[Upload] = []
    for item in raw:
        kind = item.get("type") if isinstance(item, dict) else None
        payload = item.get("payload") if isinstance(item, dict) else None
        if not isinstance(payload, dict):
            raise Refused(400, "proto.payload", "attachment payload missing")
        if kind == "inline_keyboard":
            _check_keyboard(sim, payload.get("buttons"))
        elif kind in UPLOAD_TYPES:
            upload = sim.uploads.get(str(payload.get("token")))
            if upload is None or upload.kind != kind:
                raise Refused(400, "attachment.invalid", "Unknown attachment token")
            pending = sim.not_ready.get(upload.token, 0)
            if not upload.done or pending > 0:
                sim.not_ready[upload.token] = max(0, pending - 1)
                raise Refused(400, "attachment.not.ready", "errors.process.attachment.not.ready")
            uploads.append(upload)
        else:
            raise Refused(400, "proto.payload", f"unknown attachment type {kind!r}")
    return raw, uploads


def _check_keyboard(sim: MaxSimulator, rows: Any) -> None:
    limits = sim.limits
    if not isinstance(rows, list) or not rows or len(rows) > limits.rows:
        raise Refused(400, "proto.payload", f"buttons: 1-{limits.rows} rows")
    if sum(len(r) for r in rows if isinstance(r, list)) > limits.buttons:
        raise Refused(400, "proto.payload", f"at most {limits.buttons} buttons")
    for row in rows:
        if not isinstance(row, list) or not 1 <= len(row) <= limits.per_row:
            raise Refused(400, "proto.payload", f"a row holds 1-{limits.per_row} buttons")
        for button in row:
            text, payload = button.get("text"), button.get("payload")
            if not isinstance(text, str) or not 1 <= len(text) <= limits.button_text:
                raise Refused(400, "proto.payload", "button text: 1-128 characters")
            if button.get("type") == "callback" and (
                not isinstance(payload, str) or len(payload) > limits.payload
            ):
                raise Refused(400, "proto.payload", "callback payload: up to 1024 characters")


async def send(sim: MaxSimulator, request: web.Request) -> Json:
    chat_id, user_id = _int_param(request, "chat_id"), _int_param(request, "user_id")
    if (chat_id is None) == (user_id is None):
        raise Refused(400, "proto.payload", "Exactly one of chat_id and user_id is required")
    if chat_id is None:
        chat_id = sim.dialog_of(user_id or 0)
    sim.take_failure()
    if chat_id in sim.denied:
        raise Refused(403, "chat.denied", "chat.denied: the bot cannot write to this chat")
    body = await _json(request)
    text, fmt = _check_text(sim, body)
    attachments, uploads = _check_attachments(sim, body.get("attachments"))
    if not text and not uploads:
        raise Refused(400, "proto.payload", "text or attachments required")
    link = body.get("link")
    reply_to = None
    if link is not None:
        mid = link.get("mid") if isinstance(link, dict) else None
        stored = sim.messages.get(str(mid))
        if link.get("type") != "reply" or stored is None or stored.chat_id != chat_id:
            raise Refused(404, "not.found", f"Message {mid} not found")
        reply_to = stored.mid
    now = sim.clock.now()
    sim.rate.check_chat(chat_id, now)
    mid = new_mid()
    out_body: Json = {"mid": mid, "seq": len(sim.sent) + 1, "text": text}
    if attachments:
        out_body["attachments"] = attachments
    sim.messages[mid] = StoredMessage(mid, chat_id, sim.bot_id, now, True, out_body)
    sim.sent.append(SentMessage(mid, chat_id, text, fmt, attachments, reply_to, now, uploads))
    sim.notify()
    recipient = {"chat_id": chat_id, "chat_type": sim.chat_types.get(chat_id, "dialog")}
    bot = {"user_id": sim.bot_id, "name": sim.bot_name, "username": sim.username, "is_bot": True}
    return {"message": {"sender": bot, "recipient": recipient, "timestamp": int(now * 1000),
                        "body": out_body}}  # fmt: skip


def _own(sim: MaxSimulator, request: web.Request) -> StoredMessage:
    mid = request.query.get("message_id")
    stored = sim.messages.get(mid or "")
    if stored is None or stored.deleted:
        raise Refused(404, "not.found", f"Message {mid} not found")
    if not stored.from_bot:
        raise Refused(403, "access.denied", "The bot can only change its own messages")
    return stored


async def edit(sim: MaxSimulator, request: web.Request) -> Json:
    stored = _own(sim, request)
    sim.take_failure()
    body = await _json(request)
    text, fmt = _check_text(sim, body)
    sim.rate.check_chat(stored.chat_id, sim.clock.now())
    sim.edits.append(EditRecord(stored.mid, stored.chat_id, text, fmt, sim.clock.now()))
    sim.notify()
    return {"success": True}


async def delete(sim: MaxSimulator, request: web.Request) -> Json:
    stored = _own(sim, request)
    sim.take_failure()
    if sim.clock.now() - stored.at > sim.limits.delete_age:
        raise Refused(400, "message.delete.expired", "The message is too old to delete")
    stored.deleted = True
    sim.deletions.append(DeletionRecord(stored.mid, stored.chat_id, sim.clock.now()))
    sim.notify()
    return {"success": True}


async def upload_slot(sim: MaxSimulator, request: web.Request) -> Json:
    kind = request.query.get("type")
    if kind not in UPLOAD_TYPES:
        raise Refused(400, "proto.payload", "type must be image, video, audio or file")
    slot, token = secrets.token_urlsafe(12), secrets.token_urlsafe(24)
    sim.slots[slot] = Upload(token, kind)
    answer: Json = {"url": f"{sim.base_url}/upload/{slot}"}
    if kind in ("video", "audio"):
        answer["token"] = token  # video and audio: the token comes with the URL
    return answer


async def receive_upload(sim: MaxSimulator, request: web.Request) -> web.Response:
    upload = sim.slots.pop(request.match_info["slot"], None)  # one-time URLs
    if upload is None:
        return web.json_response({"code": "not.found", "message": "Upload URL used"}, status=404)
    reader = await request.multipart()
    async for part in reader:
        if getattr(part, "name", None) == "data":
            upload.data = await part.read()  # type: ignore[union-attr]
            upload.filename = part.filename  # type: ignore[union-attr]
            upload.content_type = part.headers.get("Content-Type")
    if upload.filename is None:
        return web.json_response({"code": "proto.payload", "message": "no data"}, status=400)
    upload.done = True
    sim.uploads[upload.token] = upload
    if sim.processing:
        sim.not_ready[upload.token] = sim.processing
    sim.notify()
    if upload.kind == "image":
        return web.json_response({"photos": {secrets.token_hex(6): {"token": upload.token}}})
    if upload.kind == "file":
        return web.json_response({"token": upload.token, "fileId": len(sim.uploads)})
    return web.Response(text="<retval>1</retval>")


async def serve_file(sim: MaxSimulator, request: web.Request) -> web.Response:
    hosted = sim.files.get(request.match_info["id"])
    if hosted is None:
        return web.Response(status=404)
    data, content_type = hosted
    return web.Response(body=data, content_type=content_type)


async def answer(sim: MaxSimulator, request: web.Request) -> Json:
    callback_id = request.query.get("callback_id")
    if not callback_id:
        raise Refused(400, "proto.payload", "callback_id is required")
    sim.answers.append((callback_id, await _json(request)))
    sim.notify()
    return {"success": True}


ACTIONS = ("typing_on", "sending_photo", "sending_video", "sending_audio", "sending_file")


async def chat_action(sim: MaxSimulator, request: web.Request) -> Json:
    """Typing and the like, or ``mark_seen``: the chat's messages read up to the latest."""
    try:
        chat_id = int(request.match_info["chat_id"])
    except ValueError:
        raise Refused(400, "proto.payload", "chat_id must be a number") from None
    action = (await _json(request)).get("action")
    if action not in (*ACTIONS, "mark_seen"):
        raise Refused(400, "proto.payload", f"unknown action {action!r}")
    latest = [m for m in sim.messages.values() if m.chat_id == chat_id and not m.from_bot]
    seen = max(latest, key=lambda m: m.at).mid if latest else None
    sim.actions.append((chat_id, str(action), sim.clock.now(), seen))
    sim.notify()
    return {"success": True}
