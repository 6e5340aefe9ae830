"""Attachments of mail read over IMAP, fetched again when the core asks for them: each body
part alone, in ranges, decoded as it comes (``transfer``), so that neither the mail nor the
part is ever whole in memory. One IMAP session serves the downloads that follow each other
(the core asks for the attachments of a mail one after the other) and is closed when idle."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from typing import TypeVar

from ...connector import PermanentDeliveryError, TemporaryDeliveryError
from ...media import FileTooLarge, MediaFile
from ...tasks import cancel_and_wait
from .config import ServerConfig
from .imap import IMAPError, Mailbox, open_mailbox
from .mime import MailAttachment
from .parse import mail_attachments
from .transfer import decoded

log = logging.getLogger("bridge.email.parts")

IDLE_CLOSE = 30.0
"""Seconds the download session stays open after its last use."""
GONE = "the mail is no longer in the mailbox"

T = TypeVar("T")


async def verified(
    raw: AsyncIterable[bytes], encoding: str, digest: str, size: int | None
) -> MediaFile | None:
    """A part's bytes as sent (``raw``), transfer encoding undone, spooled into a file; None
    when that is not the part that was parsed (more than ``size`` bytes, another ``digest``:
    a broken mail split otherwise than the parser did)."""
    hashed = hashlib.sha256()

    async def chunks() -> AsyncGenerator[bytes]:
        async for chunk in decoded(raw, encoding):
            hashed.update(chunk)
            yield chunk

    try:
        async with contextlib.aclosing(chunks()) as source:
            media = await MediaFile.from_chunks(source, "", limit=size)
    except FileTooLarge:
        return None
    if hashed.hexdigest() != digest:
        media.close()
        return None
    return media


class _Unseen(Exception):
    """The session found no such mail (gone, or arrived after the session looked)."""


class PartReader:
    def __init__(self, server: ServerConfig, folder: str) -> None:
        self.server = server
        self.folder = folder
        self._lock = asyncio.Lock()
        self._session: tuple[contextlib.AsyncExitStack, Mailbox] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._closer: asyncio.Task[None] | None = None

    async def part(
        self, key: tuple[int, int], section: str, encoding: str, digest: str, size: int | None
    ) -> MediaFile | None:
        """Body part ``section`` of mail ``key`` (uidvalidity, uid), transfer encoding undone.
        None when it is not the part that was parsed (more than ``size`` bytes or another
        ``digest``: the server splits a broken mail otherwise than the parser did)."""

        async def fetch(box: Mailbox) -> MediaFile | None:
            try:
                async with contextlib.aclosing(box.part_chunks(key[1], section)) as raw:
                    return await verified(raw, encoding, digest, size)
            except LookupError as e:
                raise _Unseen from e

        return await self._with_mailbox(key[0], fetch)

    async def whole(self, key: tuple[int, int]) -> tuple[bytes, list[MailAttachment]]:
        """The raw mail and its parts, for a part that cannot be fetched alone (an event queued
        before parts were, a mail the server reads otherwise than the parser)."""

        async def fetch(box: Mailbox) -> bytes:
            raw = await box.fetch(key[1])
            if raw is None:
                raise _Unseen
            return raw

        raw = await self._with_mailbox(key[0], fetch)
        return raw, await asyncio.to_thread(mail_attachments, raw)

    async def _with_mailbox(self, validity: int, work: Callable[[Mailbox], Awaitable[T]]) -> T:
        """``work`` on the download session (opened if need be; a session the server dropped
        meanwhile is replaced once)."""
        async with self._lock:
            if self._idle is not None:
                self._idle.cancel()
            try:
                for attempt in (1, 2):
                    fresh = self._session is None
                    try:
                        box = await self._open()
                        if box.uidvalidity != validity:
                            raise PermanentDeliveryError(GONE)
                        return await work(box)
                    except (IMAPError, OSError, TimeoutError) as e:
                        await self._close()
                        if fresh or attempt == 2:
                            raise TemporaryDeliveryError(f"mailbox unreachable: {e}") from e
                        log.info("Download session lost (%s): opening another", e)
                    except _Unseen as e:
                        # A session that selected the folder before the mail arrived may not
                        # know it yet: only a fresh session's "not there" means gone.
                        await self._close()
                        if fresh or attempt == 2:
                            raise PermanentDeliveryError(GONE) from e
                    except asyncio.CancelledError:
                        await asyncio.shield(self._close())  # maybe mid-command
                        raise
                raise AssertionError("unreachable")
            finally:
                if self._session is not None:
                    loop = asyncio.get_running_loop()
                    self._idle = loop.call_later(IDLE_CLOSE, self._close_later)

    async def _open(self) -> Mailbox:
        if self._session is not None and self._session[1].lost.is_set():
            await self._close()
        if self._session is None:
            stack = contextlib.AsyncExitStack()
            box = await stack.enter_async_context(open_mailbox(self.server, self.folder))
            self._session = (stack, box)
        return self._session[1]

    def _close_later(self) -> None:
        async def close() -> None:
            async with self._lock:
                await self._close()

        self._closer = asyncio.ensure_future(close())

    async def _close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                await session[0].aclose()
            except Exception as e:  # the session is gone either way
                log.debug("Closing the download session: %s", e)

    async def aclose(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        await cancel_and_wait([self._closer])
        async with self._lock:
            await self._close()
