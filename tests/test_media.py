"""``MediaFile``: a file held in bounded memory, refused past its limit, readable again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.media import IN_MEMORY, FileTooLarge, MediaFile


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    block = bytes(range(256)) * (size // 256)
    sent = 0
    while sent < total:
        part = block[: min(size, total - sent)]
        sent += len(part)
        yield part


async def _read_all(media: MediaFile) -> bytes:
    return b"".join([chunk async for chunk in media.chunks()])


async def test_a_large_file_goes_to_disk_and_reads_back_twice() -> None:
    total = 3 * IN_MEMORY + 123
    with await MediaFile.from_chunks(_chunks(total), "application/pdf", limit=total) as media:
        assert media.size == total
        assert media.mimetype == "application/pdf"
        assert media._spool._rolled  # type: ignore[attr-defined] - on disk, not in memory
        first = await _read_all(media)
        assert len(first) == total
        assert first == await _read_all(media) == await media.read()
        assert max([len(c) async for c in media.chunks()]) <= 256 * 1024


async def test_a_small_file_stays_in_memory() -> None:
    with await MediaFile.from_chunks(_chunks(1000), "text/plain") as media:
        assert media.size == 1000
        assert not media._spool._rolled  # type: ignore[attr-defined]


async def test_more_than_the_limit_is_refused_as_it_arrives() -> None:
    produced = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal produced
        while True:
            produced += 1
            yield b"x" * 1024

    with pytest.raises(FileTooLarge) as e:
        await MediaFile.from_chunks(endless(), "x/y", limit=10 * 1024)
    assert e.value.limit == 10 * 1024
    assert produced == 11  # stopped at the first chunk past the limit


def test_from_bytes() -> None:
    with MediaFile.from_bytes(b"hello", "text/plain") as media:
        assert media.size == 5
        assert media.fileobj().read() == b"hello"
