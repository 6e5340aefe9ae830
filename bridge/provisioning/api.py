"""Serving the provisioning API: an aiohttp application of its own, mounted under the prefix on
the appservice listener (whose connection cap and read timeouts apply), with the core's
operations (``routes.py``) and those the features registered (``Seams.api``).

Each call goes: authenticate (``auth.py``: 401), the user must have a permission level on some
account (else 403), the parameters and body are checked against the operation's schemas
(400), then the handler runs and its answer is sent as JSON. A refusal of the services layer
becomes 403 (no permission) or 400 (anything else it refused, its message as the error);
``ApiError`` carries its own status. Every error body is ``{"errcode": ..., "error": ...}``,
also for unknown paths (404), wrong methods (405) and bodies too large (413); the homeserver
refusing what an operation asked of it is 502, and a failure of the bridge itself (a bug) is
500 with the reason in its log.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp
from aiohttp import web
from mautrix.errors import MatrixRequestError

from ..config import Config
from ..core.appservice import load_json
from ..core.services import ServiceError, Services
from ..core.services.errors import PermissionDenied
from ..seams_api import ApiError, ApiOperation, ApiRequest
from . import routes
from .auth import Authenticator
from .openapi import document
from .schema import check as check_schema
from .schema import parameter

log = logging.getLogger("bridge.provisioning")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status)


CODES = {404: "M_UNRECOGNIZED", 405: "M_UNRECOGNIZED", 413: "M_TOO_LARGE"}
ACTOR = web.RequestKey("actor", str)
PUBLIC = "openapi"
"""The name of the one route served without credentials: the document."""


class ProvisioningApi:
    def __init__(
        self,
        prefix: str,
        services: Services,
        auth: Authenticator,
        operations: Iterable[ApiOperation],
        max_body_size: int,
    ) -> None:
        self.services = services
        self.auth = auth
        self.operations = list(operations)
        self.document = document(prefix, self.operations)
        self.app = web.Application(middlewares=[self._guard], client_max_size=max_body_size)
        self.app.router.add_get("/openapi.json", self._openapi, name=PUBLIC)
        for op in self.operations:
            self.app.router.add_route(op.method, op.path, self._handler(op))

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Authenticate every request but for the document, before anything else (an unknown
        path too: without credentials it is 401 like any other); aiohttp's own refusals (no
        such path, wrong method, body too large) as JSON errors."""
        try:
            if request.match_info.route.name != PUBLIC:
                actor = await self.auth.actor(request)
                if self.services.level(actor) == "none":
                    raise ApiError(403, f"{actor} may not use the bridge")
                request[ACTOR] = actor
            return await handler(request)
        except ApiError as e:
            return error(e.status, e.errcode, e.message)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            return error(e.status, CODES.get(e.status, "M_UNKNOWN"), e.reason)

    async def _openapi(self, _: web.Request) -> web.Response:
        return web.json_response(self.document)

    def _handler(self, op: ApiOperation) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            try:
                return web.json_response(await self._call(op, request))
            except ApiError as e:
                return error(e.status, e.errcode, e.message)
            except PermissionDenied as e:
                return error(403, "M_FORBIDDEN", str(e))
            except ServiceError as e:
                return error(400, "M_BAD_STATE", str(e))
            except MatrixRequestError as e:
                log.warning("%s %s: the homeserver refused: %s", op.method, op.path, e)
                return error(502, "M_BAD_GATEWAY", f"The homeserver refused: {e.message}")
            except Exception:
                log.exception("%s %s failed", op.method, op.path)
                return error(500, "M_UNKNOWN", "The bridge failed; its log says why")

        return handle

    async def _call(self, op: ApiOperation, request: web.Request) -> Any:
        actor = request[ACTOR]
        params: dict[str, Any] = {}
        for p in op.params:
            raw = (
                request.match_info.get(p.name) if p.where == "path" else request.query.get(p.name)
            )
            if raw is None:
                if p.required:
                    raise ApiError(400, f"{p.name} is missing", "M_MISSING_PARAM")
                continue
            try:
                params[p.name] = parameter(raw, p.schema, p.name)
            except ValueError as e:
                raise ApiError(400, str(e), "M_INVALID_PARAM") from e
        body = None
        if op.body is not None:
            try:
                body = check_schema(load_json(await request.read()), op.body, "body")
            except ValueError as e:  # also UnicodeDecodeError
                raise ApiError(400, f"The body does not fit: {e}"[:300], "M_BAD_JSON") from e
        return await op.handler(ApiRequest(actor, params, body, f"api-{uuid.uuid4().hex}"))


def build(
    config: Config,
    services: Services,
    operations: Iterable[ApiOperation],
    http: Callable[[], aiohttp.ClientSession],
) -> ProvisioningApi:
    """The API of ``config.provisioning`` (which must be on): the core's operations, then
    ``operations`` (the features')."""
    assert config.provisioning is not None
    auth = Authenticator(
        config.provisioning, config.hs_domain, config.hs_address, http,
        lambda user: config.permission_level(user) != "none",
    )  # fmt: skip
    everything = [*routes.operations(services), *operations]
    return ProvisioningApi(
        config.provisioning.prefix, services, auth, everything, config.max_body_size
    )
