"""What the bot connectors (Telegram, MAX) share around receiving: the webhook secret kept
with the account's data, its check in constant time, and the loop that connects (retrying
with backoff until the remote side takes the token) and then polls."""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..connector import BridgeHost, NetworkConnector, StateKind
from ..logsafe import add_secrets


async def stored_secret(host: BridgeHost, pattern: str) -> str:
    """The webhook secret generated for this account earlier, or a new one, kept with the
    account's data so that a restart sets the same one."""
    data = await host.load_data()
    secret = data.get("webhook_secret")
    if isinstance(secret, str) and re.fullmatch(pattern, secret):
        return secret
    secret = secrets.token_urlsafe(48)
    await host.save_data({**data, "webhook_secret": secret})
    return secret


async def open_webhook(
    connector: NetworkConnector,
    secret: str | None,
    route: str | None,
    *,
    configured: str | None,
    pattern: str,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> tuple[str, str]:
    """The webhook's secret (``configured``, else the stored one) and its route (added once
    under ``/webhook``), for a connector that has ``secret`` and ``route`` from before."""
    if secret is None:
        secret = configured or await stored_secret(connector.host, pattern)
        add_secrets(secret)
    if route is None:
        route = connector.host.add_route("POST", "/webhook", handler)
    return secret, route


async def first_connect(
    connector: NetworkConnector,
    connect: Callable[[], Awaitable[None]],
    describe: Callable[[Exception], str],
    timeout: float,  # noqa: ASYNC109
) -> bool:
    """Whether ``connect`` succeeded within ``timeout`` at start. A failure is not fatal:
    ``connect_and_poll`` keeps trying, and the state says why meanwhile."""
    try:
        await asyncio.wait_for(connect(), timeout)
    except Exception as e:
        connector.set_state(StateKind.DISCONNECTED, describe(e))
        return False
    return True


def secret_matches(request: web.Request, header: str, secret: str | None) -> bool:
    """Whether ``request`` carries ``secret`` in ``header``, compared in constant time; never
    without a secret."""
    expected = (secret or "").encode()
    given = request.headers.get(header, "").encode("utf-8", "surrogateescape")
    return bool(expected) and hmac.compare_digest(given, expected)


async def connect_and_poll(
    connector: NetworkConnector,
    *,
    name: str,
    connected: bool,
    connect: Callable[[], Awaitable[None]],
    poll: Callable[[], Awaitable[None]] | None,
    describe: Callable[[Exception], str],
) -> None:
    """Connect (retrying until the token is accepted), then ``poll``; without ``poll``
    (webhook mode) done once connected. Failures set the state to disconnected with
    ``describe(error)`` (no secrets in it) and are retried after 1, 2, 4... up to 60 s."""
    delay = 1.0
    while True:
        try:
            if not connected:
                await connect()
                connected = True
                delay = 1.0
            if poll is None:
                return
            await poll()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            connected = False
            error = describe(e)
            connector.set_state(StateKind.DISCONNECTED, error)
            connector.host.log.warning(
                "%s not reachable (%s); retrying in %.0fs", name, error, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
