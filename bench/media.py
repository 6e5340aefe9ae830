"""What moving one large file through the bridge costs it in memory: a customer's attachment
(remote -> Matrix: the bridge fetches it from the remote side and uploads it to Synapse) and
a staff member's file (Matrix -> remote: the bridge downloads it from Synapse and sends it to
the remote side). The figure is the peak resident memory of the bridge process during the
transfer minus its resident memory just before, against the file's size."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from .cpu import rss_mb
from .stack import Portal, Stack

log = logging.getLogger("bench")

TRANSFER_TIMEOUT = 600.0


@dataclass
class Transfer:
    size_mb: float
    rss_before_mb: float
    peak_increase_mb: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "size_mb": self.size_mb,
            "rss_before_mb": round(self.rss_before_mb, 1),
            "peak_increase_mb": round(self.peak_increase_mb, 1),
            "seconds": round(self.seconds, 2),
        }


def _peak_rss_mb(pid: int) -> float:
    """The process's resident-memory high-water mark (VmHWM) since the last reset."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def _reset_peak(pid: int) -> None:
    """Start the high-water mark afresh at the current resident memory (Linux >= 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


async def _measured(stack: Stack, size: int, transfer: Any) -> Transfer:
    pid = stack.bridge_pid
    await asyncio.sleep(0.5)  # let the previous work's garbage go
    before = rss_mb(pid)
    _reset_peak(pid)
    started = time.perf_counter()
    await asyncio.wait_for(transfer(), TRANSFER_TIMEOUT)
    took = time.perf_counter() - started
    peak = _peak_rss_mb(pid)
    return Transfer(size / 1024 / 1024, before, max(peak - before, 0.0), took)


async def remote_to_matrix(stack: Stack, portal: Portal, size: int, marker: str) -> Transfer:
    """The customer sends a file of ``size`` bytes by URL; it has arrived when Synapse
    pushes the file event (its body is the file name, which carries the marker)."""
    url = stack.receiver.file_url(size)

    async def transfer() -> None:
        fut = stack.observer.arrivals.expect(marker)
        payload = {
            "type": "message",
            "id": marker,
            "chat": {"id": portal.chat},
            "sender": {"id": portal.customer},
            "attachments": [
                {"url": url, "filename": f"{marker}.bin", "mimetype": "application/octet-stream"}
            ],
        }
        await stack.post_webhook(payload)
        await fut

    return await _measured(stack, size, transfer)


async def matrix_to_remote(stack: Stack, portal: Portal, size: int, marker: str) -> Transfer:
    """A staff member uploads a file of ``size`` bytes to Synapse (before the measurement)
    and sends it into the portal room; it has arrived when the remote side received it."""
    mxc = await _upload(stack, size, f"{marker}.bin")

    async def transfer() -> None:
        fut = stack.receiver.arrivals.expect(marker)
        content = {
            "msgtype": "m.file",
            "body": f"{marker}.bin",
            "filename": f"{marker}.bin",
            "url": mxc,
            "info": {"size": size, "mimetype": "application/octet-stream"},
        }
        path = f"/_matrix/client/v3/rooms/{portal.room_id}/send/m.room.message/{stack.txn()}"
        await stack.matrix("PUT", path, stack.staff_token, content)
        await fut

    return await _measured(stack, size, transfer)


async def _upload(stack: Stack, size: int, filename: str) -> str:
    url = f"{stack.synapse.base_url}/_matrix/media/v3/upload?filename={filename}"
    headers = {
        "Authorization": f"Bearer {stack.staff_token}",
        "Content-Type": "application/octet-stream",
        "Content-Length": str(size),
    }
    async with stack.session.post(url, data=file_chunks(size), headers=headers) as resp:
        data = await resp.json(content_type=None)
        if resp.status != 200:
            raise RuntimeError(f"upload answered {resp.status}: {data}")
        return str(data["content_uri"])


async def file_chunks(size: int, chunk: int = 1024 * 1024) -> AsyncIterator[bytes]:
    """``size`` bytes of a file, in chunks, without holding it whole."""
    block = bytes(range(256)) * (chunk // 256)
    sent = 0
    while sent < size:
        part = block[: min(chunk, size - sent)]
        sent += len(part)
        yield part


async def measure_media(stack: Stack, size_mb: int) -> dict[str, Any]:
    size = size_mb * 1024 * 1024
    portal = (await stack.make_portals("media", 1))[0]
    await stack.matrix("POST", f"/_matrix/client/v3/join/{portal.room_id}", stack.staff_token)
    out: dict[str, Any] = {}
    for name, run in (("r2m", remote_to_matrix), ("m2r", matrix_to_remote)):
        try:
            result = await run(stack, portal, size, f"bench-media{name}-1")
        except (TimeoutError, RuntimeError, aiohttp.ClientError) as e:
            log.error("Media transfer %s of %d MB failed: %s", name, size_mb, e)
            out[name] = {"size_mb": size_mb, "error": str(e)}
            continue
        log.info(
            "Media %s, %d MB: +%.1f MB resident at peak, %.1f s",
            name, size_mb, result.peak_increase_mb, result.seconds,
        )  # fmt: skip
        out[name] = result.as_dict()
    return out
