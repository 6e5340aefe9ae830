"""Reading the mailbox: IMAP with IDLE where offered (polling otherwise), UIDs and UIDVALIDITY
kept by the caller so that a restart neither loses nor repeats a mail."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager

import aioimaplib
from aioimaplib import Command

from ...tasks import cancel_and_wait
from .config import ServerConfig

UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
NEWS = re.compile(rb"^\* \d+ (?:EXISTS|RECENT)\b", re.IGNORECASE)
FETCH_UID = re.compile(rb"UID (\d+)")
FETCH_LINE = re.compile(rb"^(?:\* )?\d+ FETCH\b", re.IGNORECASE)
SECTION = re.compile(r"(?:[1-9][0-9]{0,8}(?:\.[1-9][0-9]{0,8}){0,40})?")
RANGE = 1024 * 1024
"""Bytes of a body part fetched at a time (aioimaplib holds a fetched literal in memory)."""


class IMAPError(Exception):
    pass


def tls_context(server: ServerConfig) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not server.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def _starttls(client: aioimaplib.IMAP4, context: ssl.SSLContext, host: str) -> None:
    """aioimaplib has no STARTTLS: send it, then upgrade the transport in place."""
    proto = client.protocol
    response = await proto.execute(Command("STARTTLS", proto.new_tag(), loop=proto.loop))
    if response.result != "OK":
        raise IMAPError(f"STARTTLS refused: {response.lines}")
    loop = asyncio.get_running_loop()
    transport = await loop.start_tls(proto.transport, proto, context, server_hostname=host)
    if transport is None:
        raise IMAPError("STARTTLS failed")
    proto.transport = transport
    await proto.capability()


class Mailbox:
    """One logged-in IMAP session on the configured folder."""

    def __init__(
        self, client: aioimaplib.IMAP4, uidvalidity: int, lost: asyncio.Event | None = None
    ) -> None:
        self.client = client
        self.uidvalidity = uidvalidity
        self.lost = lost or asyncio.Event()
        """Set when the server closed the connection."""
        self.news = False
        """New mail was announced since the last search. aioimaplib drops an announcement
        that comes between commands or with another command's response, so every untagged
        line is looked at here; ``wait`` then returns at once instead of sitting in IDLE."""
        proto = client.protocol
        untagged = proto._untagged_response

        def watch(line: bytes) -> object:
            if NEWS.match(line):
                self.news = True
            return untagged(line)

        proto._untagged_response = watch  # type: ignore[method-assign]

    @property
    def has_idle(self) -> bool:
        return self.client.has_capability("IDLE")

    async def uids_after(self, last_uid: int) -> list[int]:
        self.news = False
        response = await self.client.uid_search(f"UID {last_uid + 1}:*", charset=None)
        if response.result != "OK":
            raise IMAPError(f"UID SEARCH failed: {response.lines}")
        uids: list[int] = []
        for line in response.lines[:-1]:  # the last line is the completion text
            words = bytes(line).split()
            if words and words[0] == b"SEARCH":  # aioimaplib strips it; others may not
                words = words[1:]
            if words and all(w.isdigit() for w in words):
                uids += [int(w) for w in words]
        # "n:*" always matches the newest mail, even below n.
        return sorted(u for u in uids if u > last_uid)

    async def fetch(self, uid: int) -> bytes | None:
        response = await self.client.uid("fetch", str(uid), "(BODY.PEEK[])")
        if response.result != "OK":
            raise IMAPError(f"UID FETCH {uid} failed: {response.lines}")
        for line in response.lines:
            if isinstance(line, bytearray):
                return bytes(line)
        return None

    async def fetch_range(self, uid: int, section: str, offset: int, length: int) -> bytes | None:
        """``length`` bytes from ``offset`` of body part ``section`` ("" for the whole mail),
        as sent (still transfer-encoded): fewer at its end, None if the mail is gone."""
        if not SECTION.fullmatch(section):
            raise ValueError(f"not a body section: {section!r}")
        response = await self.client.uid(
            "fetch", str(uid), f"(BODY.PEEK[{section}]<{offset}.{length}>)"
        )
        if response.result != "OK":
            raise IMAPError(f"UID FETCH {uid} failed: {response.lines}")
        fetched = False
        for line in response.lines:
            if isinstance(line, bytearray):
                return bytes(line)
            fetched = fetched or bool(FETCH_LINE.match(bytes(line)))
        return b"" if fetched else None  # an empty part ("") or no such mail

    async def part_chunks(
        self, uid: int, section: str, length: int = RANGE
    ) -> AsyncGenerator[bytes]:
        """Body part ``section`` of mail ``uid`` as sent, ``length`` bytes at a time. Raises
        ``LookupError`` when the mail is gone."""
        offset = 0
        while True:
            data = await self.fetch_range(uid, section, offset, length)
            if data is None:
                raise LookupError(f"no mail {uid}")
            if data:
                yield data
            if len(data) < length:
                return
            offset += len(data)

    async def wait(self, idle_timeout: float, poll_interval: float) -> None:
        """Until the server announces a change (IDLE) or ``poll_interval`` passed."""
        if self.news:
            return
        if not self.has_idle:
            await asyncio.sleep(poll_interval)
            return
        idle = await self.client.idle_start(timeout=idle_timeout)
        # aioimaplib does not end the wait when the connection drops (a server restart):
        # without watching for that the loop would sit here until ``idle_timeout``.
        push = asyncio.ensure_future(self.client.wait_server_push(timeout=idle_timeout))
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            if not self.news:  # announced before IDLE began
                await asyncio.wait([push, lost], return_when=asyncio.FIRST_COMPLETED)
            if not self.lost.is_set():
                self.client.idle_done()
                await asyncio.wait_for(idle, 10)
        finally:
            # Also when stopped (cancelled) or the connection is gone: no IDLE task may be
            # left pending (asyncio would complain when it is collected).
            await cancel_and_wait([push, lost, idle])
        if self.lost.is_set():
            raise IMAPError("the server closed the connection")


@asynccontextmanager
async def open_mailbox(server: ServerConfig, folder: str) -> AsyncIterator[Mailbox]:
    context = tls_context(server)
    lost = asyncio.Event()

    def connection_lost(_: Exception | None) -> None:
        lost.set()

    if server.security == "tls":
        client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(
            server.host, server.port, ssl_context=context, timeout=30,
            conn_lost_cb=connection_lost,
        )  # fmt: skip
    else:
        client = aioimaplib.IMAP4(
            server.host, server.port, timeout=30, conn_lost_cb=connection_lost
        )
    try:
        await client.wait_hello_from_server()
        if server.security == "starttls":
            await _starttls(client, context, server.host)
        response = await client.login(server.user or "", server.password or "")
        if response.result != "OK":
            raise IMAPError(f"IMAP login refused for {server.user}")
        response = await client.select(folder)
        if response.result != "OK":
            raise IMAPError(f"cannot open the folder {folder!r}: {response.lines}")
        found = next(
            (m for line in response.lines if isinstance(line, bytes | bytearray)
             for m in [UIDVALIDITY.search(bytes(line))] if m),
            None,
        )  # fmt: skip
        if found is None:
            raise IMAPError("the server gave no UIDVALIDITY")
        yield Mailbox(client, int(found.group(1)), lost)
    finally:
        await _close(client)


async def _close(client: aioimaplib.IMAP4) -> None:
    """Log out and leave nothing behind, whatever state the session was stopped in (also in
    the middle of ``idle_start``, before the server acknowledged IDLE: aioimaplib then holds
    tasks of its own that nobody else ends)."""
    proto = client.protocol
    if client._idle_waiter is not None:  # the timer that would end IDLE later
        client._idle_waiter.cancel()
    tasks = [t for t in (*client.tasks, *proto.tasks) if isinstance(t, asyncio.Task)]
    for task in tasks:
        task.cancel()  # at once: an await below may itself be cancelled
    transport = proto.transport
    try:
        if transport is not None and not transport.is_closing():
            if proto.has_pending_idle_command():
                proto.idle_done()
            await asyncio.wait_for(client.logout(), 5)
    except Exception:
        pass
    finally:
        if transport is not None and not transport.is_closing():
            transport.close()
        await cancel_and_wait(tasks)
