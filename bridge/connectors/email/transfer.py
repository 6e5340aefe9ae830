"""A mail part's ``Content-Transfer-Encoding`` undone chunk by chunk, so that a large part is
decoded as it is fetched instead of whole in memory."""

from __future__ import annotations

import binascii
import re
from collections.abc import AsyncIterable, AsyncIterator

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]")
IDENTITY = frozenset({"", "7bit", "8bit", "binary"})
DECODED = frozenset({"base64", "quoted-printable"}) | IDENTITY


class Decoder:
    """``feed`` raw chunks, then ``end``; each returns the decoded bytes ready so far.
    Lenient as the stdlib parser is: characters outside the base64 alphabet are skipped, a
    missing padding is added."""

    def __init__(self, encoding: str) -> None:
        if encoding not in DECODED:
            raise ValueError(f"unknown transfer encoding {encoding!r}")
        self.encoding = encoding
        self._rest = b""

    def feed(self, data: bytes) -> bytes:
        if self.encoding == "base64":
            data = self._rest + _NOT_BASE64.sub(b"", data)
            whole = len(data) // 4 * 4
            self._rest = data[whole:]
            return _b64(data[:whole])
        if self.encoding == "quoted-printable":
            data = self._rest + data
            cut = data.rfind(b"\n") + 1  # whole lines only: a soft break may end a chunk
            self._rest = data[cut:]
            return binascii.a2b_qp(data[:cut]) if cut else b""
        return data

    def end(self) -> bytes:
        rest, self._rest = self._rest, b""
        if self.encoding == "base64":
            return _b64(rest + b"=" * (-len(rest) % 4)) if len(rest) % 4 != 1 else b""
        if self.encoding == "quoted-printable":
            return binascii.a2b_qp(rest)
        return rest


def _b64(data: bytes) -> bytes:
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        return b""  # broken padding: the caller's digest check tells the part is not as parsed


async def decoded(chunks: AsyncIterable[bytes], encoding: str) -> AsyncIterator[bytes]:
    decoder = Decoder(encoding)
    async for chunk in chunks:
        out = decoder.feed(chunk)
        if out:
            yield out
    out = decoder.end()
    if out:
        yield out
