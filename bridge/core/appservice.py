"""The bridge's HTTP listener: appservice transactions from the homeserver and connector
webhooks under ``/connectors/<account>/``."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..db import QueueItem

log = logging.getLogger("bridge.appservice")

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
EPHEMERAL_KEYS = ("ephemeral", "de.sorunome.msc2409.ephemeral")


def _error(status: int, errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status)


def matrix_queue_key(event: dict[str, Any]) -> str:
    room_id = event.get("room_id")
    return f"mx:{room_id}" if isinstance(room_id, str) and room_id else "mx:"


class AppServiceServer:
    """Accepts transactions: answers 200 only after their events are committed to the queue
    table; a transaction id recorded before (also before a restart) is a no-op."""

    def __init__(
        self,
        hs_token: str,
        max_body_size: int,
        on_recorded: Callable[[list[QueueItem]], None],
    ) -> None:
        self._hs_token = hs_token.encode()
        self._on_recorded = on_recorded
        self._routes: dict[tuple[str, str, str], RouteHandler] = {}
        self.app = web.Application(client_max_size=max_body_size)
        self.app.router.add_put("/_matrix/app/v1/transactions/{txn_id}", self.handle_transaction)
        self.app.router.add_post("/_matrix/app/v1/ping", self.handle_ping)
        self.app.router.add_get("/_matrix/app/v1/users/{user_id}", self.handle_query)
        self.app.router.add_get("/_matrix/app/v1/rooms/{alias}", self.handle_query)
        self.app.router.add_get("/_matrix/mau/live", self.handle_live)
        self.app.router.add_route("*", "/connectors/{account}/{tail:.*}", self.handle_connector)
        self._runner: web.AppRunner | None = None

    def add_route(self, account: str, method: str, path: str, handler: RouteHandler) -> str:
        path = "/" + path.lstrip("/")
        self._routes[(account, method.upper(), path)] = handler
        return f"/connectors/{account}{path}"

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        if not token:
            # Older homeservers send ?access_token=; accept it the same way.
            token = request.query.get("access_token", "")
        return hmac.compare_digest(token.encode(), self._hs_token)

    async def handle_transaction(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            log.warning("Refused a transaction with a wrong or missing hs_token")
            return _error(403, "M_FORBIDDEN", "Bad or missing hs_token")
        txn_id = request.match_info["txn_id"]
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "M_NOT_JSON", "Body is not JSON")
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "M_TOO_LARGE", "Transaction body too large")
        if not isinstance(body, dict):
            return _error(400, "M_BAD_JSON", "Body must be a JSON object")
        events: list[Any] = []
        # Synapse sends ephemeral events under the stable and the unstable key at once: take
        # the stable list when it is there, the unstable one otherwise, never both.
        ephemeral_key = next((k for k in EPHEMERAL_KEYS if k in body), EPHEMERAL_KEYS[0])
        for key in ("events", ephemeral_key):
            value = body.get(key, [])
            if not isinstance(value, list):
                return _error(400, "M_BAD_JSON", f"'{key}' must be a list")
            events.extend(value)
        items = [(matrix_queue_key(evt), "matrix", evt) for evt in events if isinstance(evt, dict)]
        try:
            new = await QueueItem.record_transaction(txn_id, items)
        except Exception:
            log.exception("Could not record transaction %s", txn_id)
            return _error(500, "M_UNKNOWN", "Could not store the transaction; retry later")
        if new is not None:
            log.debug("Recorded transaction %s with %d events", txn_id, len(new))
            self._on_recorded(new)
        else:
            log.debug("Transaction %s was already recorded", txn_id)
        return web.json_response({})

    async def handle_ping(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(403, "M_FORBIDDEN", "Bad or missing hs_token")
        return web.json_response({})

    async def handle_query(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(403, "M_FORBIDDEN", "Bad or missing hs_token")
        return _error(404, "M_NOT_FOUND", "Not found")

    async def handle_live(self, _: web.Request) -> web.Response:
        return web.json_response({})

    async def handle_connector(self, request: web.Request) -> web.StreamResponse:
        account = request.match_info["account"]
        path = "/" + request.match_info["tail"]
        handler = self._routes.get((account, request.method, path))
        if handler is None:
            if any(a == account and p == path for a, _, p in self._routes):
                return web.json_response({"error": "method not allowed"}, status=405)
            return web.json_response({"error": "not found"}, status=404)
        return await handler(request)

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
