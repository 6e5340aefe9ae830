"""The OpenAPI 3 document of the provisioning API, made from the operations' own data (the core's
in ``routes.py``, the features' through ``Seams.add_api``), so that what is served and what is
described cannot drift apart. Every operation has its 200 answer and each refusal described;
every one needs the bearer token and the ``user_id`` it acts for."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..seams_api import ApiOperation
from .auth import MXID
from .schema import ERROR

DESCRIPTIONS = {
    400: "The parameters or the body do not match this document, or the bridge refused",
    401: "The bearer token or the user_id is missing or wrong",
    403: "The user may not do this",
    404: "No such thing (or none the user may see)",
    409: "It is so already, or it just changed",
    413: "The body is too large",
    502: "The homeserver refused what the bridge asked of it",
}
USER_ID = {
    "name": "user_id",
    "in": "query",
    "required": True,
    "description": "The Matrix user the call acts for (the OpenID token's user, or whom the "
    "shared secret acts for); their permissions decide what is allowed",
    "schema": {"type": "string", "pattern": MXID.pattern, "maxLength": 255},
}


def document(prefix: str, operations: Iterable[ApiOperation]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Business bridge provisioning API",
            "version": "1",
            "description": "Channel accounts, conversations, templates and the features' "
            "operations, over the same services as the bot's commands.",
        },
        "servers": [{"url": prefix}],
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The shared secret, or openid:<a Matrix OpenID token of "
                    "the user named by user_id>",
                }
            },
            "schemas": {"Error": ERROR},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _operation(op: ApiOperation) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    statuses = sorted({401, 403, 502, *op.errors, *_more(op)})
    responses: dict[str, Any] = {
        "200": {"description": "Done", "content": {"application/json": {"schema": op.response}}}
    }
    for status in statuses:
        responses[str(status)] = {"description": DESCRIPTIONS[status], "content": error}
    parameters = [USER_ID] + [
        {
            "name": p.name,
            "in": p.where,
            "required": p.required or p.where == "path",
            "description": p.description,
            "schema": dict(p.schema),
        }
        for p in op.params
    ]
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": parameters,
        "responses": responses,
        **op.extra,
    }
    if op.description:
        out["description"] = op.description
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": dict(op.body)}},
        }
    return out


def _more(op: ApiOperation) -> tuple[int, ...]:
    """400 for what has parameters or a body, 413 for a body too large."""
    return (*((400,) if op.params or op.body else ()), *((413,) if op.body is not None else ()))
