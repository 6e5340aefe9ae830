"""The Graph API edge: bearer-token auth, JSON bodies and Graph error answers."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..payloads import ERRORS, ApiError, Json
from ..payloads import no_object_error as _no_object
from ..payloads import param_error as _param
from .records import Rejection
from .state import SimulatorState

REQUEST_JSON = web.RequestKey("whatsapp_request_json", dict)


class HttpEdge(SimulatorState):
    """Wraps each Graph endpoint: injected failures, bearer-token auth, Graph error answers."""

    def _endpoint(
        self, handler: Callable[[web.Request], Awaitable[Json]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def run(request: web.Request) -> web.Response:
            try:
                if self._failures:
                    code, status = self._failures.pop(0)
                    raise ApiError(code, status=status)
                self._authorize(request)
                return web.json_response(await handler(request))
            except ApiError as exc:
                request_json = request.get(REQUEST_JSON)
                self.rejected.append(
                    Rejection(
                        request.method, request.path, exc.status, exc.code, exc.body["error"],
                        request_json if isinstance(request_json, dict) else None,
                        self.clock.now(),
                    )
                )  # fmt: skip
                self._notify()
                return web.json_response(exc.body, status=exc.status)

        return run

    def _authorize(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "oauth"):
            token = request.query.get("access_token", "")
        if not hmac.compare_digest(token.strip().encode(), self.access_token.encode()):
            raise ApiError(190, message=ERRORS[190].title)

    @staticmethod
    async def _json(request: web.Request) -> Json:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            raise _param("The request body must be a JSON object.")
        request[REQUEST_JSON] = body
        return body

    def _check_phone(self, request: web.Request, method: str = "post") -> None:
        node = request.match_info["node"]
        if node != self.phone_number_id:
            raise _no_object(node, method)

    async def _unknown_path(self, request: web.Request) -> Json:
        raise ApiError(2500, message=f"Unknown path components: {request.path}", error_data=False)
