"""The one bounded body reader for HTTP that connectors receive (webhooks) or fetch (answers,
downloads): never more than the limit plus one chunk is read, and the bytes are joined once at
the end, so the work is linear in the size of the body however small its chunks are."""

from __future__ import annotations

from aiohttp import StreamReader, web

READ_CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    """The body is longer than the limit; answer 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body is larger than {limit} bytes")
        self.limit = limit


async def read_limited(stream: StreamReader, limit: int) -> tuple[bytes, bool]:
    """Read at most ``limit + 1`` bytes of ``stream``. Returns the bytes read (at most
    ``limit``) and whether the stream had more, without reading the rest."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(min(READ_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body of ``request``, or ``BodyTooLarge`` when it is longer than ``limit`` bytes:
    refused from its declared length before any byte is read, else as soon as the limit is
    passed. Errors of the connection (the client went away) propagate."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(limit)
    body, over = await read_limited(request.content, limit)
    if over:
        raise BodyTooLarge(limit)
    return body
