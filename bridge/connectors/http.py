"""HTTP pieces the connectors share.

The one bounded body reader for what connectors receive (webhooks) or fetch (answers,
downloads): never more than the limit plus one chunk is read, and the bytes are joined once at
the end, so the work is linear in the size of the body however small its chunks are.

Guarded fetching for URLs a remote payload names (see below)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from aiohttp import (
    ClientConnectorError,
    ClientResponse,
    ClientSession,
    ClientTimeout,
    StreamReader,
    TCPConnector,
    web,
)
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

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


# --------------------------------------------------------------------------- guarded fetching
#
# URLs that come from a remote payload (attachments, avatars) must not reach the bridge's own
# network: loopback, private, link-local (cloud metadata at 169.254.169.254), shared, reserved
# and multicast addresses are refused, unless the operator allow-listed the host. Host names
# are checked after resolving, every resolved address, and the connection is made to exactly
# the addresses that were checked (aiohttp connects to what the resolver returned), so a DNS
# answer that changes between check and connect (rebinding) cannot slip through. Redirects
# are followed by hand, each hop checked the same way.

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddress(OSError):
    """A remote-supplied URL points at an address the bridge does not fetch from."""


def _public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


class AddressPolicy:
    """Which hosts remote-supplied URLs may point at: public addresses, plus ``allow``
    (host names, IP addresses or CIDR networks, e.g. ``files.internal``, ``10.0.0.0/8``)."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        names: set[str] = set()
        for entry in allow:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                names.add(entry.strip().lower().rstrip("."))
        self.names = frozenset(names)
        self.networks = tuple(networks)

    def name_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.names

    def check_address(self, host: str, address: str) -> None:
        """Raise ``BlockedAddress`` unless ``address`` (one that ``host`` resolved to) may be
        fetched from."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError as e:
            raise BlockedAddress(f"{host} resolved to {address!r}, not an IP address") from e
        if _public(ip) or any(ip in network for network in self.networks):
            return
        shown = host if host == address else f"{host} ({address})"
        raise BlockedAddress(
            f"{shown} is not a public address; the bridge does not fetch from its own network "
            "unless the host is allow-listed"
        )

    def check_url(self, url: URL) -> None:
        """Refuse what can be refused before connecting: other schemes and IP literals (aiohttp
        does not ask the resolver about those)."""
        if url.scheme not in ("http", "https") or not url.host:
            raise BlockedAddress(f"{str(url)[:200]!r} is not an http(s) URL")
        host = url.host
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return  # a name: the resolver checks what it resolves to
        self.check_address(host, host)


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` (aiohttp's default) and refuses the host if any address it
    resolved to is not allowed by ``policy``."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        if not self.policy.name_allowed(host):
            for result in results:
                self.policy.check_address(host, result["host"])
        return results

    async def close(self) -> None:
        await self.inner.close()


def guarded_session(
    policy: AddressPolicy, resolver: AbstractResolver | None = None
) -> ClientSession:
    """A client session for remote-supplied URLs: every address checked against ``policy``,
    no proxy from the environment (a proxy would connect on our behalf, unchecked)."""
    connector = TCPConnector(resolver=GuardedResolver(policy, resolver), limit=20)
    return ClientSession(connector=connector, trust_env=False)


@asynccontextmanager
async def guarded_get(
    session: ClientSession,
    url: str,
    policy: AddressPolicy,
    *,
    client_timeout: ClientTimeout,
    max_redirects: int = MAX_REDIRECTS,
) -> AsyncIterator[ClientResponse]:
    """GET ``url`` with a session from ``guarded_session``, following up to ``max_redirects``
    redirects, each target checked before it is requested. Raises ``BlockedAddress`` for a
    refused address (also when the resolver refused it) and ``TooManyRedirects``."""
    target = URL(url)
    for _ in range(max_redirects + 1):
        policy.check_url(target)
        try:
            resp = await session.get(target, allow_redirects=False, timeout=client_timeout)
        except ClientConnectorError as e:
            if isinstance(e.os_error, BlockedAddress):
                raise e.os_error from None
            raise
        if resp.status in REDIRECT_STATUSES and "Location" in resp.headers:
            location = resp.headers["Location"]
            resp.release()
            try:
                target = resp.url.join(URL(location))
            except ValueError as e:
                raise BlockedAddress(f"redirect to an invalid URL {location[:200]!r}") from e
            continue
        try:
            yield resp
        finally:
            resp.release()
        return
    raise TooManyRedirects(f"more than {max_redirects} redirects")


class TooManyRedirects(Exception):
    """A remote-supplied URL redirected too often."""
