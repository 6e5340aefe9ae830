"""Free TCP ports on the loopback interface.

Tests run in several processes at once (pytest-xdist workers, each starting its own servers), so
a port found free by one could be taken by another before it binds it. Each worker therefore
hands out ports from a range of its own, below the kernel's ephemeral ports (32768–60999 on
Linux), which outgoing connections take theirs from; within the range it goes round, skipping
ports that are in use. A run outside xdist (one test file run by hand, several such runs at
once) starts at a place of its own in the whole range, taken from its process id."""

from __future__ import annotations

import os
import socket

LOOPBACK = "127.0.0.1"
FIRST, LAST = 20_000, 32_000
"""The ports handed out: below the ephemeral range, split among the workers."""

_next: int | None = None


def _range() -> tuple[int, int]:
    """This process's share of ``FIRST``..``LAST``."""
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % count if worker.isdigit() else 0
    size = (LAST - FIRST) // count
    return FIRST + index * size, size


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that is free right now and that no other test worker hands out
    (the caller binds it a moment later)."""
    global _next
    first, size = _range()
    if _next is None:
        alone = "PYTEST_XDIST_WORKER" not in os.environ
        _next = first + (os.getpid() * 131) % size if alone else first
    for _ in range(size):
        port = first + (_next - first) % size
        _next = port + 1
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}..{first + size - 1}")


def port_is_open(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
