"""The simulator's state: its configuration, what it recorded, the Telegram side that tests
drive (users, chats, files, history) and waiting for the bot to act."""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from tests.connectors.sim_base import SimulatorBase

from .. import updates as tg
from ..updates import Json
from .config import Limits, RateLimits
from .files import _DEFAULT_MIME, _FILE_DIRS, _image_size
from .params import _Params
from .records import (
    ActionRecord,
    ApiCall,
    ApiError,
    DeletionRecord,
    EditRecord,
    ReactionRecord,
    SentMessage,
    StoredFile,
    StoredMessage,
    ThrottleRecord,
    WebhookDelivery,
    _ChatState,
    _Described,
    _Pending,
    _UserState,
    _Webhook,
)

T = TypeVar("T")
Method = Callable[[_Params], Awaitable[Any]]


class SimulatorState(SimulatorBase[SentMessage, WebhookDelivery]):
    """The simulator's configuration, records and Telegram-side state, shared by every part; the
    Bot API methods come from the classes ``server.TelegramSimulator`` combines."""

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
        super().__init__()
        self.token = token
        prefix = token.split(":", 1)[0]
        if bot_id is None:
            bot_id = int(prefix) if prefix.isdigit() else 123456
        self.bot_user = tg.user(bot_id, bot_name, username=bot_username, is_bot=True)
        self.rate_limits = rate_limits or RateLimits()
        self.limits = limits or Limits()
        self.webhook_max_attempts = webhook_max_attempts
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_timeout = webhook_timeout
        self.require_https_webhook = require_https_webhook

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
        self.callback_answers: list[Any] = []
        """``buttons.CallbackAnswer`` of each answered callback query, in order."""
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
        self._queries: dict[str, float] = {}
        """Callback queries not answered yet: when they were pressed."""
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
        self._closing = False
        self._worker: asyncio.Task[None] | None = None
        self._methods: dict[str, Method] = self._method_table()

    def _method_table(self) -> dict[str, Method]:
        """The Bot API methods by lowercase name (the server fills it in)."""
        return {}

    async def _call(self, method: str, params: _Params) -> tuple[int, Json]:
        handler = self._methods.get(method.lower())
        if handler is None:
            raise ApiError(404, "Not Found")
        result = await handler(params)
        if isinstance(result, _Described):
            return 200, {"ok": True, "result": result.result, "description": result.description}
        return 200, {"ok": True, "result": result}

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

    # -- waiting ----------------------------------------------------------------------------------

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

    async def wait_for_consumer(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the bot is receiving: a getUpdates call is open or a webhook is set."""
        await self.wait_for(lambda: self._polling > 0 or self._webhook is not None, timeout)
