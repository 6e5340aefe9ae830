"""The provisioning API tested against the OpenAPI document it serves, with schemathesis: the
bridge's listener with the API (``support.serve``) runs on an event loop in a thread of its
own, on SQLite, while schemathesis (synchronous) sends what it generates from the document.
For every operation: no 5xx, every answer matches its documented status, content type and
schema, and without credentials, with a wrong secret or a bad OpenID token it is always 401.

The examples act for the admin (the ``user_id`` the document allows is narrowed to one user
and the account parameters to the configured accounts plus an unknown one, in the test's copy
of the document only; the answers are checked against the document as served), so that they
reach past the permission checks. Bounded: a few examples per operation."""

from __future__ import annotations

import asyncio
import copy
import itertools
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from mautrix.util.async_db import Database
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import bridge.db
from tests.infra.ports import free_port
from tests.provisioning.support import ADMIN, ANN, BOB, SAM, SECRET, ApiServer, config, seed, serve

T = TypeVar("T")
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}
"""Per operation: valid requests, and requests that break the document (refused with 4xx)."""
LINE_LIMIT = 8190
"""aiohttp's limit on a request line (a broken long parameter can exceed it)."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class Loop:
    """An event loop in a thread of its own, to run the bridge while the test blocks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="api-loop")
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ApiServer]:
    loop = Loop()
    db = Database.create(f"sqlite:{tmp_path / 'bridge.db'}", upgrade_table=bridge.db.upgrade_table)

    async def start() -> ApiServer:
        bridge.db.init(db)
        await db.start()
        await seed()
        # The OpenID check asks a homeserver that is not there: a bad token is refused.
        return await serve(config(hs_address=f"http://127.0.0.1:{free_port()}"))

    api = loop.run(start())
    try:
        yield api
    finally:
        loop.run(api.stop())
        loop.run(db.stop())
        loop.close()


NARROW: dict[str, list[Any]] = {
    "chat": ["c0", "c3", "491512345", "nope"],
    "address": ["+491512345", "+4930123456", "not a number"],
    "user": ["me", ANN, BOB, SAM],
    "name": ["order_update", "nope"],
    "language": ["en", "de"],
    "params": [["A-17"], [], ["a", "b"]],
    "team": ["support", "sales"],
    "assignee": [ANN, BOB],
    "identity": ["support-webhook:c0", "contact:1", "nobody"],
    "remote_user": ["user-c0", "c3"],
    "list": ["newsletter", "nope"],
    "contact": ["1", "support-webhook:user-c0", "7"],
    # A confirmed erasure would run in the background while the examples go on.
    "decision": ["cancel"],
}
"""Values that reach past the refusals of unknown things (and some that do not)."""


def narrowed(document: dict[str, Any], accounts: list[str]) -> dict[str, Any]:
    """The document with ``user_id`` the admin, account parameters the known accounts (or an
    unknown one), and the other parameters and body properties some values of ``NARROW``."""
    doc = copy.deepcopy(document)
    values = {**NARROW, "user_id": [ADMIN], "account": [*accounts, "nope"]}
    for operations in doc["paths"].values():
        for operation in operations.values():
            for param in operation["parameters"]:
                if param["name"] in values:
                    param["schema"] = {"enum": values[param["name"]]}
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            for name, schema in (body["schema"]["properties"] if body else {}).items():
                if name in values:
                    schema.clear()
                    schema["enum"] = values[name]
    return doc


def test_the_api_keeps_to_its_document(served: ApiServer) -> None:
    with requests.Session() as http:
        document = http.get(f"{served.url}/openapi.json", timeout=10).json()
        served_schema = schemathesis.openapi.from_dict(document)
        schema = schemathesis.openapi.from_dict(narrowed(document, list(served.config.channels)))
        good = {"Authorization": f"Bearer {SECRET}"}
        bad = [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer openid:x"}]
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 10
        for operation, mode in itertools.product(operations, GenerationMode):

            @settings(
                max_examples=EXAMPLES[mode],
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def examples(case: Any) -> None:
                response = case.call(base_url=served.url, session=http, headers=good)
                if len(response.request.url) > LINE_LIMIT:
                    # A request line that long is refused by the listener before the API.
                    assert response.status_code == 400
                    return
                # Validated against the document as served, not the narrowed copy.
                real = served_schema[case.operation.path][case.operation.method.upper()]
                real_case = real.Case(
                    path_parameters=case.path_parameters, query=case.query, body=case.body,
                    media_type=case.media_type,
                )  # fmt: skip
                real_case.validate_response(response, checks=CHECKS)
                for headers in bad:
                    refused = case.call(base_url=served.url, session=http, headers=headers)
                    assert refused.status_code == 401, (case.path, headers, refused.text)
                    real_case.validate_response(refused, checks=CHECKS)

            examples()
