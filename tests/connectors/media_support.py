"""Reading what a connector's ``download_attachment`` hands the core, whole, for assertions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from bridge.events import MatrixMedia, RemoteAttachment
from bridge.media import MediaFile


async def downloaded(connector: Any, attachment: RemoteAttachment) -> tuple[bytes, str]:
    """The bytes and mimetype of ``attachment``, whether the connector spooled it into a
    ``MediaFile`` (closed here) or handed over bytes."""
    data, mimetype = await connector.download_attachment(attachment)
    if isinstance(data, MediaFile):
        with data:
            return await data.read(), mimetype
    return data, mimetype


def streamed_media(data: bytes, filename: str, mimetype: str) -> tuple[MatrixMedia, list[str]]:
    """Matrix media offered only in chunks (``open``), as the core offers a staff file; its
    ``download`` (the whole file in memory) must not be used. The list records the calls."""
    calls: list[str] = []

    async def download() -> bytes:
        calls.append("download")
        return data

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]

    async def open_file(limit: int | None) -> MediaFile:
        calls.append("open")
        return await MediaFile.from_chunks(chunks(), mimetype, limit=limit)

    media = MatrixMedia(
        f"mxc://example.com/{filename}", filename, mimetype, len(data), download, open_file
    )
    return media, calls
