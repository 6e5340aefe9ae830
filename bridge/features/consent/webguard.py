"""What the consent pages know of who is asking, and how often they let them ask.

``client_ip``: the peer's address; when the peer is one of ``trusted_proxies`` (a reverse
proxy in front of the public listener), the rightmost address of ``X-Forwarded-For`` that is
not a trusted proxy (each proxy appends the address it was reached from, so everything left
of the first untrusted hop may be forged by the client). A hop that is no IP address stops
the walk: the last trusted hop is taken.

``FormLimit``: the sign-up form's endpoint takes ``PER_IP`` posts per ``IP_WINDOW`` seconds
from one client (IPv6 clients by their /64, which one subscriber line usually gets) and
``OVERALL`` per ``OVERALL_WINDOW`` from everyone, in memory (a restart forgets). A post over
either limit is refused (429) and not counted; so the tracked clients are bounded by the
overall limit."""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from collections.abc import Callable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

PER_IP = 10
IP_WINDOW = 600.0
OVERALL = 120
OVERALL_WINDOW = 60.0


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None


def client_ip(
    peer: str | None, forwarded: Sequence[str], trusted: Sequence[Network]
) -> str | None:
    """The client's address: ``peer``, or behind trusted proxies the rightmost untrusted hop of
    the ``X-Forwarded-For`` header values ``forwarded``."""
    if peer is None or not trusted:
        return peer
    hop = _address(peer)
    hops = [h for value in forwarded for h in value.split(",")]
    while hop is not None and any(hop in net for net in trusted) and hops:
        earlier = _address(hops.pop())
        if earlier is None:
            break
        hop = earlier
    return peer if hop is None else str(hop)


def _key(ip: str | None) -> str:
    """Whom a limit counts: an IPv4 address, an IPv6 client by its /64."""
    address = _address(ip or "")
    if address is None:
        return ip or "?"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class FormLimit:
    def __init__(
        self, per_ip: int = PER_IP, ip_window: float = IP_WINDOW, overall: int = OVERALL,
        overall_window: float = OVERALL_WINDOW, clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.per_ip, self.ip_window = per_ip, ip_window
        self.overall, self.overall_window = overall, overall_window
        self.clock = clock
        self._all: deque[float] = deque()
        self._by_ip: dict[str, deque[float]] = {}
        self._swept = 0.0

    def allow(self, ip: str | None) -> bool:
        """Count a post from ``ip``; False (nothing counted) when it is over a limit."""
        now = self.clock()
        _drop(self._all, now - self.overall_window)
        if now - self._swept > self.ip_window:  # forget clients gone quiet
            self._swept = now
            for key in list(self._by_ip):
                if not _drop(self._by_ip[key], now - self.ip_window):
                    del self._by_ip[key]
        key = _key(ip)
        hits = self._by_ip.get(key)
        if hits is not None:
            _drop(hits, now - self.ip_window)
        if len(self._all) >= self.overall or (hits is not None and len(hits) >= self.per_ip):
            return False
        self._all.append(now)
        self._by_ip.setdefault(key, deque()).append(now)
        return True


def _drop(hits: deque[float], before: float) -> int:
    while hits and hits[0] <= before:
        hits.popleft()
    return len(hits)
