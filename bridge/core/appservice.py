"""The bridge's HTTP listener: appservice transactions from the homeserver and connector
webhooks under ``/connectors/<account>/``, or the webhooks on a listener of their own (config
``webhooks``), so that the appservice listener can stay private. Both have read timeouts and a
connection cap (``listener.py``)."""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..config import ListenerConfig, ListenerLimits
from ..db import QueueItem
from .crypto.marks import DEVICE_LISTS, QUEUE_KEY, TO_DEVICE
from .listener import ConnectionGuard, GuardedSite

log = logging.getLogger("bridge.appservice")

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
EPHEMERAL_KEYS = ("ephemeral", "de.sorunome.msc2409.ephemeral")
TO_DEVICE_KEYS = ("de.sorunome.msc2409.to_device", "org.matrix.msc2409.to_device")
"""Where a transaction carries to-device messages for the bot's device (MSC2409)."""
DEVICE_LISTS_KEY = "org.matrix.msc3202.device_lists"
OTK_COUNTS_KEY = "org.matrix.msc3202.device_one_time_keys_count"
MAX_EVENT_DEPTH = 256
"""Events nested deeper are skipped (no client makes them): storing an event and reading it
back uses recursive JSON code that needs room on the stack."""
MAX_ID_LENGTH = 255
REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
KEEPALIVE_TIMEOUT = 15.0
"""Seconds an idle keep-alive connection stays open (it counts against the connection cap)."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range")
    return value


def load_json(raw: bytes) -> Any:
    """Strict UTF-8 JSON (no NaN, no Infinity, no number out of range, as no homeserver sends
    them); ValueError for anything else, also for nesting too deep to parse."""
    try:
        return json.loads(
            raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float
        )
    except RecursionError as e:
        raise ValueError("nested too deeply") from e


def _storable(text: str) -> str:
    """``text`` without what no database column or wire format takes: lone surrogates (JSON
    escapes can make them) and NUL (PostgreSQL text cannot hold it) become U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    if not text.isascii():
        text = _SURROGATE.sub(REPLACEMENT, text)
    return text


def clean_event(event: dict[str, Any]) -> dict[str, Any] | None:
    """A copy of ``event`` with every string (keys too) storable, or None when it is nested
    more than ``MAX_EVENT_DEPTH`` levels deep. Iterative, so depth cannot exhaust the stack."""
    root: dict[str, Any] = {}
    stack: list[tuple[Any, Any, int]] = [(event, root, 1)]
    while stack:
        source, target, depth = stack.pop()
        if depth > MAX_EVENT_DEPTH:
            return None
        items: Any = source.items() if isinstance(source, dict) else enumerate(source)
        for key, value in items:
            if isinstance(value, str):
                value = _storable(value)
            elif isinstance(value, dict | list):
                child: Any = {} if isinstance(value, dict) else [None] * len(value)
                stack.append((value, child, depth + 1))
                value = child
            if isinstance(target, dict):
                target[_storable(key)] = value
            else:
                target[key] = value
    return root


def _crypto_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The to-device messages and the device list change of a transaction, as queue payloads
    (cleaned like room events; malformed ones skipped)."""
    items: list[dict[str, Any]] = []
    key = next((k for k in TO_DEVICE_KEYS if k in body), TO_DEVICE_KEYS[0])
    listed = body.get(key)
    for evt in listed if isinstance(listed, list) else []:
        cleaned = clean_event(evt) if isinstance(evt, dict) else None
        if cleaned is not None and isinstance(cleaned.get("type"), str):
            items.append({**cleaned, TO_DEVICE: True})
    lists = body.get(DEVICE_LISTS_KEY)
    if isinstance(lists, dict):
        changed, left = lists.get("changed"), lists.get("left")
        change = {
            "type": DEVICE_LISTS,
            "changed": [u for u in changed if isinstance(u, str)]
            if isinstance(changed, list)
            else [],
            "left": [u for u in left if isinstance(u, str)] if isinstance(left, list) else [],
        }
        if change["changed"] or change["left"]:
            cleaned = clean_event(change)
            if cleaned is not None:
                items.append(cleaned)
    return items


def _error(status: int, errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status)


def matrix_queue_key(event: dict[str, Any]) -> str:
    room_id = event.get("room_id")
    # Matrix ids have at most 255 bytes; a longer one names no room the bridge is in (and
    # would not fit PostgreSQL's index).
    if isinstance(room_id, str) and room_id and len(room_id.encode()) <= MAX_ID_LENGTH:
        return f"mx:{room_id}"
    return "mx:"


class AppServiceListener:
    """Accepts transactions: answers 200 only after their events are committed to the queue
    table; a transaction id recorded before (also before a restart) is a no-op."""

    def __init__(
        self,
        hs_token: str,
        max_body_size: int,
        on_recorded: Callable[[list[QueueItem]], None],
        skip: Callable[[dict[str, Any]], bool] | None = None,
        on_refused: Callable[[], None] | None = None,
        *,
        queue_key: Callable[[dict[str, Any]], Awaitable[str]] | None = None,
        limits: ListenerLimits | None = None,
        webhooks: ListenerConfig | None = None,
    ) -> None:
        self.before_record: Callable[[str], Awaitable[None]] | None = None
        """Awaited with a transaction's id before its events are recorded (the catch-up's
        look at it: a homeserver that restarted numbers its transactions anew)."""
        self.on_otk_counts: Callable[[dict[str, Any]], None] | None = None
        """Set when encryption is on: to-device messages and device list changes are then
        recorded too (under the ``crypto:`` key), and one-time key counts handed here."""
        self._hs_token = hs_token.encode()
        self._on_recorded = on_recorded
        self._skip = skip
        self._on_refused = on_refused
        self._queue_key = queue_key
        self._routes: dict[tuple[str, str, str], RouteHandler] = {}
        self.guard = ConnectionGuard("appservice", limits or ListenerLimits())
        self.app = web.Application(
            client_max_size=max_body_size, middlewares=[self.guard.middleware]
        )
        self.app.router.add_put("/_matrix/app/v1/transactions/{txn_id}", self.handle_transaction)
        self.app.router.add_post("/_matrix/app/v1/ping", self.handle_ping)
        self.app.router.add_get("/_matrix/app/v1/users/{user_id}", self.handle_query)
        self.app.router.add_get("/_matrix/app/v1/rooms/{alias}", self.handle_query)
        self.app.router.add_get("/_matrix/mau/live", self.handle_live)
        self.webhooks = webhooks
        self.webhook_guard: ConnectionGuard | None = None
        self.webhook_app: web.Application | None = None
        connector_app = self.app
        if webhooks is not None:
            self.webhook_guard = ConnectionGuard("webhooks", webhooks.limits)
            self.webhook_app = web.Application(
                client_max_size=max_body_size, middlewares=[self.webhook_guard.middleware]
            )
            connector_app = self.webhook_app
        connector_app.router.add_route(
            "*", "/connectors/{account}/{tail:.*}", self.handle_connector
        )
        self.public_app = connector_app
        """Where connectors' webhooks and features' pages are served."""
        self._runners: list[web.AppRunner] = []

    def add_route(self, account: str, method: str, path: str, handler: RouteHandler) -> str:
        path = "/" + path.lstrip("/")
        self._routes[(account, method.upper(), path)] = handler
        return f"/connectors/{account}{path}"

    def add_feature_route(self, method: str, path: str, handler: RouteHandler) -> None:
        """Serve a feature's page or endpoint (``Seams.routes``) on the public listener; only
        before ``start``."""
        self.public_app.router.add_route(method.upper(), path, handler)

    def add_api(self, prefix: str, app: web.Application) -> None:
        """Serve the provisioning API (an application of its own) under ``prefix`` on this
        listener, with its limits; only before ``start``."""
        self.app.add_subapp(prefix, app)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        if not token:
            # Older homeservers send ?access_token=; accept it the same way.
            token = request.query.get("access_token", "")
        # Header values are decoded with surrogateescape; compare bytes so odd input cannot raise.
        return hmac.compare_digest(token.encode("utf-8", "surrogateescape"), self._hs_token)

    async def handle_transaction(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            log.warning("Refused a transaction with a wrong or missing hs_token")
            return _error(403, "M_FORBIDDEN", "Bad or missing hs_token")
        txn_id = _storable(request.match_info["txn_id"])
        try:
            body = load_json(await request.read())
        except ValueError as e:  # also UnicodeDecodeError
            return _error(400, "M_NOT_JSON", f"Body is not JSON: {e}"[:200])
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
        kept = []
        for evt in events:
            # Anything but an object is no event; unreadable depth is skipped the same way.
            cleaned = clean_event(evt) if isinstance(evt, dict) else None
            if cleaned is None:
                log.warning("Skipping a malformed event in transaction %s", txn_id)
            elif not (self._skip and self._skip(cleaned)):
                kept.append(cleaned)
        crypto: list[dict[str, Any]] = []
        if self.on_otk_counts is not None:
            crypto = _crypto_items(body)
            counts = body.get(OTK_COUNTS_KEY)
            if isinstance(counts, dict) and counts:
                self.on_otk_counts(counts)
        if events and not kept and not crypto:
            # Nothing the bridge would act on (e.g. only its own messages coming back): no
            # work to keep, so nothing to record; a repeat of it is as harmless.
            return web.json_response({})
        try:
            if self.before_record is not None:
                await self.before_record(txn_id)
            items = [(await self._key(evt), "matrix", evt) for evt in kept]
            items += [(QUEUE_KEY, "matrix", evt) for evt in crypto]
            new = await QueueItem.record_transaction(txn_id, items)
        except Exception:
            log.exception("Could not record transaction %s", txn_id)
            if self._on_refused is not None:
                self._on_refused()
            return _error(500, "M_UNKNOWN", "Could not store the transaction; retry later")
        if new is not None:
            log.debug("Recorded transaction %s with %d events", txn_id, len(new))
            self._on_recorded(new)
        else:
            log.debug("Transaction %s was already recorded", txn_id)
        return web.json_response({})

    async def _key(self, event: dict[str, Any]) -> str:
        return await self._queue_key(event) if self._queue_key else matrix_queue_key(event)

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
        """Listen for the homeserver on ``host:port``, and for webhooks on their own listener
        when one is configured."""
        await self._serve(self.app, host, port, self.guard)
        if self.webhooks is not None:
            assert self.webhook_app is not None and self.webhook_guard is not None
            listener = self.webhooks
            await self._serve(
                self.webhook_app, listener.hostname, listener.port, self.webhook_guard
            )

    async def _serve(
        self, app: web.Application, host: str, port: int, guard: ConnectionGuard
    ) -> None:
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=KEEPALIVE_TIMEOUT)
        await runner.setup()
        self._runners.append(runner)
        await GuardedSite(runner, host, port, guard).start()

    async def stop(self) -> None:
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()
