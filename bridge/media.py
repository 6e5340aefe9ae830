"""Files on their way through the bridge, held in bounded memory.

A ``MediaFile`` is a file spooled to a temporary file on disk (in memory only while it is
small), written in chunks as it arrives and read back in chunks as it leaves, so that moving a
100 MB attachment costs the bridge a few chunks of memory, not the file (nor its base64 form).
It knows its size once complete, which the Matrix media repository needs (Synapse refuses an
upload without ``Content-Length``), and it can be read more than once (a retried upload, a
signature over a body before sending it).

Connectors fill one from an HTTP response (``MediaFile.from_response``) or any chunk source
(``MediaFile.from_chunks``); the core uploads it with ``chunks()`` and downloads a staff
member's file into one. ``FileTooLarge`` is raised as soon as more than the limit arrived,
whatever the remote side claimed in its headers.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp

    from .events import MatrixMedia

CHUNK = 256 * 1024
"""Bytes read or written at a time."""
IN_MEMORY = 1024 * 1024
"""A file up to this size stays in memory; a larger one goes to disk."""


class FileTooLarge(Exception):
    """More than ``limit`` bytes arrived."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        super().__init__(f"more than {limit} bytes" if size is None else f"{size} bytes")
        self.limit = limit
        self.size = size


class MediaFile:
    """A complete file of ``size`` bytes with its ``mimetype``. Close it when done (or use it
    as a context manager); the disk copy goes with it."""

    def __init__(self, spool: IO[bytes], size: int, mimetype: str) -> None:
        self._spool = spool
        self.size = size
        self.mimetype = mimetype

    # ------------------------------------------------------------------ making one

    @classmethod
    async def from_chunks(
        cls, chunks: AsyncIterable[bytes], mimetype: str, *, limit: int | None = None
    ) -> MediaFile:
        """Spool ``chunks``; raise ``FileTooLarge`` once more than ``limit`` bytes came."""
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY)  # noqa: SIM115
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if limit is not None and size > limit:
                    raise FileTooLarge(limit)
                if spool.tell() + len(chunk) > IN_MEMORY:
                    await asyncio.to_thread(spool.write, chunk)
                else:
                    spool.write(chunk)
        except BaseException:
            spool.close()
            raise
        return cls(spool, size, mimetype)

    @classmethod
    async def from_response(
        cls, resp: aiohttp.ClientResponse, *, limit: int | None = None, mimetype: str = ""
    ) -> MediaFile:
        """The body of ``resp``, read to its end in chunks. A ``Content-Length`` over the
        limit is refused before anything is read."""
        if limit is not None and resp.content_length is not None and resp.content_length > limit:
            raise FileTooLarge(limit, resp.content_length)
        kind = mimetype or resp.content_type or "application/octet-stream"
        return await cls.from_chunks(resp.content.iter_chunked(CHUNK), kind, limit=limit)

    @classmethod
    def from_bytes(cls, data: bytes, mimetype: str) -> MediaFile:
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY)  # noqa: SIM115
        spool.write(data)
        return cls(spool, len(data), mimetype)

    # ------------------------------------------------------------------ reading it

    async def chunks(self, chunk: int = CHUNK) -> AsyncIterator[bytes]:
        """The file from its start, ``chunk`` bytes at a time; may be called again."""
        self._spool.seek(0)
        while True:
            data = await asyncio.to_thread(self._spool.read, chunk)
            if not data:
                return
            yield data

    async def read(self) -> bytes:
        """The whole file in memory: for channels whose API needs it whole."""
        self._spool.seek(0)
        return await asyncio.to_thread(self._spool.read)

    def fileobj(self) -> IO[bytes]:
        """The underlying file, at its start (for clients that read a file object)."""
        self._spool.seek(0, os.SEEK_SET)
        return self._spool

    def close(self) -> None:
        self._spool.close()

    def __enter__(self) -> MediaFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def open_staff_file(media: MatrixMedia, limit: int | None) -> MediaFile:
    """A staff member's file as a ``MediaFile``: read from the homeserver in chunks where the
    core offers that (``MatrixMedia.open``), else downloaded whole. Raises ``FileTooLarge``
    past ``limit``."""
    if media.open is not None:
        return await media.open(limit)
    data = await media.download()
    if limit is not None and len(data) > limit:
        raise FileTooLarge(limit, len(data))
    return MediaFile.from_bytes(data, media.mimetype)
