"""One body part of a raw mail, found by its IMAP section number while the mail streams by:
what an IMAP server does for ``BODY[<section>]``, for mail the bridge keeps itself (pushed
over LMTP). Only MIME boundaries and part headers are looked at, so a large attachment is
read in chunks and never whole. The caller checks the result against what the parser saw
(size and digest) and falls back to parsing the whole mail when a broken mail is split
otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesHeaderParser

MAX_LINE = 64 * 1024
"""A longer line is passed on in pieces (a boundary is never that long)."""
MAX_HEADER = 256 * 1024
"""Header bytes of one part; a part with more is not looked into (the caller falls back)."""


@dataclass
class _Multipart:
    separator: bytes
    path: tuple[int, ...]
    children: int = 0


@dataclass
class _State:
    target: tuple[int, ...]
    stack: list[_Multipart] = field(default_factory=list)
    path: tuple[int, ...] = ()
    phase: str = "headers"  # headers | body | skip
    header: bytearray = field(default_factory=bytearray)
    emitting: bool = False
    held: bytes = b""
    done: bool = False
    """The line ending last emitted is held back: before a boundary it belongs to the boundary."""


async def section_body(chunks: AsyncIterable[bytes], section: str) -> AsyncIterator[bytes]:
    """The bytes of body part ``section`` ("" for the whole mail) as sent (still
    transfer-encoded); nothing if the mail has no such part."""
    if section == "":
        async for chunk in chunks:
            yield chunk
        return
    state = _State(tuple(int(n) for n in section.split(".")))
    async for line, whole in _lines(chunks):
        out = _line(state, line, whole)
        if out:
            yield out
        if state.done:
            return
    if state.emitting:  # the part ran to the end of the mail: its last line ending is its own
        yield state.held


async def _lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[tuple[bytes, bool]]:
    """Lines with their endings; ``whole`` is False for the pieces of an overlong line after
    its first (they cannot be a boundary)."""
    buffer = b""
    at_start = True
    async for chunk in chunks:
        buffer += chunk
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > MAX_LINE:
                    yield buffer, at_start
                    buffer, at_start = b"", False
                break
            yield buffer[: end + 1], at_start
            buffer, at_start = buffer[end + 1 :], True
    if buffer:
        yield buffer, at_start


def _boundary(state: _State, line: bytes) -> tuple[int, bool] | None:
    if not line.startswith(b"--") or len(line) > 1000:
        return None
    bare = line.rstrip(b"\r\n").rstrip(b" \t")
    for depth in range(len(state.stack) - 1, -1, -1):
        separator = state.stack[depth].separator
        if bare == separator:
            return depth, False
        if bare == separator + b"--":
            return depth, True
    return None


def _line(state: _State, line: bytes, whole: bool) -> bytes:
    found = _boundary(state, line) if whole else None
    if found is not None:
        depth, closing = found
        if state.emitting:
            state.done = True
            return b""
        del state.stack[depth + 1 :]
        parent = state.stack[depth]
        if closing:
            state.stack.pop()
            state.phase = "skip"
        else:
            parent.children += 1
            state.path = (*parent.path, parent.children)
            state.phase, state.header = "headers", bytearray()
        return b""
    if state.phase == "headers":
        state.header += line
        if len(state.header) > MAX_HEADER:
            state.phase = "skip"
        elif whole and line in (b"\r\n", b"\n"):
            _headers_done(state)
        return b""
    if state.phase == "body" and state.emitting:
        content = line.rstrip(b"\r\n")
        out = state.held + content
        state.held = line[len(content) :]
        return out
    return b""


def _headers_done(state: _State) -> None:
    headers = BytesHeaderParser(policy=policy.compat32).parsebytes(bytes(state.header))
    ctype = headers.get_content_type()
    boundary = headers.get_boundary() if ctype.startswith("multipart/") else None
    if boundary:
        separator = b"--" + boundary.encode("utf-8", "surrogateescape")
        state.stack.append(_Multipart(separator, state.path))
        state.phase = "skip"  # the preamble
        return
    own = state.path or (1,)  # a single part of the mail itself is section 1
    state.phase = "body"
    state.emitting = own == state.target
