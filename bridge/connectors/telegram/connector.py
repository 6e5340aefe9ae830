"""The Telegram connector: one bot per channel account, by long polling or by webhook."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ...connector import (
    BridgeHost,
    DeliveryError,
    NetworkConnector,
    PermanentDeliveryError,
    StateKind,
    TemporaryDeliveryError,
)
from ...events import (
    MatrixEdit,
    MatrixMessage,
    MatrixReaction,
    MatrixReactionRemove,
    MatrixRedaction,
    MatrixTyping,
    RemoteAttachment,
    RemoteBlocked,
    RemoteChat,
    RemoteEvent,
    RemoteMessage,
    RemoteUser,
    SentMessage,
)
from ...logsafe import pii
from ...media import MediaFile
from ...tasks import cancel_and_wait
from ...types import AccountID, RemoteUserID
from ..bot_loop import connect_and_poll, first_connect, open_webhook, secret_matches
from ..http import BodyTooLarge, read_body
from ..lazy import LazyModule, preload
from .capabilities import DOWNLOAD_LIMIT, MIB, TELEGRAM_CAPABILITIES, capabilities_for
from .config import SECRET_PATTERN, TelegramConfig, parse_config

if TYPE_CHECKING:
    from . import aiogram_parts as tg
else:
    tg = LazyModule(f"{__package__}.aiogram_parts")  # imported by start(), or at first use

WEBHOOK_PATH = "/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_UPDATE_SIZE = 1024 * 1024
ALLOWED_UPDATES = [
    "message",
    "edited_message",
    "message_reaction",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "callback_query",
    "my_chat_member",
]
_UNSENDABLE = re.compile("[\x00\ud800-\udfff]")
AVATAR_REFRESH = 6 * 3600.0
CONNECT_TIMEOUT = 10.0


class TelegramConnector(NetworkConnector):
    """Bridges the private chats and groups of one Telegram bot (and its Business chats)."""

    channel = "telegram"
    title = "Telegram"
    capabilities = TELEGRAM_CAPABILITIES
    config: TelegramConfig

    def __init__(self, account_id: AccountID, config: TelegramConfig, host: BridgeHost) -> None:
        super().__init__(account_id, config, host)
        self.capabilities = capabilities_for(config)
        self.title = config.title
        self._client: tg.TelegramClient | None = None
        self._matrix: tg.TelegramSender | None = None
        self._poller: asyncio.Task[None] | None = None
        self._route: str | None = None
        self._secret: str | None = None
        self._open = False
        self._avatars: dict[str, tuple[float, str | None]] = {}

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], key: str) -> TelegramConfig:
        return parse_config(raw, key)

    @property
    def client(self) -> tg.TelegramClient:
        if self._client is None:
            self._client = tg.TelegramClient(self.config, self.capabilities.rate_limits)
        return self._client

    @property
    def matrix(self) -> tg.TelegramSender:
        if self._matrix is None:
            self._matrix = tg.TelegramSender(self.client, self.capabilities)
        return self._matrix

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await preload(tg)
        if self.config.mode == "webhook":
            self._secret, self._route = await open_webhook(
                self,
                self._secret,
                self._route,
                configured=self.config.webhook_secret,
                pattern=SECRET_PATTERN,
                handler=self._handle_webhook,
            )
        self._open = True
        connected = await first_connect(
            self,
            self._connect,
            lambda e: self.client.scrub(str(e) or type(e).__name__),
            CONNECT_TIMEOUT,
        )
        self._poller = asyncio.create_task(
            self._run(connected), name=f"telegram:{self.account_id}"
        )

    async def stop(self) -> None:
        self._open = False
        await cancel_and_wait([self._poller])
        self._poller = None
        if self._client is not None:
            await self._client.close()
        self.set_state(StateKind.STOPPED)

    async def _connect(self) -> None:
        """Check the token and set (or, for polling, remove) the webhook."""
        me = await self.client.bot.get_me()
        self.public_address = me.username
        if self.config.mode == "webhook":
            assert self._route is not None and self.config.webhook_url
            await self.client.bot.set_webhook(
                self.config.webhook_url + self._route,
                secret_token=self._secret,
                allowed_updates=ALLOWED_UPDATES,
            )
            self.set_state(StateKind.CONNECTED, f"@{me.username}, webhook")
        else:
            await self.client.bot.delete_webhook(drop_pending_updates=False)
            self.set_state(StateKind.CONNECTED, f"@{me.username}, polling")

    async def _run(self, connected: bool) -> None:
        await connect_and_poll(
            self,
            name="Telegram",
            connected=connected,
            connect=self._connect,
            poll=None if self.config.mode == "webhook" else self._poll,
            describe=lambda e: self.client.scrub(str(e) or type(e).__name__),
        )

    # ------------------------------------------------------------------ Telegram -> Matrix

    async def _poll(self) -> None:
        data = await self.host.load_data()
        offset = int(data.get("offset", 0))
        while True:
            batch: list[Any] = await self.client.bot(
                tg.RawUpdates(
                    offset=offset or None,
                    timeout=int(self.config.poll_timeout),
                    allowed_updates=ALLOWED_UPDATES,
                ),
                request_timeout=int(self.config.poll_timeout + self.config.request_timeout),
            )
            for raw in batch:
                update_id = raw.get("update_id") if isinstance(raw, dict) else None
                if isinstance(update_id, bool) or not isinstance(update_id, int):
                    self.host.log.warning("Skipping a polled update without an id: %r", pii(raw))
                    continue
                try:
                    update = tg.Update.model_validate(raw, context={"bot": self.client.bot})
                except (ValueError, RecursionError) as e:  # ValidationError is a ValueError
                    self.host.log.warning(
                        "Skipping unreadable update %d: %.300s", update_id, pii(e)
                    )
                else:
                    try:
                        await self._handle_update(update)
                    except tg.UnreadableUpdate as e:  # raised before anything is recorded
                        self.host.log.warning(
                            "Skipping unreadable update %d: %s", update_id, pii(e)
                        )
                offset = max(offset, update_id + 1)
            if batch:
                # Only once every event of the batch is recorded: a crash before this line
                # fetches the batch again, and the dedup keys keep it from doubling.
                await self.host.save_data({**data, "offset": offset})
            self.set_state(StateKind.CONNECTED, self._state.message)

    async def _handle_webhook(self, request: web.Request) -> web.StreamResponse:
        if not secret_matches(request, SECRET_HEADER, self._secret):
            self.host.log.warning("Refused a webhook request with a wrong secret token")
            return web.json_response({"error": "wrong secret token"}, status=401)
        if not self._open:
            return web.json_response({"error": "not running"}, status=503)
        try:
            body = await read_body(request, MAX_UPDATE_SIZE)
        except BodyTooLarge:
            return web.json_response({"error": "update too large"}, status=413)
        try:
            update = tg.Update.model_validate(json.loads(body), context={"bot": self.client.bot})
        except RecursionError:
            error = "not a Telegram update: nested too deeply"
            return web.json_response({"error": error}, status=400)
        except ValueError as e:  # pydantic's ValidationError is one
            return web.json_response({"error": f"not a Telegram update: {e}"[:500]}, status=400)
        try:
            await self._handle_update(update)
        except tg.UnreadableUpdate as e:  # raised before anything of the update is recorded
            return web.json_response({"error": f"not a Telegram update: {e}"}, status=400)
        except Exception:
            self.host.log.exception("Could not record update %s", update.update_id)
            return web.json_response({"error": "try again later"}, status=503)
        return web.json_response({"ok": True})

    async def _handle_update(self, update: tg.Update) -> None:
        if update.callback_query is not None:
            await self._handle_press(update.callback_query)
            return
        events = tg.update_to_events(
            update, bot_id=self.config.bot_id, business=self.config.business
        )
        for event in events:
            if isinstance(event, RemoteMessage):
                event = await self._with_avatars(event)
            await self.host.handle_remote_event(event)

    async def _handle_press(self, query: tg.CallbackQuery) -> None:
        """Record a button press, then answer the query (also one the bridge does not bridge)
        so that the customer's app stops waiting. The answer is a courtesy: the press is
        recorded already, so a failed answer is only logged, and a query id that cannot even
        be sent (no real query has one) is not answered."""
        for event in tg.press_events(
            query, bot_id=self.config.bot_id, business=self.config.business
        ):
            await self.host.handle_remote_event(event)
        if not tg.answerable(query.id):
            self.host.log.info("Not answering a callback query with an impossible id")
            return
        try:
            await self.client.call(lambda: self.client.bot.answer_callback_query(query.id))
        except DeliveryError as e:
            self.host.log.info("Could not answer callback query %s: %s", query.id, pii(e.reason))
        except Exception as e:  # never the press's undoing: it is recorded
            reason = self.client.scrub(f"{type(e).__name__}: {e}")
            self.host.log.info("Could not answer callback query %s: %s", query.id, pii(reason))

    async def _with_avatars(self, event: RemoteMessage) -> RemoteEvent:
        """Add the chat's and the sender's profile photos (cached, best effort)."""
        chat_avatar = await self._avatar(event.chat.id)
        sender_avatar = await self._avatar(event.sender.id)
        chat: RemoteChat = dataclasses.replace(event.chat, avatar_url=chat_avatar)
        sender = dataclasses.replace(event.sender, avatar_url=sender_avatar)
        return dataclasses.replace(event, chat=chat, sender=sender)

    async def _avatar(self, chat: str) -> str | None:
        cached = self._avatars.get(chat)
        if cached and time.monotonic() - cached[0] < AVATAR_REFRESH:
            return cached[1]
        url = None
        try:
            chat_id, _ = tg.parse_chat(chat)
            info = await self.client.bot.get_chat(chat_id)
            if info.photo:
                url = tg.FILE_PREFIX + info.photo.big_file_id
        except Exception as e:
            self.host.log.debug(
                "No profile photo for %s: %s", pii(chat), pii(self.client.scrub(str(e)))
            )
        self._avatars[chat] = (time.monotonic(), url)
        return url

    async def download_attachment(self, attachment: RemoteAttachment) -> tuple[MediaFile, str]:
        if not attachment.url.startswith(tg.FILE_PREFIX):
            raise PermanentDeliveryError(f"not a Telegram file: {attachment.url}")
        file_id = attachment.url[len(tg.FILE_PREFIX) :]
        name = attachment.filename or "file"
        if not file_id or _UNSENDABLE.search(file_id):
            # Telegram's file ids are base64url; one that cannot even be sent is no file.
            raise PermanentDeliveryError(f"{name}: not a Telegram file id")
        if attachment.size and attachment.size > DOWNLOAD_LIMIT:
            raise PermanentDeliveryError(_too_big(name, attachment.size))
        try:
            info = await self.client.call(lambda: self.client.bot.get_file(file_id))
        except PermanentDeliveryError as e:
            if "file is too big" in e.reason:
                raise PermanentDeliveryError(_too_big(name, attachment.size)) from e
            raise
        if info.file_size and info.file_size > DOWNLOAD_LIMIT:
            raise PermanentDeliveryError(_too_big(name, info.file_size))
        if not info.file_path:
            raise TemporaryDeliveryError(f"Telegram gave no download path for {name}")
        mimetype = attachment.mimetype or "application/octet-stream"
        media = await self.client.download(info.file_path, name, DOWNLOAD_LIMIT, mimetype)
        if media is None:
            raise PermanentDeliveryError(
                f"{name} is over the {DOWNLOAD_LIMIT / MIB:g} MiB the bridge takes from Telegram"
            )
        return media, mimetype

    # ------------------------------------------------------------------ Matrix -> Telegram

    async def send_message(self, msg: MatrixMessage) -> SentMessage:
        return await self._send(self.matrix.send_message, msg)

    async def send_reply(self, msg: MatrixMessage) -> SentMessage:
        return await self._send(self.matrix.send_reply, msg)

    async def send_media(self, msg: MatrixMessage) -> SentMessage:
        return await self._send(self.matrix.send_media, msg)

    async def _send(
        self, send: Callable[[MatrixMessage], Awaitable[SentMessage]], msg: MatrixMessage
    ) -> SentMessage:
        """``send(msg)``; a send refused because the customer blocked the bot still fails,
        and the host also hears of the block."""
        try:
            return await send(msg)
        except tg.BotBlocked:
            await self._blocked(msg)
            raise

    async def _blocked(self, msg: MatrixMessage) -> None:
        """Hand a ``RemoteBlocked`` for the private chat of ``msg``; its id comes from the
        message, so a retry of the same send (refused again) is the same block."""
        chat_id, connection = tg.parse_chat(msg.portal.chat)
        if connection is not None or chat_id <= 0:
            return  # only a person blocks a bot, in their private chat
        event = RemoteBlocked(
            chat=RemoteChat(id=msg.portal.chat),
            sender=RemoteUser(id=RemoteUserID(str(chat_id))),
            timestamp=time.time(),
            block_id=f"send:{msg.event_id}",
        )
        try:
            await self.host.handle_remote_event(event)
        except Exception:  # the send's own error is what the caller must see
            self.host.log.exception("Could not record that %s blocked the bot", pii(chat_id))

    async def handle_matrix_edit(self, edit: MatrixEdit) -> None:
        await self.matrix.edit(edit)

    async def handle_matrix_redaction(self, redaction: MatrixRedaction) -> None:
        await self.matrix.delete(redaction)

    async def handle_matrix_reaction(self, reaction: MatrixReaction) -> None:
        await self.matrix.react(reaction)

    async def handle_matrix_reaction_remove(self, removal: MatrixReactionRemove) -> None:
        await self.matrix.unreact(removal)

    async def handle_matrix_typing(self, typing: MatrixTyping) -> None:
        await self.matrix.typing(typing)


def _too_big(name: str, size: int | None) -> str:
    shown = f" ({size / 1024 / 1024:.2f} MiB)" if size else ""
    return f"{name}{shown} is over the 20 MiB (20 MB) that Telegram lets bots download"
