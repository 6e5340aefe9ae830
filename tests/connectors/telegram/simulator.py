"""A local Telegram Bot API server for tests.

It speaks the documented HTTP API the way ``api.telegram.org`` does (``/bot<token>/<method>``,
``/file/bot<token>/<path>``, multipart/JSON/urlencoded/query parameters, ``{"ok": ...}`` answers
with the real error texts, 429 flood control, long polling and webhooks) so that a connector built
on aiogram runs unchanged against it. Error texts and the HTML parse mode follow the Bot API server
and TDLib sources (``telegram-bot-api/Client.cpp``, ``td/telegram/MessageEntity.cpp``).

Tests drive it from the Telegram side: register users and chats, push updates, age messages,
switch on a flood "storm", then inspect what the bot did (``sent``, ``edits``, ``deletions``,
``reactions``, ``actions``, ``throttled``, ``webhook_deliveries``) or await it (``wait_for_*``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import math
import mimetypes
import re
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from aiohttp import web

from . import updates as tg
from .updates import Json

LOOPBACK = "127.0.0.1"
MiB = 1 << 20
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
T = TypeVar("T")

# The reactions a bot may set (ReactionTypeEmoji in the Bot API documentation), without U+FE0F.
ALLOWED_REACTIONS = frozenset(
    "👍 👎 ❤ 🔥 🥰 👏 😁 🤔 🤯 😱 🤬 😢 🎉 🤩 🤮 💩 🙏 👌 🕊 🤡 🥱 🥴 😍 🐳 "
    "❤‍🔥 🌚 🌭 💯 🤣 ⚡ 🍌 🏆 💔 🤨 😐 🍓 🍾 💋 🖕 😈 😴 😭 🤓 👻 👨‍💻 👀 🎃 🙈 "
    "😇 😨 🤝 ✍ 🤗 🫡 🎅 🎄 ☃ 💅 🤪 🗿 🆒 💘 🙉 🦄 😘 💊 🙊 😎 👾 🤷‍♂ 🤷 🤷‍♀ "
    "😡".split()
)
# Without ``allowed_updates`` Telegram sends every update type except these.
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
CHAT_ACTIONS = frozenset(
    "typing upload_photo record_video upload_video record_voice upload_voice upload_document "
    "choose_sticker find_location record_video_note upload_video_note".split()
)
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
    "the webhook first"
)
CONFLICT_POLL = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is "
    "running"
)
MEDIA_METHODS = {
    "sendPhoto": "photo", "sendDocument": "document", "sendAudio": "audio", "sendVoice": "voice",
    "sendVideo": "video", "sendVideoNote": "video_note", "sendSticker": "sticker",
    "sendAnimation": "animation",
}  # fmt: skip
_FILE_DIRS = {
    "photo": ("photos", ".jpg"), "document": ("documents", ""), "audio": ("music", ".mp3"),
    "voice": ("voice", ".oga"), "video": ("videos", ".mp4"), "video_note": ("video_notes", ".mp4"),
    "sticker": ("stickers", ".webp"), "animation": ("animations", ".mp4"),
    "profile_photo": ("profile_photos", ".jpg"),
}  # fmt: skip
_DEFAULT_MIME = {"voice": "audio/ogg", "video_note": "video/mp4", "sticker": "image/webp"}


# -- configuration --------------------------------------------------------------------------------


class SimClock:
    """The simulator's notion of "now": wall time plus ``offset`` seconds. Message dates, the
    48-hour delete rule and flood-limit buckets all read it, so ``advance`` ages everything."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._frozen: float | None = None

    def now(self) -> float:
        base = time.time() if self._frozen is None else self._frozen
        return base + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def freeze(self) -> None:
        """Stop time (until ``unfreeze``) so flood-limit tests do not depend on test speed;
        ``advance`` still moves it."""
        self._frozen = time.time()

    def unfreeze(self) -> None:
        if self._frozen is not None:
            self.offset -= time.time() - self._frozen
            self._frozen = None


@dataclass
class RateLimits:
    """Flood control as documented in the Bot FAQ. Private chats: a token bucket of
    ``private_per_second`` with ``private_burst``; groups/channels: ``group_per_minute`` in any
    60 s; all chats: ``global_per_second`` in any second."""

    enabled: bool = True
    private_per_second: float = 1.0
    private_burst: int = 3
    group_per_minute: int = 20
    global_per_second: int = 30
    count_edits: bool = False


@dataclass
class Limits:
    """The documented size limits; tests may lower them to keep payloads small."""

    text_length: int = 4096
    caption_length: int = 1024
    raw_text_bytes: int = 1 << 15
    download_max: int = 20 * MiB
    upload_max: int = 50 * MiB
    photo_max: int = 10 * MiB
    delete_window: float = 48 * 3600


# -- records --------------------------------------------------------------------------------------


@dataclass
class UploadedFile:
    field: str
    filename: str
    content_type: str | None
    data: bytes


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    kind: str
    file_name: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    size: int | None = None

    @property
    def file_size(self) -> int:
        return len(self.data) if self.size is None else self.size

    def ref(self) -> Json:
        """The fields every media object carries, for the builders in ``updates``."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
        }


@dataclass
class SentMessage:
    method: str
    chat_id: int
    message_id: int
    text: str | None
    """``text`` or ``caption`` exactly as the bot sent it (markup included)."""
    parse_mode: str | None
    rendered: str | None
    """The text after parsing, as Telegram stores and shows it."""
    entities: list[Json]
    params: Json
    message: Json
    reply_to: int | None = None
    business_connection_id: str | None = None
    file: UploadedFile | None = None
    file_id: str | None = None

    @property
    def data(self) -> bytes | None:
        return self.file.data if self.file else None

    @property
    def filename(self) -> str | None:
        return self.file.filename if self.file else None

    @property
    def mime_type(self) -> str | None:
        for key in ("document", "audio", "voice", "video", "animation"):
            if key in self.message:
                return self.message[key].get("mime_type")
        return None


@dataclass
class EditRecord:
    method: str
    chat_id: int
    message_id: int
    text: str | None
    parse_mode: str | None
    rendered: str | None
    entities: list[Json]
    params: Json
    message: Json
    business_connection_id: str | None = None


@dataclass
class DeletionRecord:
    chat_id: int
    message_id: int
    params: Json


@dataclass
class ReactionRecord:
    chat_id: int
    message_id: int
    reaction: list[Json]
    params: Json

    @property
    def emojis(self) -> list[str]:
        return [r["emoji"] for r in self.reaction if r.get("type") == "emoji"]


@dataclass
class ActionRecord:
    chat_id: int
    action: str
    params: Json
    business_connection_id: str | None = None


@dataclass
class ThrottleRecord:
    method: str
    chat_id: int | None
    retry_after: int
    scope: str
    """"chat", "group", "global" or "storm"."""


@dataclass
class WebhookDelivery:
    update_id: int
    url: str
    status: int | None
    """HTTP status of the receiver's answer; None when the connection failed."""
    secret: str | None
    """The secret header value sent, or None when none was sent."""
    attempt: int
    error: str | None = None
    manual: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status <= 299


@dataclass
class ApiCall:
    method: str
    params: Json
    status: int
    description: str | None
    via: str = "http"


@dataclass
class StoredMessage:
    message: Json
    outgoing: bool
    business_connection_id: str = ""
    deleted: bool = False
    reaction: list[Json] = field(default_factory=list)

    @property
    def date(self) -> int:
        return int(self.message["date"])


class ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: Json | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> Json:
        body: Json = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def _retry_after(seconds: int) -> ApiError:
    return ApiError(429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds})


@dataclass
class _Described:
    result: Any
    description: str


@dataclass
class _Pending:
    update: Json
    duplicates: int = 0
    failures: int = 0
    deliveries: int = 0

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])


@dataclass
class _Webhook:
    url: str
    secret: str
    max_connections: int


@dataclass
class _ChatState:
    chat: Json
    blocked: bool = False
    bot_is_admin: bool = True
    photo: tuple[StoredFile, StoredFile] | None = None

    @property
    def id(self) -> int:
        return int(self.chat["id"])

    @property
    def type(self) -> str:
        return str(self.chat["type"])


@dataclass
class _UserState:
    user: Json
    photos: list[StoredFile] = field(default_factory=list)


class _Params:
    """Request parameters from any encoding; strings from forms are JSON-decoded on demand."""

    def __init__(self, values: Mapping[str, Any], files: Mapping[str, UploadedFile]) -> None:
        self.values = dict(values)
        self.files = dict(files)

    def snapshot(self) -> Json:
        out: Json = {}
        for key, value in self.values.items():
            if isinstance(value, str) and value[:1] in ("{", "["):
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            out[key] = value
        for key, upload in self.files.items():
            out.setdefault(key, upload)
        return out

    def get(self, name: str) -> Any:
        value = self.values.get(name)
        return None if value is None or value == "" else value

    def get_str(self, name: str) -> str | None:
        value = self.get(name)
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False)
        return str(value)

    def get_int(self, name: str, default: int | None = None) -> int | None:
        value = self.get(name)
        if value is None:
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise _bad(f"invalid {name} specified") from None

    def get_bool(self, name: str) -> bool:
        value = self.get(name)
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("true", "1")

    def get_json(self, name: str) -> Any:
        value = self.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise _bad(f"can't parse {name} JSON object") from None
        return value

    def get_file(self, name: str) -> UploadedFile | str | None:
        value = self.get_str(name)
        if value is None:
            return self.files.get(name)
        if value.startswith("attach://"):
            upload = self.files.get(value[len("attach://") :])
            if upload is None:
                raise _bad(f"there is no {name} in the request")
            return upload
        return value


async def _read_multipart(reader: aiohttp.MultipartReader) -> _Params:
    values: Json = {}
    files: dict[str, UploadedFile] = {}
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
            continue
        if part.filename is not None:
            data = bytes(await part.read())
            ctype = part.headers.get(aiohttp.hdrs.CONTENT_TYPE)
            files[part.name] = UploadedFile(part.name, part.filename, ctype, data)
        else:
            values[part.name] = await part.text()
    return _Params(values, files)


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, GIF, WebP or JPEG image, read from its header."""
    with contextlib.suppress(struct.error, IndexError):
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            w, h = struct.unpack(">II", data[16:24])
            return int(w), int(h)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", data[6:10])
            return int(w), int(h)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                w = 1 + int.from_bytes(data[24:27], "little")
                return w, 1 + int.from_bytes(data[27:30], "little")
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return int(w) & 0x3FFF, int(h) & 0x3FFF
            if chunk == b"VP8L":
                b = data[21:25]
                w = 1 + (((b[1] & 0x3F) << 8) | b[0])
                return w, 1 + (((b[3] & 0xF) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
        if data[:2] == b"\xff\xd8":
            i = 2
            while i + 9 < len(data):
                if data[i] != 0xFF:
                    i += 1
                    continue
                marker = data[i + 1]
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                    return int(w), int(h)
                i += 2 + int(struct.unpack(">H", data[i + 2 : i + 4])[0])
    return None


# -- the simulator --------------------------------------------------------------------------------


class TelegramSimulator:
    """``async with TelegramSimulator(token="123:ABC") as sim:`` then point the bot at
    ``sim.base_url`` (aiogram: ``TelegramAPIServer.from_base(sim.base_url)``)."""

    def __init__(
        self,
        token: str = "123456:TEST-simulator-token",
        *,
        bot_id: int | None = None,
        bot_username: str = "sim_bot",
        bot_name: str = "Simulator Bot",
        rate_limits: RateLimits | None = None,
        limits: Limits | None = None,
        webhook_max_attempts: int = 5,
        webhook_retry_delay: float = 0.1,
        webhook_timeout: float = 10.0,
        require_https_webhook: bool = False,
    ) -> None:
        self.token = token
        prefix = token.split(":", 1)[0]
        if bot_id is None:
            bot_id = int(prefix) if prefix.isdigit() else 123456
        self.bot_user = tg.user(bot_id, bot_name, username=bot_username, is_bot=True)
        self.clock = SimClock()
        self.rate_limits = rate_limits or RateLimits()
        self.limits = limits or Limits()
        self.webhook_max_attempts = webhook_max_attempts
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_timeout = webhook_timeout
        self.require_https_webhook = require_https_webhook
        self.port = 0

        self.sent: list[SentMessage] = []
        self.edits: list[EditRecord] = []
        self.deletions: list[DeletionRecord] = []
        self.reactions: list[ReactionRecord] = []
        self.actions: list[ActionRecord] = []
        self.throttled: list[ThrottleRecord] = []
        self.requests: list[ApiCall] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.webhook_dropped: list[Json] = []
        """Updates given up on after ``webhook_max_attempts`` failed deliveries."""
        self.filtered_updates: list[Json] = []
        """Pushed updates never queued because ``allowed_updates`` excluded their type."""
        self.commands: list[Json] = []
        self.file_serving = "whole"
        """How ``/file/bot<token>/<path>`` answers: ``whole`` (the file), ``error`` (a 500),
        ``endless`` (chunked bytes without end) or ``oversized`` (a Content-Length far over
        any limit, then bytes without end)."""

        self._chats: dict[int, _ChatState] = {}
        self._users: dict[int, _UserState] = {}
        self._business: dict[str, Json] = {}
        self._business_chats: dict[tuple[str, int], Json] = {}
        self._history: dict[tuple[str, int], dict[int, StoredMessage]] = {}
        self._files: dict[str, StoredFile] = {}
        self._file_paths: dict[str, StoredFile] = {}
        self._queue: list[_Pending] = []
        self._confirmed: set[int] = set()
        self._next_update_id = 700_000_000
        self._allowed_updates: list[str] | None = None
        self._webhook: _Webhook | None = None
        self._last_error: tuple[int, str] | None = None
        self._poll_generation = 0
        self._polling = 0
        self._storm: list[int] = []
        self._buckets: dict[tuple[str, int], tuple[float, float]] = {}
        self._windows: dict[tuple[str, int], deque[float]] = {}
        self._global: deque[float] = deque()
        self._changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._worker: asyncio.Task[None] | None = None
        self._methods: dict[str, Callable[[_Params], Awaitable[Any]]] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagecaption": self._edit_message_caption,
            "deletemessage": self._delete_message,
            "deletemessages": self._delete_messages,
            "setmessagereaction": self._set_message_reaction,
            "sendchataction": self._send_chat_action,
            "forwardmessage": self._forward_message,
            "copymessage": self._copy_message,
            "getfile": self._get_file,
            "getchat": self._get_chat,
            "getuserprofilephotos": self._get_user_profile_photos,
            "getbusinessconnection": self._get_business_connection,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "answercallbackquery": self._answer_callback_query,
        }
        for method in MEDIA_METHODS:
            self._methods[method.lower()] = functools.partial(self._send_media, method)

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=self.limits.upload_max * 2 + MiB)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._http = aiohttp.ClientSession()
        self._worker = asyncio.create_task(self._webhook_worker())

    async def stop(self) -> None:
        self._closing = True
        self._notify()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def __aenter__(self) -> TelegramSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the Telegram side: users, chats, files, history ------------------------------------------

    def add_user(
        self,
        user_id: int,
        first_name: str = "User",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
        photo: bytes | None = None,
        started: bool = True,
    ) -> Json:
        """Register a user; ``started`` also opens the private chat (the user pressed Start, so
        the bot may write to them). Returns the User JSON."""
        u = tg.user(
            user_id,
            first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
        )
        state = _UserState(u)
        if photo is not None:
            state.photos.append(self.add_file(photo, kind="profile_photo"))
        self._users[user_id] = state
        if started:
            self.add_chat(tg.private_chat(u))
        return dict(u)

    def add_chat(
        self,
        chat: Mapping[str, Any],
        *,
        photo: bytes | None = None,
        bot_is_admin: bool = True,
        blocked: bool = False,
    ) -> Json:
        """Register a chat the bot is in (Chat JSON from ``updates.private_chat``/``group_chat``).
        For a private chat the photo defaults to the user's profile photo."""
        state = _ChatState(dict(chat), blocked=blocked, bot_is_admin=bot_is_admin)
        if photo is not None:
            state.photo = (
                self.add_file(photo, kind="profile_photo"),
                self.add_file(photo, kind="profile_photo"),
            )
        elif chat["type"] == "private" and chat["id"] in self._users:
            photos = self._users[chat["id"]].photos
            if photos:
                state.photo = (photos[0], photos[0])
        self._chats[state.id] = state
        return dict(state.chat)

    def add_group(
        self,
        chat_id: int,
        title: str,
        *,
        type: str = "supergroup",
        username: str | None = None,
        bot_is_admin: bool = True,
        photo: bytes | None = None,
    ) -> Json:
        chat = tg.group_chat(chat_id, title, type=type, username=username)
        return self.add_chat(chat, photo=photo, bot_is_admin=bot_is_admin)

    def set_blocked(self, chat_id: int, blocked: bool = True) -> None:
        """The user blocked (or unblocked) the bot: sends answer 403."""
        self._chats[chat_id].blocked = blocked

    def add_business_connection(
        self,
        connection_id: str,
        owner: Mapping[str, Any],
        *,
        is_enabled: bool = True,
        can_reply: bool = True,
    ) -> Json:
        """Register a Telegram Business connection without sending its update."""
        conn = tg.business_connection(
            connection_id,
            owner,
            is_enabled=is_enabled,
            can_reply=can_reply,
            date=int(self.clock.now()),
        )
        self._business[connection_id] = conn
        self._users.setdefault(int(owner["id"]), _UserState(dict(owner)))
        return dict(conn)

    def add_file(
        self,
        data: bytes,
        *,
        kind: str = "document",
        file_name: str | None = None,
        mime_type: str | None = None,
        file_size: int | None = None,
    ) -> StoredFile:
        """Put a file on "Telegram's servers"; ``file_size`` overrides the reported size."""
        file_id, unique_id = tg.new_file_ids()
        directory, ext = _FILE_DIRS.get(kind, ("documents", ""))
        if file_name and "." in file_name:
            ext = "." + file_name.rsplit(".", 1)[1]
        path = f"{directory}/file_{len(self._files)}{ext}"
        size = _image_size(data) if kind in ("photo", "profile_photo", "sticker") else None
        stored = StoredFile(
            file_id,
            unique_id,
            data,
            path,
            kind,
            file_name,
            mime_type or _DEFAULT_MIME.get(kind),
            size[0] if size else None,
            size[1] if size else None,
            file_size,
        )
        self._files[file_id] = stored
        self._file_paths[path] = stored
        return stored

    def file(self, file_id: str) -> StoredFile:
        return self._files[file_id]

    def add_bot_message(
        self, chat_id: int, text: str = "earlier bot message", *, age: float = 0, **content: Any
    ) -> Json:
        """A message the bot sent earlier (``age`` seconds ago), without an API call."""
        chat = self._chats[chat_id].chat
        msg = tg.message(
            chat, self.bot_user, date=int(self.clock.now() - age), text=text, **content
        )
        self._store(msg, outgoing=True)
        return copy.deepcopy(msg)

    def add_user_message(
        self,
        chat_id: int,
        user_id: int,
        text: str = "earlier user message",
        *,
        age: float = 0,
        **content: Any,
    ) -> Json:
        """A message a user sent earlier, in the history but never delivered as an update."""
        chat = self._chats[chat_id].chat
        sender = self._users[user_id].user
        msg = tg.message(chat, sender, date=int(self.clock.now() - age), text=text, **content)
        self._store(msg, outgoing=False)
        return copy.deepcopy(msg)

    def message(
        self, chat_id: int, message_id: int, *, business_connection_id: str = ""
    ) -> Json | None:
        """The message as it stands now (edits applied); None if unknown or deleted."""
        stored = self._find(business_connection_id, chat_id, message_id)
        return copy.deepcopy(stored.message) if stored else None

    def message_reaction(self, chat_id: int, message_id: int) -> list[Json]:
        """The reaction the bot currently has on a message."""
        stored = self._find("", chat_id, message_id)
        return list(stored.reaction) if stored else []

    def age_message(
        self, chat_id: int, message_id: int, seconds: float, *, business_connection_id: str = ""
    ) -> None:
        """Move one message ``seconds`` into the past (see also ``clock.advance``)."""
        stored = self._history[(business_connection_id, chat_id)][message_id]
        stored.message["date"] = int(stored.message["date"] - seconds)

    def _store(self, msg: Json, *, outgoing: bool, business_connection_id: str = "") -> None:
        key = (business_connection_id, int(msg["chat"]["id"]))
        self._history.setdefault(key, {})[int(msg["message_id"])] = StoredMessage(
            msg, outgoing, business_connection_id
        )

    def _find(self, bc: str, chat_id: int, message_id: int | None) -> StoredMessage | None:
        if message_id is None:
            return None
        stored = self._history.get((bc, chat_id), {}).get(message_id)
        return None if stored is None or stored.deleted else stored

    # -- updates ----------------------------------------------------------------------------------

    def push_update(self, update: Mapping[str, Any]) -> Json:
        """Deliver an update (built with ``updates``): it gets the next ``update_id`` and is queued
        for getUpdates, or POSTed to the webhook when one is set. Messages in it enter the chat
        history (so the bot can reply, edit-check, react), chats and users are registered.
        Returns the update as delivered."""
        return self._enqueue(update, duplicates=0)

    def deliver_webhook_twice(self, update: Mapping[str, Any]) -> Json:
        """Like ``push_update`` but the webhook receives the same update twice, as happens when
        Telegram did not see the first answer."""
        return self._enqueue(update, duplicates=1)

    def _enqueue(self, update: Mapping[str, Any], *, duplicates: int) -> Json:
        payload = {k: copy.deepcopy(v) for k, v in update.items() if k != "update_id"}
        self._next_update_id += 1
        full: Json = {"update_id": self._next_update_id, **payload}
        kind = tg.update_kind(full)
        self._observe(kind, full[kind])
        if self._accepts(kind):
            self._queue.append(_Pending(full, duplicates))
        else:
            self.filtered_updates.append(full)
        self._notify()
        return copy.deepcopy(full)

    def _accepts(self, kind: str) -> bool:
        if self._allowed_updates is None:
            return kind not in DEFAULT_EXCLUDED_UPDATES
        return kind in self._allowed_updates

    def _observe(self, kind: str, payload: Json) -> None:
        if kind in ("message", "edited_message", "channel_post", "edited_channel_post"):
            chat = payload["chat"]
            self._remember_sender(payload)
            if chat["id"] not in self._chats:
                self.add_chat(chat)
            self._replace_or_store(payload, "")
        elif kind in ("business_message", "edited_business_message"):
            bc = str(payload.get("business_connection_id", ""))
            self._business_chats[(bc, int(payload["chat"]["id"]))] = payload["chat"]
            self._remember_sender(payload)
            self._replace_or_store(payload, bc)
        elif kind == "business_connection":
            self._business[payload["id"]] = copy.deepcopy(payload)
            self._users.setdefault(int(payload["user"]["id"]), _UserState(payload["user"]))
        elif kind == "deleted_business_messages":
            key = (payload["business_connection_id"], int(payload["chat"]["id"]))
            for mid in payload["message_ids"]:
                stored = self._history.get(key, {}).get(mid)
                if stored is not None:
                    stored.deleted = True

    def _remember_sender(self, msg: Json) -> None:
        sender = msg.get("from")
        if sender and not sender.get("is_bot"):
            self._users.setdefault(int(sender["id"]), _UserState(dict(sender)))

    def _replace_or_store(self, msg: Json, bc: str) -> None:
        existing = self._history.get((bc, int(msg["chat"]["id"])), {}).get(msg["message_id"])
        if existing is not None:
            existing.message = copy.deepcopy(msg)
        else:
            self._store(copy.deepcopy(msg), outgoing=False, business_connection_id=bc)

    @property
    def pending_updates(self) -> list[Json]:
        return [copy.deepcopy(p.update) for p in self._queue]

    @property
    def allowed_updates(self) -> list[str] | None:
        """The bot's ``allowed_updates`` (None: the default set)."""
        return None if self._allowed_updates is None else list(self._allowed_updates)

    @property
    def webhook_url(self) -> str | None:
        return self._webhook.url if self._webhook else None

    @property
    def webhook_secret(self) -> str | None:
        return self._webhook.secret if self._webhook else None

    def is_confirmed(self, update_id: int) -> bool:
        """Whether the bot confirmed the update (getUpdates offset past it, or a 2xx webhook
        answer)."""
        return update_id in self._confirmed

    async def post_webhook(
        self, update: Mapping[str, Any], *, secret: str | None = None, url: str | None = None
    ) -> WebhookDelivery:
        """POST one update to the webhook (or ``url``) right now, outside the queue, with the
        given secret header (None: no header) - e.g. to check that a wrong secret is refused."""
        target = url or (self._webhook.url if self._webhook else None)
        if target is None:
            raise RuntimeError("no webhook is set")
        body = dict(update)
        if "update_id" not in body:
            self._next_update_id += 1
            body = {"update_id": self._next_update_id, **body}
        return await self._post_update(target, body, secret, attempt=1, manual=True)

    def rate_limit_storm(self, count: int, retry_after: int = 5, *, after: int = 0) -> None:
        """The next ``count`` counted send calls (after ``after`` that pass) answer 429 with
        ``retry_after``, whatever the limits say."""
        self._storm.extend([0] * after + [retry_after] * count)

    # -- waiting ----------------------------------------------------------------------------------

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _wait_change(self, seconds: float | None) -> None:
        event = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()

    async def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> T:
        """Wait until ``predicate()`` returns something truthy (re-checked on every change in the
        simulator) and return it; TimeoutError after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"simulator: condition not met within {timeout} s")
            await self._wait_change(remaining)

    def _first(self, records: list[T], predicate: Callable[[T], bool] | None) -> T | None:
        return next((r for r in records if predicate is None or predicate(r)), None)

    async def wait_for_sent(
        self,
        predicate: Callable[[SentMessage], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> SentMessage:
        return await self.wait_for(lambda: self._first(self.sent, predicate), timeout)

    async def wait_for_edit(
        self,
        predicate: Callable[[EditRecord], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> EditRecord:
        return await self.wait_for(lambda: self._first(self.edits, predicate), timeout)

    async def wait_for_deletion(
        self,
        predicate: Callable[[DeletionRecord], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> DeletionRecord:
        return await self.wait_for(lambda: self._first(self.deletions, predicate), timeout)

    async def wait_for_reaction(
        self,
        predicate: Callable[[ReactionRecord], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> ReactionRecord:
        return await self.wait_for(lambda: self._first(self.reactions, predicate), timeout)

    async def wait_for_action(
        self,
        predicate: Callable[[ActionRecord], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> ActionRecord:
        return await self.wait_for(lambda: self._first(self.actions, predicate), timeout)

    async def wait_for_webhook_delivery(
        self,
        predicate: Callable[[WebhookDelivery], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> WebhookDelivery:
        return await self.wait_for(
            lambda: self._first(self.webhook_deliveries, predicate), timeout
        )

    async def wait_for_confirmed(self, update_id: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self.wait_for(lambda: self.is_confirmed(update_id), timeout)

    async def wait_for_consumer(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the bot is receiving: a getUpdates call is open or a webhook is set."""
        await self.wait_for(lambda: self._polling > 0 or self._webhook is not None, timeout)

    # -- HTTP -------------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        status: int = 200
        body: Json = {}
        params = _Params({}, {})
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            params = await self._read_request(request)
            status, body = await self._call(method, params)
        except ApiError as exc:
            status, body = exc.code, exc.body()
        self.requests.append(ApiCall(method, params.snapshot(), status, body.get("description")))
        self._notify()
        return web.json_response(
            body, status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False)
        )

    async def _read_request(self, request: web.Request) -> _Params:
        values: Json = dict(request.query)
        if request.method == "POST" and request.body_exists:
            ctype = request.content_type
            if ctype == "multipart/form-data":
                form = await _read_multipart(await request.multipart())
                form.values = {**values, **form.values}
                return form
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    raise _bad("can't parse JSON encoded request") from None
                if not isinstance(body, dict):
                    raise _bad("JSON object expected")
                values.update(body)
            elif ctype == "application/x-www-form-urlencoded":
                values.update(await request.post())
        return _Params(values, {})

    async def _call(self, method: str, params: _Params) -> tuple[int, Json]:
        handler = self._methods.get(method.lower())
        if handler is None:
            raise ApiError(404, "Not Found")
        result = await handler(params)
        if isinstance(result, _Described):
            return 200, {"ok": True, "result": result.result, "description": result.description}
        return 200, {"ok": True, "result": result}

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        stored = self._file_paths.get(request.match_info["path"])
        if stored is None:
            return web.json_response(ApiError(404, "Not Found").body(), status=404)
        if self.file_serving == "error":
            return web.json_response(ApiError(500, "Internal Server Error").body(), status=500)
        ctype = stored.mime_type or "application/octet-stream"
        if self.file_serving == "whole":
            return web.Response(body=stored.data, content_type=ctype)
        response = web.StreamResponse(headers={"Content-Type": ctype})
        if self.file_serving == "oversized":
            response.content_length = 1 << 40
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while True:  # until the client hangs up
                await response.write(b"\0" * 65536)
        return response

    # -- flood control ----------------------------------------------------------------------------

    def _throttle(self, method: str, chat: Json, bc: str) -> None:
        chat_id = int(chat["id"])
        seconds = self._storm.pop(0) if self._storm else 0
        if seconds:
            self._record_throttle(method, chat_id, seconds, "storm")
        limits = self.rate_limits
        if not limits.enabled:
            return
        now = self.clock.now()
        key = (bc, chat_id)
        waits: list[tuple[float, str]] = []
        private = chat["type"] == "private"
        if private:
            tokens, stamp = self._buckets.get(key, (float(limits.private_burst), now))
            tokens = min(
                float(limits.private_burst), tokens + (now - stamp) * limits.private_per_second
            )
            if tokens < 1:
                waits.append(((1 - tokens) / limits.private_per_second, "chat"))
        else:
            window = self._windows.setdefault(key, deque())
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= limits.group_per_minute:
                waits.append((window[0] + 60 - now, "group"))
        while self._global and self._global[0] <= now - 1:
            self._global.popleft()
        if len(self._global) >= limits.global_per_second:
            waits.append((self._global[0] + 1 - now, "global"))
        if waits:
            wait, scope = max(waits)
            self._record_throttle(method, chat_id, max(1, math.ceil(wait)), scope)
        if private:
            self._buckets[key] = (tokens - 1, now)
        else:
            self._windows[key].append(now)
        self._global.append(now)

    def _record_throttle(
        self, method: str, chat_id: int | None, seconds: int, scope: str
    ) -> NoReturn:
        self.throttled.append(ThrottleRecord(method, chat_id, seconds, scope))
        raise _retry_after(seconds)

    # -- resolving parameters ---------------------------------------------------------------------

    def _chat(self, p: _Params, name: str = "chat_id") -> _ChatState:
        raw = p.get_str(name)
        if raw is None:
            raise _bad(f"{name} is empty")
        if raw.startswith("@"):
            for known in self._chats.values():
                if known.type != "private" and known.chat.get("username") == raw[1:]:
                    return known
            raise _bad("chat not found")
        try:
            chat_id = int(raw)
        except ValueError:
            raise _bad("chat not found") from None
        state = self._chats.get(chat_id)
        if state is None:
            if chat_id in self._users:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
            raise _bad("chat not found")
        return state

    def _target(self, p: _Params) -> tuple[Json, str]:
        """The chat a send/edit addresses and its business connection id ("" for none)."""
        bc = p.get_str("business_connection_id")
        if bc is None:
            return self._chat(p).chat, ""
        conn = self._business.get(bc)
        if conn is None or not conn.get("is_enabled"):
            raise _bad("business connection not found")
        chat_id = p.get_int("chat_id")
        if chat_id is None:
            raise _bad("chat_id is empty")
        chat = self._business_chats.get((bc, chat_id))
        if chat is None and chat_id in self._users:
            chat = tg.private_chat(self._users[chat_id].user)
        if chat is None:
            raise _bad("chat not found")
        return chat, bc

    def _check_blocked(self, chat: Json, bc: str) -> None:
        state = self._chats.get(int(chat["id"]))
        if not bc and state is not None and state.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    def _format(
        self, text: str, parse_mode: str | None, entities: Any, *, caption: bool
    ) -> tuple[str, list[Json]]:
        if len(text.encode("utf-8", "surrogatepass")) > self.limits.raw_text_bytes:
            raise _bad("text is too long")
        mode = (parse_mode or "").lower()
        if text and mode and mode != "none":
            if mode == "html":
                try:
                    text, ents = tg.parse_html(text)
                except tg.EntityParseError as exc:
                    raise _bad(f"can't parse entities: {exc}") from None
            elif mode in ("markdown", "markdownv2"):
                raise _bad(f"simulator: parse_mode {parse_mode} is not implemented, use HTML")
            else:
                raise _bad("unsupported parse_mode")
        else:
            ents = self._entities(entities)
        text, ents = tg.trim_text(text, ents)
        if caption:
            if tg.utf16_len(text) > self.limits.caption_length:
                raise _bad("message caption is too long")
        else:
            if not text:
                raise _bad("text must be non-empty")
            if tg.utf16_len(text) > self.limits.text_length:
                raise _bad("message is too long")
        return text, ents

    @staticmethod
    def _entities(raw: Any) -> list[Json]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise _bad("can't parse entities JSON object")
        out = []
        for item in raw:
            if not isinstance(item, dict) or not {"type", "offset", "length"} <= item.keys():
                raise _bad('can\'t parse MessageEntity: field "type" must be of type String')
            out.append(dict(item))
        return out

    def _reply(self, p: _Params, chat_id: int, bc: str) -> Json | None:
        params = p.get_json("reply_parameters")
        if params is not None and not isinstance(params, dict):
            raise _bad("object expected as reply parameters")
        if params:
            message_id = params.get("message_id")
            allow = bool(params.get("allow_sending_without_reply"))
        else:
            message_id = p.get_int("reply_to_message_id")
            allow = p.get_bool("allow_sending_without_reply")
        if not message_id:
            return None
        stored = self._find(bc, chat_id, int(message_id))
        if stored is None:
            if allow:
                return None
            raise _bad("message to be replied not found")
        return stored.message

    def _markup(self, p: _Params) -> Json | None:
        markup = p.get_json("reply_markup")
        return markup if isinstance(markup, dict) and "inline_keyboard" in markup else None

    def _post_message(
        self, method: str, p: _Params, chat: Json, bc: str, **content: Any
    ) -> tuple[Json, Json | None]:
        """Flood control, then the new message in the chat's history."""
        reply = self._reply(p, int(chat["id"]), bc)
        self._check_blocked(chat, bc)
        self._throttle(method, chat, bc)
        sender = self.bot_user
        extra: Json = {}
        if bc:
            sender = self._business[bc]["user"]
            extra = {"business_connection_id": bc, "sender_business_bot": self.bot_user}
        msg = tg.message(
            chat,
            sender,
            date=int(self.clock.now()),
            reply_to=reply,
            reply_markup=self._markup(p),
            **extra,
            **content,
        )
        self._store(msg, outgoing=True, business_connection_id=bc)
        return msg, reply

    # -- methods: bot, updates, webhook -----------------------------------------------------------

    async def _get_me(self, p: _Params) -> Json:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": True,
            "has_main_web_app": False,
        }

    def _set_allowed(self, p: _Params) -> None:
        allowed = p.get_json("allowed_updates")
        if allowed is not None:
            if not isinstance(allowed, list):
                raise _bad("can't parse allowed_updates JSON object")
            self._allowed_updates = [str(a) for a in allowed] or None

    def _confirm_before(self, offset: int) -> None:
        if offset > 0:
            keep = [p for p in self._queue if p.update_id >= offset]
        elif offset < 0:
            keep = self._queue[offset:]
        else:
            return
        self._confirmed.update(p.update_id for p in self._queue if p not in keep)
        self._queue = keep

    async def _get_updates(self, p: _Params) -> list[Json]:
        if self._webhook is not None:
            raise ApiError(409, CONFLICT_WEBHOOK)
        offset = p.get_int("offset", 0) or 0
        limit = min(max(p.get_int("limit", 100) or 100, 1), 100)
        timeout = min(max(p.get_int("timeout", 0) or 0, 0), 50)
        self._set_allowed(p)
        self._confirm_before(offset)
        self._poll_generation += 1
        generation = self._poll_generation
        self._polling += 1
        self._notify()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                if self._webhook is not None:
                    raise ApiError(409, "Conflict: terminated by setWebhook request")
                if generation != self._poll_generation:
                    raise ApiError(409, CONFLICT_POLL)
                ready = [q.update for q in self._queue if q.update_id >= offset][:limit]
                remaining = deadline - loop.time()
                if ready or self._closing or remaining <= 0:
                    return copy.deepcopy(ready)
                await self._wait_change(remaining)
        finally:
            self._polling -= 1

    async def _set_webhook(self, p: _Params) -> _Described:
        url = p.get_str("url")
        if not url:
            return await self._delete_webhook(p)
        parts = urlsplit(url)
        schemes = ("https",) if self.require_https_webhook else ("https", "http")
        if parts.scheme.lower() not in schemes or not parts.hostname:
            raise _bad("invalid webhook URL specified")
        secret = p.get_str("secret_token") or ""
        if len(secret) > 256:
            raise _bad("secret token is too long")
        if not re.fullmatch(r"[A-Za-z0-9_-]*", secret):
            raise _bad("secret token contains unallowed characters")
        new = _Webhook(url, secret, p.get_int("max_connections", 40) or 40)
        drop = p.get_bool("drop_pending_updates")
        self._set_allowed(p)
        if new == self._webhook and not drop:
            return _Described(True, "Webhook is already set")
        if drop:
            self._drop_pending()
        self._webhook = new
        self._last_error = None
        self._notify()
        return _Described(True, "Webhook was set")

    def _drop_pending(self) -> None:
        self._confirmed.update(p.update_id for p in self._queue)
        self._queue.clear()

    async def _delete_webhook(self, p: _Params) -> _Described:
        if p.get_bool("drop_pending_updates"):
            self._drop_pending()
        was_set, self._webhook = self._webhook is not None, None
        self._notify()
        return _Described(True, "Webhook was deleted" if was_set else "Webhook is already deleted")

    async def _get_webhook_info(self, p: _Params) -> Json:
        info: Json = {
            "url": self._webhook.url if self._webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._queue),
        }
        if self._webhook is not None:
            info["max_connections"] = self._webhook.max_connections
            info["ip_address"] = LOOPBACK
        if self._last_error is not None:
            info["last_error_date"], info["last_error_message"] = self._last_error
        if self._allowed_updates is not None:
            info["allowed_updates"] = list(self._allowed_updates)
        return info

    async def _webhook_worker(self) -> None:
        while not self._closing:
            hook = self._webhook
            if hook is None or not self._queue:
                await self._wait_change(None)
                continue
            item = self._queue[0]
            item.deliveries += 1
            delivery = await self._post_update(
                hook.url, item.update, hook.secret or None, attempt=item.deliveries
            )
            if not self._queue or self._queue[0] is not item:
                continue
            if delivery.ok:
                if item.duplicates > 0:
                    item.duplicates -= 1
                    continue
                self._queue.pop(0)
                self._confirmed.add(item.update_id)
            else:
                item.failures += 1
                reason = delivery.error or f"Wrong response from the webhook: {delivery.status}"
                self._last_error = (int(self.clock.now()), reason)
                if item.failures >= self.webhook_max_attempts:
                    self._queue.pop(0)
                    self.webhook_dropped.append(item.update)
                else:
                    await asyncio.sleep(self.webhook_retry_delay)
            self._notify()

    async def _post_update(
        self, url: str, update: Json, secret: str | None, *, attempt: int, manual: bool = False
    ) -> WebhookDelivery:
        assert self._http is not None
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        body = json.dumps(update, ensure_ascii=False).encode()
        delivery = WebhookDelivery(
            int(update["update_id"]), url, None, secret, attempt, None, manual
        )
        reply: tuple[str, _Params] | None = None
        try:
            timeout = aiohttp.ClientTimeout(total=self.webhook_timeout)
            async with self._http.post(url, data=body, headers=headers, timeout=timeout) as resp:
                delivery.status = resp.status
                if 200 <= resp.status <= 299:
                    reply = await self._webhook_reply(resp)
                else:
                    delivery.error = (
                        f"Wrong response from the webhook: {resp.status} {resp.reason}"
                    )
                    await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
        self.webhook_deliveries.append(delivery)
        self._notify()
        if reply is not None:
            await self._run_webhook_reply(*reply)
        return delivery

    async def _webhook_reply(self, resp: aiohttp.ClientResponse) -> tuple[str, _Params] | None:
        """A method call in the webhook's answer, as Telegram executes it (results are lost)."""
        ctype = resp.content_type
        params: _Params | None = None
        if ctype == "application/json":
            with contextlib.suppress(ValueError, aiohttp.ContentTypeError):
                data = await resp.json(content_type=None)
                if isinstance(data, dict):
                    params = _Params(data, {})
        elif ctype == "multipart/form-data":
            params = await _read_multipart(aiohttp.MultipartReader(resp.headers, resp.content))
        elif ctype == "application/x-www-form-urlencoded":
            params = _Params(dict(parse_qsl(await resp.text())), {})
        else:
            await resp.read()
        if params is None:
            return None
        method = str(params.values.pop("method", "") or "").lower()
        if (
            not method
            or method.startswith("get")
            or method
            in (
                "setwebhook",
                "deletewebhook",
                "close",
                "logout",
            )
        ):
            return None
        return method, params

    async def _run_webhook_reply(self, method: str, params: _Params) -> None:
        try:
            status, body = await self._call(method, params)
        except ApiError as exc:
            status, body = exc.code, exc.body()
        self.requests.append(
            ApiCall(method, params.snapshot(), status, body.get("description"), via="webhook")
        )
        self._notify()

    # -- methods: messages ------------------------------------------------------------------------

    async def _send_message(self, p: _Params) -> Json:
        chat, bc = self._target(p)
        raw = p.get_str("text") or ""
        if not raw:
            raise _bad("message text is empty")
        parse_mode = p.get_str("parse_mode")
        text, entities = self._format(raw, parse_mode, p.get_json("entities"), caption=False)
        msg, reply = self._post_message(
            "sendMessage", p, chat, bc, text=text, entities=entities or None
        )
        self.sent.append(
            SentMessage(
                "sendMessage",
                int(chat["id"]),
                msg["message_id"],
                raw,
                parse_mode,
                text,
                entities,
                p.snapshot(),
                copy.deepcopy(msg),
                reply["message_id"] if reply else None,
                bc or None,
            )
        )
        return msg

    def _upload(self, kind: str, p: _Params) -> tuple[StoredFile, UploadedFile | None]:
        source = p.get_file(kind)
        if source is None:
            raise _bad(f"there is no {kind} in the request")
        if isinstance(source, str):
            stored = self._files.get(source)
            if stored is None:
                raise _bad("wrong file identifier/HTTP URL specified")
            return stored, None
        size = len(source.data)
        if size > self.limits.upload_max:
            raise ApiError(413, "Request Entity Too Large")
        if size == 0:
            raise _bad("file must be non-empty")
        if kind == "photo" and size > self.limits.photo_max:
            raise _bad(
                f"file of size {size} bytes is too big for a photo; the maximum size is "
                f"{self.limits.photo_max} bytes"
            )
        mime = mimetypes.guess_type(source.filename)[0]
        if mime is None and source.content_type != "application/octet-stream":
            mime = source.content_type
        if kind in ("document", "audio", "video", "animation"):
            mime = mime or "application/octet-stream"
        else:
            mime = _DEFAULT_MIME.get(kind, mime)
        stored = self.add_file(source.data, kind=kind, file_name=source.filename, mime_type=mime)
        return stored, source

    def _media_content(self, kind: str, stored: StoredFile, p: _Params) -> Json:
        ref = stored.ref()
        name = stored.file_name
        if kind == "photo":
            return {"photo": [tg.photo_size(ref, stored.width or 800, stored.height or 600)]}
        if kind == "document":
            return {"document": tg.document(ref, file_name=name, mime_type=stored.mime_type)}
        if kind == "audio":
            return {
                "audio": tg.audio(
                    ref,
                    duration=p.get_int("duration", 0) or 0,
                    performer=p.get_str("performer"),
                    title=p.get_str("title"),
                    file_name=name,
                    mime_type=stored.mime_type,
                )
            }
        if kind == "voice":
            duration = p.get_int("duration", 0) or 0
            return {"voice": tg.voice(ref, duration=duration, mime_type=stored.mime_type or "")}
        if kind in ("video", "animation"):
            content = tg.video(
                ref,
                width=p.get_int("width", 0) or 0,
                height=p.get_int("height", 0) or 0,
                duration=p.get_int("duration", 0) or 0,
                file_name=name,
                mime_type=stored.mime_type,
            )
            if kind == "animation":
                return {"animation": content, "document": tg.document(ref, file_name=name)}
            return {"video": content}
        if kind == "video_note":
            length = p.get_int("length", 240) or 240
            return {
                "video_note": tg.video_note(
                    ref, length=length, duration=p.get_int("duration") or 0
                )
            }
        lower = (name or "").lower()
        return {
            "sticker": tg.sticker(
                ref,
                emoji=p.get_str("emoji"),
                is_animated=lower.endswith(".tgs"),
                is_video=lower.endswith(".webm"),
            )
        }

    async def _send_media(self, method: str, p: _Params) -> Json:
        kind = MEDIA_METHODS[method]
        chat, bc = self._target(p)
        raw = p.get_str("caption") or ""
        parse_mode = p.get_str("parse_mode")
        caption: str = ""
        entities: list[Json] = []
        if kind not in ("sticker", "video_note"):
            caption, entities = self._format(
                raw, parse_mode, p.get_json("caption_entities"), caption=True
            )
        stored, upload = self._upload(kind, p)
        content = self._media_content(kind, stored, p)
        if caption:
            content["caption"] = caption
            if entities:
                content["caption_entities"] = entities
        msg, reply = self._post_message(method, p, chat, bc, **content)
        self.sent.append(
            SentMessage(
                method,
                int(chat["id"]),
                msg["message_id"],
                raw or None,
                parse_mode,
                caption or None,
                entities,
                p.snapshot(),
                copy.deepcopy(msg),
                reply["message_id"] if reply else None,
                bc or None,
                upload,
                stored.file_id,
            )
        )
        return msg

    def _editable(self, p: _Params) -> tuple[Json, str, StoredMessage]:
        if p.get("inline_message_id") is not None:
            raise _bad("simulator: inline messages are not supported")
        chat, bc = self._target(p)
        message_id = p.get_int("message_id")
        if not message_id:
            raise _bad("message identifier is not specified")
        stored = self._find(bc, int(chat["id"]), message_id)
        if stored is None:
            raise _bad("message to edit not found")
        if not stored.outgoing:
            raise _bad("message can't be edited")
        return chat, bc, stored

    def _apply_edit(
        self, method: str, p: _Params, chat: Json, bc: str, stored: StoredMessage, **changes: Any
    ) -> Json:
        markup = self._markup(p)
        old = stored.message
        same = (
            all(old.get(k) == v for k, v in changes.items()) and old.get("reply_markup") == markup
        )
        if same:
            raise _bad(NOT_MODIFIED)
        if self.rate_limits.count_edits:
            self._throttle(method, chat, bc)
        stored.message = tg.edited(
            old, edit_date=int(self.clock.now()), reply_markup=markup, **changes
        )
        if markup is None:
            stored.message.pop("reply_markup", None)
        return copy.deepcopy(stored.message)

    async def _edit_message_text(self, p: _Params) -> Json:
        chat, bc, stored = self._editable(p)
        raw = p.get_str("text") or ""
        if not raw:
            raise _bad("message text is empty")
        parse_mode = p.get_str("parse_mode")
        text, entities = self._format(raw, parse_mode, p.get_json("entities"), caption=False)
        if "text" not in stored.message:
            raise _bad("there is no text in the message to edit")
        msg = self._apply_edit(
            "editMessageText", p, chat, bc, stored, text=text, entities=entities or None
        )
        self.edits.append(
            EditRecord(
                "editMessageText",
                int(chat["id"]),
                msg["message_id"],
                raw,
                parse_mode,
                text,
                entities,
                p.snapshot(),
                msg,
                bc or None,
            )
        )
        return msg

    async def _edit_message_caption(self, p: _Params) -> Json:
        chat, bc, stored = self._editable(p)
        raw = p.get_str("caption") or ""
        parse_mode = p.get_str("parse_mode")
        caption, entities = self._format(
            raw, parse_mode, p.get_json("caption_entities"), caption=True
        )
        if "text" in stored.message:
            raise _bad("there is no caption in the message to edit")
        msg = self._apply_edit(
            "editMessageCaption",
            p,
            chat,
            bc,
            stored,
            caption=caption or None,
            caption_entities=entities or None,
        )
        self.edits.append(
            EditRecord(
                "editMessageCaption",
                int(chat["id"]),
                msg["message_id"],
                raw or None,
                parse_mode,
                caption,
                entities,
                p.snapshot(),
                msg,
                bc or None,
            )
        )
        return msg

    async def _delete_message(self, p: _Params) -> bool:
        state = self._chat(p)
        message_id = p.get_int("message_id")
        if not message_id:
            raise _bad("message identifier is not specified")
        stored = self._find("", state.id, message_id)
        if stored is None:
            raise _bad("message to delete not found")
        if self.clock.now() - stored.date > self.limits.delete_window:
            raise _bad("message can't be deleted for everyone")
        if state.type in ("group", "supergroup", "channel") and not stored.outgoing:
            if not state.bot_is_admin:
                raise _bad("message can't be deleted")
        stored.deleted = True
        self.deletions.append(DeletionRecord(state.id, message_id, p.snapshot()))
        return True

    async def _delete_messages(self, p: _Params) -> bool:
        """deleteMessages: messages that are missing or can't be deleted are skipped."""
        state = self._chat(p)
        ids = p.get_json("message_ids")
        if not isinstance(ids, list) or not ids:
            raise _bad("message_ids are empty")
        if len(ids) > 100:
            raise _bad("too many messages to delete")
        for message_id in ids:
            single = _Params({"chat_id": state.id, "message_id": message_id}, {})
            with contextlib.suppress(ApiError):
                await self._delete_message(single)
        return True

    async def _set_message_reaction(self, p: _Params) -> bool:
        state = self._chat(p)
        message_id = p.get_int("message_id")
        if not message_id:
            raise _bad("message identifier is not specified")
        stored = self._find("", state.id, message_id)
        if stored is None:
            raise _bad("message to react not found")
        reaction = p.get_json("reaction") or []
        if not isinstance(reaction, list):
            raise _bad("can't parse reaction types JSON object")
        for item in reaction:
            if not isinstance(item, dict):
                raise _bad("can't parse ReactionType: expected an Object")
            if item.get("type") == "emoji":
                if item.get("emoji") not in ALLOWED_REACTIONS:
                    raise _bad("REACTION_INVALID")
            elif item.get("type") != "custom_emoji":
                raise _bad("REACTION_INVALID")
        if len(reaction) > 1:
            raise _bad("REACTIONS_TOO_MANY")
        stored.reaction = [dict(r) for r in reaction]
        self.reactions.append(ReactionRecord(state.id, message_id, stored.reaction, p.snapshot()))
        return True

    async def _send_chat_action(self, p: _Params) -> bool:
        chat, bc = self._target(p)
        action = p.get_str("action") or ""
        if action not in CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        self._check_blocked(chat, bc)
        self.actions.append(ActionRecord(int(chat["id"]), action, p.snapshot(), bc or None))
        return True

    def _copyable(self, p: _Params, what: str) -> StoredMessage:
        source = self._chat(p, "from_chat_id")
        stored = self._find("", source.id, p.get_int("message_id"))
        if stored is None:
            raise _bad(f"message to {what} not found")
        return stored

    @staticmethod
    def _content_of(msg: Json) -> Json:
        meta = {
            "message_id",
            "from",
            "date",
            "chat",
            "reply_to_message",
            "edit_date",
            "reply_markup",
            "business_connection_id",
            "sender_business_bot",
            "forward_origin",
        }
        return {k: copy.deepcopy(v) for k, v in msg.items() if k not in meta}

    async def _forward_message(self, p: _Params) -> Json:
        source = self._copyable(p, "forward")
        chat = self._chat(p).chat
        src = source.message
        origin: Json
        if src["chat"]["type"] == "channel":
            origin = {
                "type": "channel",
                "chat": src["chat"],
                "message_id": src["message_id"],
                "date": src["date"],
            }
        elif src.get("from"):
            origin = {"type": "user", "date": src["date"], "sender_user": src["from"]}
        else:
            origin = {"type": "hidden_user", "date": src["date"], "sender_user_name": "Hidden"}
        content = {**self._content_of(src), "forward_origin": origin}
        msg, _ = self._post_message("forwardMessage", p, chat, "", **content)
        self._record_plain("forwardMessage", p, chat, msg)
        return msg

    async def _copy_message(self, p: _Params) -> Json:
        source = self._copyable(p, "copy")
        chat = self._chat(p).chat
        content = self._content_of(source.message)
        if p.get("caption") is not None and "text" not in content:
            caption, entities = self._format(
                p.get_str("caption") or "",
                p.get_str("parse_mode"),
                p.get_json("caption_entities"),
                caption=True,
            )
            content.pop("caption_entities", None)
            content.update(caption=caption, **({"caption_entities": entities} if entities else {}))
        msg, _ = self._post_message("copyMessage", p, chat, "", **content)
        self._record_plain("copyMessage", p, chat, msg)
        return {"message_id": msg["message_id"]}

    def _record_plain(self, method: str, p: _Params, chat: Json, msg: Json) -> None:
        text = msg.get("text", msg.get("caption"))
        entities: list[Json] = msg.get("entities", msg.get("caption_entities")) or []
        self.sent.append(
            SentMessage(
                method,
                int(chat["id"]),
                msg["message_id"],
                text,
                None,
                text,
                entities,
                p.snapshot(),
                copy.deepcopy(msg),
            )
        )

    # -- methods: files, chats, misc --------------------------------------------------------------

    async def _get_file(self, p: _Params) -> Json:
        file_id = p.get_str("file_id")
        if file_id is None:
            raise _bad("file_id not specified")
        stored = self._files.get(file_id)
        if stored is None:
            raise _bad("invalid file_id")
        if stored.file_size > self.limits.download_max:
            raise _bad("file is too big")
        return {**stored.ref(), "file_path": stored.file_path}

    async def _get_chat(self, p: _Params) -> Json:
        state = self._chat(p)
        info: Json = {
            **state.chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }
        if state.photo is not None:
            small, big = state.photo
            info["photo"] = {
                "small_file_id": small.file_id,
                "small_file_unique_id": small.file_unique_id,
                "big_file_id": big.file_id,
                "big_file_unique_id": big.file_unique_id,
            }
        return info

    async def _get_user_profile_photos(self, p: _Params) -> Json:
        user_id = p.get_int("user_id")
        if user_id is None or user_id not in self._users:
            raise _bad("user not found")
        photos = self._users[user_id].photos
        offset = p.get_int("offset", 0) or 0
        limit = min(max(p.get_int("limit", 100) or 100, 1), 100)
        chosen = photos[offset : offset + limit]
        return {
            "total_count": len(photos),
            "photos": [[tg.photo_size(f.ref(), f.width or 640, f.height or 640)] for f in chosen],
        }

    async def _get_business_connection(self, p: _Params) -> Json:
        conn = self._business.get(p.get_str("business_connection_id") or "")
        if conn is None:
            raise _bad("business connection not found")
        return copy.deepcopy(conn)

    async def _set_my_commands(self, p: _Params) -> bool:
        commands = p.get_json("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        self.commands = commands
        return True

    async def _get_my_commands(self, p: _Params) -> list[Json]:
        return copy.deepcopy(self.commands)

    async def _delete_my_commands(self, p: _Params) -> bool:
        self.commands = []
        return True

    async def _answer_callback_query(self, p: _Params) -> bool:
        if not p.get_str("callback_query_id"):
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        return True
