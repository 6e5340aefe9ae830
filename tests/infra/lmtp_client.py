"""A minimal LMTP client (RFC 2033), as an MTA pushes mail: one reply per recipient after DATA.

``smtplib.LMTP`` reads a single reply after DATA, which hides exactly what LMTP adds, so the
tests talk the protocol themselves.
"""

from __future__ import annotations

import asyncio


class LmtpReplyError(AssertionError):
    pass


async def _reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    lines = []
    while True:
        line = (await reader.readline()).decode("utf-8", "replace")
        if not line:
            raise LmtpReplyError(f"connection closed after {lines!r}")
        lines.append(line.rstrip("\r\n"))
        if len(line) < 4 or line[3] != "-":
            return int(line[:3]), "\n".join(lines)


async def push_mail(
    host: str,
    port: int,
    raw: bytes,
    *,
    sender: str = "mta@example.net",
    recipients: tuple[str, ...] = ("support@company.test",),
    timeout: float = 30.0,  # noqa: ASYNC109
) -> list[tuple[int, str]]:
    """Deliver ``raw`` over LMTP; returns the reply of each recipient, in order: the DATA
    reply, or the RCPT reply of a recipient the server refused (as an MTA, the client then
    leaves that recipient out)."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:

            async def command(line: str, expect: int) -> str:
                writer.write(line.encode() + b"\r\n")
                await writer.drain()
                code, text = await _reply(reader)
                if code != expect:
                    raise LmtpReplyError(f"{line!r}: {text}")
                return text

            code, text = await _reply(reader)
            if code != 220:
                raise LmtpReplyError(f"greeting: {text}")
            await command("LHLO mta.example.net", 250)
            await command(f"MAIL FROM:<{sender}>", 250)
            refused: dict[int, tuple[int, str]] = {}
            for index, rcpt in enumerate(recipients):
                writer.write(f"RCPT TO:<{rcpt}>\r\n".encode())
                await writer.drain()
                code, text = await _reply(reader)
                if code != 250:
                    refused[index] = (code, text)
            if len(refused) == len(recipients):
                writer.write(b"QUIT\r\n")
                await writer.drain()
                return [refused[i] for i in range(len(recipients))]
            await command("DATA", 354)
            body = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            body = b"\r\n".join(
                b"." + ln if ln.startswith(b".") else ln for ln in body.split(b"\r\n")
            )
            if not body.endswith(b"\r\n"):
                body += b"\r\n"
            writer.write(body + b".\r\n")
            await writer.drain()
            replies = [
                refused[i] if i in refused else await _reply(reader)
                for i in range(len(recipients))
            ]
            writer.write(b"QUIT\r\n")
            await writer.drain()
            return replies
        finally:
            writer.close()
            await writer.wait_closed()
