"""The Bot API client: aiogram's Bot pointed at the configured server, the documented rate
limits applied before each send, and Bot API errors mapped to delivery errors."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import aiohttp
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)

from ...connector import PermanentDeliveryError, TemporaryDeliveryError
from ...logsafe import REDACTED
from ...media import FileTooLarge, MediaFile
from .config import TelegramConfig

T = TypeVar("T")
BOT_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,}")
"""A bot token anywhere in a text, e.g. in ``https://api.telegram.org/bot<token>/getMe``."""
BLOCKED = "bot was blocked by the user"
RETRYABLE_STATUS = frozenset({401, 404, 408, 429})
"""File server answers worth another getFile later (a file path lives about an hour)."""


class BotBlocked(PermanentDeliveryError):
    """Telegram answered 403 "Forbidden: bot was blocked by the user": the customer blocked
    the bot (the connector also tells the host, as a ``RemoteBlocked``)."""


class RateLimiter:
    """Spaces sends at the rates the Bot API documents, as the connector's capabilities declare
    them (messages per second): ``chat`` per private chat, ``group`` per group, ``global``
    overall. Waiting here is cheaper than a 429 and keeps the order.

    A chat's entry only matters until its time has passed: when the table grows past
    ``prune_at`` the passed entries are dropped (and the threshold doubles if most are still
    pending), so a broadcast to many chats does not keep one entry per chat ever sent to and
    the sweeps cost amortised constant work per send."""

    PRUNE_AT = 4096

    def __init__(self, rates: Mapping[str, float]) -> None:
        self.per_chat = 1 / rates["chat"]
        self.per_group = 1 / rates["group"]
        self.overall = 1 / rates["global"]
        self._next_chat: dict[int, float] = {}
        self._next_global = 0.0
        self._lock = asyncio.Lock()
        self.prune_at = self.PRUNE_AT

    def _prune(self, now: float) -> None:
        self._next_chat = {chat: at for chat, at in self._next_chat.items() if at > now}
        self.prune_at = max(self.PRUNE_AT, 2 * len(self._next_chat))

    async def acquire(self, chat_id: int) -> None:
        interval = self.per_group if chat_id < 0 else self.per_chat
        async with self._lock:
            now = time.monotonic()
            if len(self._next_chat) >= self.prune_at:
                self._prune(now)
            at = max(now, self._next_chat.get(chat_id, 0.0), self._next_global)
            self._next_chat[chat_id] = at + interval
            self._next_global = at + self.overall
        if at > now:
            await asyncio.sleep(at - now)

    def backoff(self, chat_id: int, seconds: float) -> None:
        """Telegram said to wait: no send to this chat before then."""
        until = time.monotonic() + seconds
        self._next_chat[chat_id] = max(self._next_chat.get(chat_id, 0.0), until)


class TelegramClient:
    def __init__(self, config: TelegramConfig, rates: Mapping[str, float]) -> None:
        self.config = config
        self.session = AiohttpSession(
            api=TelegramAPIServer.from_base(config.api_url), timeout=config.request_timeout
        )
        self.bot = Bot(config.token, session=self.session)
        self.limiter = RateLimiter(rates)

    async def close(self) -> None:
        await self.bot.session.close()

    async def send(self, chat_id: int, call: Callable[[], Awaitable[T]]) -> T:
        """A rate-limited send to ``chat_id``; errors become delivery errors."""
        await self.limiter.acquire(chat_id)
        try:
            return await self.call(call)
        except TemporaryDeliveryError as e:
            if e.retry_after:
                self.limiter.backoff(chat_id, e.retry_after)
            raise

    async def call(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except TelegramRetryAfter as e:
            raise TemporaryDeliveryError(
                f"Telegram rate limit, retry after {e.retry_after} s", retry_after=e.retry_after
            ) from e
        except TelegramEntityTooLarge as e:
            raise PermanentDeliveryError("the file is too large for Telegram") from e
        except TelegramNetworkError as e:
            # Its cause is aiohttp's error, which may show the request URL: /bot<token>/...
            reason = f"Telegram unreachable: {self.scrub(e.message)}"
            raise TemporaryDeliveryError(reason) from None
        except TelegramServerError as e:
            raise TemporaryDeliveryError(f"Telegram unreachable: {self.scrub(e.message)}") from e
        except TelegramUnauthorizedError as e:
            raise TemporaryDeliveryError(
                f"Telegram refused the bot token: {self.scrub(e.message)}"
            ) from e
        except TelegramForbiddenError as e:
            if BLOCKED in e.message:
                raise BotBlocked(f"Telegram refused: {_describe(e)}") from e
            raise PermanentDeliveryError(f"Telegram refused: {self.scrub(_describe(e))}") from e
        except TelegramMigrateToChat as e:
            raise PermanentDeliveryError(
                f"the group became a supergroup (new id {e.migrate_to_chat_id})"
            ) from e
        except TelegramBadRequest as e:
            raise PermanentDeliveryError(f"Telegram refused: {self.scrub(_describe(e))}") from e
        except TelegramAPIError as e:
            raise TemporaryDeliveryError(f"Telegram error: {self.scrub(e.message)}") from e

    async def download(self, path: str, name: str, limit: int, mimetype: str) -> MediaFile | None:
        """The file at ``path`` on the Bot API's file server, read to the end in chunks into a
        ``MediaFile`` (the caller closes it); None as soon as it has more than ``limit`` bytes
        (announced or read). The URL holds the bot token, so no error raised here carries the
        URL or aiohttp's error (its text shows the URL)."""
        session = await self.session.create_session()
        url = self.session.api.file_url(self.bot.token, path)
        timeout = aiohttp.ClientTimeout(total=self.config.request_timeout)
        try:
            async with session.get(url, timeout=timeout) as resp:
                if resp.status != 200:
                    reason = f"Telegram's file server answered HTTP {resp.status} for {name}"
                    if resp.status >= 500 or resp.status in RETRYABLE_STATUS:
                        raise TemporaryDeliveryError(reason)
                    raise PermanentDeliveryError(reason)
                return await MediaFile.from_response(resp, limit=limit, mimetype=mimetype)
        except FileTooLarge:
            return None
        except (aiohttp.ClientError, TimeoutError) as e:
            error = self.scrub(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
            reason = f"could not download {name} from Telegram: {error}"
            raise TemporaryDeliveryError(reason) from None

    def scrub(self, text: str) -> str:
        """``text`` without the bot token (nor anything that looks like a bot token)."""
        return BOT_TOKEN.sub(REDACTED, text.replace(self.bot.token, REDACTED))


def _describe(error: TelegramAPIError) -> str:
    text = error.message
    if BLOCKED in text:
        return "the customer has blocked the bot"
    return text.removeprefix("Telegram server says - ")
