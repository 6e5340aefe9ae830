"""The provisioning API's seam: the operations a feature serves under the API's prefix.

The provisioning API (``bridge.provisioning``) is how in-house systems (a shop, a CRM) and
Matrix users' own tools drive the bridge without writing commands in a room. The core serves
its own operations (channel accounts, conversations, templates); a feature adds its own with
``Seams.add_api`` at ``setup``: an ``ApiOperation`` names its method and path (under the
prefix), describes its parameters, body and answer as JSON schema (they become the served
OpenAPI document, and the parameters and body are checked against them before the handler
runs), and has a handler.

The handler gets an ``ApiRequest``: who acts (a Matrix user ID, authenticated by the API:
the shared secret acting for the ``user_id`` it names, or the user's own OpenID token), the
path and query parameters and the JSON body, already checked. It calls the SAME function the
feature's command calls, with ``actor`` where the command has its sender, so both take one
code path with the same permission checks, and returns a JSON-able answer (status 200). A
refusal raises ``ApiError`` (a status and a Matrix-style ``errcode``); the API answers it as
``{"errcode": ..., "error": ...}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ERRORS = {
    400: "M_BAD_JSON",
    401: "M_MISSING_TOKEN",
    403: "M_FORBIDDEN",
    404: "M_NOT_FOUND",
    409: "M_CONFLICT",
    502: "M_BAD_GATEWAY",
}
"""The default ``errcode`` of a status."""


class ApiError(Exception):
    """A refusal, answered with ``status`` and ``{"errcode": ..., "error": message}``."""

    def __init__(self, status: int, message: str, errcode: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errcode = errcode or ERRORS.get(status, "M_UNKNOWN")


@dataclass(frozen=True)
class ApiRequest:
    """One call of an operation, authenticated and checked against its schemas."""

    actor: str
    """The Matrix user acting: permission checks go by their level, as for their commands."""
    params: Mapping[str, Any]
    """Path and query parameters, converted to their schema's type (integers)."""
    body: Any
    """The JSON body (an object), None for operations without one."""
    id: str
    """Unique per call: stands where a command has its event id (an idempotency key)."""


@dataclass(frozen=True)
class ApiParam:
    """A path or query parameter (``in``: ``path`` or ``query``)."""

    name: str
    where: str
    schema: Mapping[str, Any]
    description: str
    required: bool = False


ACCOUNT_ID: Mapping[str, Any] = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
"""The schema of a channel account id."""
DEFAULT_LIMIT = 100
LIMIT = ApiParam(
    "limit", "query", {"type": "integer", "minimum": 1, "maximum": 500}, "At most this many"
)
SINCE = ApiParam(
    "since", "query", {"type": "string", "pattern": "^[0-9]{1,9}$"},
    "The next_batch of the page before",
)  # fmt: skip
"""A paged list's parameters: its answer has a ``next_batch`` (null: no more) to pass as
``since`` for the next page (``page``)."""


def page(request: ApiRequest) -> tuple[int, int]:
    """The offset and size of the page ``request`` asks for."""
    return int(request.params.get("since", "0")), request.params.get("limit", DEFAULT_LIMIT)


@dataclass(frozen=True)
class ApiOperation:
    method: str
    path: str
    """Under the API's prefix, starting with ``/``; ``{name}`` parts are path parameters."""
    operation_id: str
    summary: str
    tag: str
    """Its group in the document: ``accounts``, ``conversations``, ``inbox``, ``consent``..."""
    response: Mapping[str, Any]
    """The JSON schema of the 200 answer."""
    handler: Callable[[ApiRequest], Awaitable[Any]]
    params: tuple[ApiParam, ...] = ()
    body: Mapping[str, Any] | None = None
    """The JSON schema of the request body (an object); None: no body."""
    errors: tuple[int, ...] = (400, 403, 404)
    """The statuses it may refuse with, besides 401 (every operation has that)."""
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """More of the OpenAPI operation object (rarely needed)."""
