"""The webhook connector's remote side: the integrator's system, as a real local HTTP server.

``WebhookReceiver`` receives the connector's outbound POSTs (checking signatures with its own
HMAC code, not the connector's) and serves attachment files; ``WebhookHarness`` also plays the
integrator's sender, POSTing signed events to the route the connector registered on the host.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bridge.connectors.webhook import WebhookConnector
from bridge.types import AccountID
from tests.contract.harness import ConnectorHarness, FailureKind, Received

SECRET = "integration-test-secret-0123456789"


def signature(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    """``t=<seconds>,sha256=<HMAC of "<seconds>." + body>``, written out independently of the
    connector's code."""
    when = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{when}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={when},sha256={digest}"


def signature_is_valid(header: str, body: bytes, secret: str = SECRET) -> bool:
    """What the integrator checks: the HMAC matches and the timestamp is within 5 minutes."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if not fields.get("t", "").isdigit():
        return False
    when = int(fields["t"])
    return abs(time.time() - when) <= 300 and hmac.compare_digest(
        header, signature(body, secret, when)
    )


@dataclass
class InboxRequest:
    """One POST the receiver got from the connector."""

    headers: dict[str, str]
    body: bytes
    signature_valid: bool
    payload: Any = None
    answer_id: str | None = None


@dataclass
class ServedFile:
    data: bytes
    mimetype: str = "application/octet-stream"
    chunked: bool = False
    """Stream without Content-Length, so only counting can enforce a limit."""
    status: int = 200
    redirect: str | None = None
    """Answer 302 to this URL instead."""


@dataclass
class Failure:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class WebhookReceiver:
    """The integrator's HTTP server: ``POST /inbox`` and ``GET /files/<name>``."""

    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret
        self.requests: list[InboxRequest] = []
        """Every POST, repeats included."""
        self.deliveries: list[InboxRequest] = []
        """Accepted POSTs, one per idempotency key."""
        self.failures: deque[Failure] = deque()
        self.files: dict[str, ServedFile] = {}
        self.file_requests: list[str] = []
        self.answer_ids = True
        """Answer ``{"id": "remote-N"}``; when False, answer ``{"ok": true}``."""
        self.delay = 0.0
        self._answers: dict[str, str] = {}
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/inbox", self._inbox)
        app.router.add_get("/files/{name}", self._file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def inbox_url(self) -> str:
        return f"{self.base_url}/inbox"

    def serve(self, name: str, file: ServedFile) -> str:
        self.files[name] = file
        return f"{self.base_url}/files/{name}"

    def fail(self, failure: Failure, count: int = 1) -> None:
        self.failures.extend([failure] * count)

    async def _inbox(self, request: web.Request) -> web.Response:

        body = await request.read()
        given = request.headers.get("X-Bridge-Signature", "")
        entry = InboxRequest(
            headers=dict(request.headers),
            body=body,
            signature_valid=signature_is_valid(given, body, self.secret),
        )
        self.requests.append(entry)
        if self.delay:
            await asyncio.sleep(self.delay)
        if not entry.signature_valid:
            return web.json_response({"error": "bad signature"}, status=401)
        key = request.headers.get("Idempotency-Key")
        if not key:
            return web.json_response({"error": "Idempotency-Key missing"}, status=400)
        if self.failures:
            failure = self.failures.popleft()
            return web.Response(status=failure.status, text=failure.body, headers=failure.headers)
        entry.payload = json.loads(body)
        if key not in self._answers:
            self._answers[key] = f"remote-{len(self._answers) + 1}"
            entry.answer_id = self._answers[key]
            self.deliveries.append(entry)
        if not self.answer_ids:
            return web.json_response({"ok": True})
        return web.json_response({"id": self._answers[key]})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        self.file_requests.append(request.match_info["name"])
        file = self.files.get(request.match_info["name"])
        if file is None:
            raise web.HTTPNotFound()
        if file.redirect is not None:
            raise web.HTTPFound(file.redirect)
        if file.status != 200:
            return web.Response(status=file.status, text="unavailable")
        if not file.chunked:
            return web.Response(body=file.data, content_type=file.mimetype)
        response = web.StreamResponse(headers={"Content-Type": file.mimetype})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(file.data), 64 * 1024):
            try:
                await response.write(file.data[start : start + 64 * 1024])
            except ConnectionError:
                break  # the connector stopped reading: that is what a size limit does
        return response


class WebhookHarness(ConnectorHarness):
    name = "webhook"
    connector_class = WebhookConnector
    account_id = AccountID("support-webhook")

    def __init__(self) -> None:
        super().__init__()
        self.receiver = WebhookReceiver()
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        await self.receiver.start()
        self.session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        await self.receiver.close()

    def valid_config(self) -> dict[str, Any]:
        return {
            "type": "webhook",
            "staff": ["@admin:example.com"],
            "secret": SECRET,
            "outbound_url": self.receiver.inbox_url,
            "max_body_size": 64 * 1024,
            "delivery_deadline": 600,
            "request_timeout": 5,
            "title": "Test webhook",
            "max_file_size": 256 * 1024,
            "fetch_allow_hosts": ["127.0.0.1"],  # the receiver serves files on loopback
        }

    def invalid_configs(self) -> list[tuple[dict[str, Any], str]]:
        key = self.config_key
        valid = self.valid_config()

        def changed(**values: Any) -> dict[str, Any]:
            return {**valid, **values}

        without_secret = {k: v for k, v in valid.items() if k != "secret"}
        return [
            (without_secret, f"{key}.secret"),
            (changed(secret="too-short"), f"{key}.secret"),
            (changed(secret=1234567890123456789), f"{key}.secret"),
            (changed(outbound_url="ftp://example.com/inbox"), f"{key}.outbound_url"),
            (changed(outbound_url="not a url"), f"{key}.outbound_url"),
            (changed(outbound_url=8090), f"{key}.outbound_url"),
            (changed(max_body_size=0), f"{key}.max_body_size"),
            (changed(max_body_size="1 MiB"), f"{key}.max_body_size"),
            (changed(max_body_size=True), f"{key}.max_body_size"),
            (changed(delivery_deadline=-1), f"{key}.delivery_deadline"),
            (changed(delivery_deadline="1h"), f"{key}.delivery_deadline"),
            (changed(request_timeout=0), f"{key}.request_timeout"),
            (changed(request_timeout=float("inf")), f"{key}.request_timeout"),
            (changed(title=42), f"{key}.title"),
            (changed(title=""), f"{key}.title"),
            (changed(max_file_size=-5), f"{key}.max_file_size"),
            (changed(max_file_size=1.5), f"{key}.max_file_size"),
            (changed(signature_tolerance=0), f"{key}.signature_tolerance"),
            (changed(fetch_allow_hosts="127.0.0.1"), f"{key}.fetch_allow_hosts"),
            (changed(fetch_allow_hosts=[5]), f"{key}.fetch_allow_hosts[0]"),
            (
                changed(fetch_allow_hosts=["ok.example", "no such host"]),
                f"{key}.fetch_allow_hosts[1]",
            ),
            (changed(signature_tolerance="5m"), f"{key}.signature_tolerance"),
            (changed(outbound_ulr="http://typo.example"), f"{key}.outbound_ulr"),
        ]

    # ------------------------------------------------------------------ integrator -> bridge

    async def post(
        self,
        payload: Any = None,
        *,
        body: bytes | None = None,
        sign: bool = True,
        secret: str = SECRET,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """POST an event to the connector's route; returns the status and decoded answer."""
        assert self.host is not None and self.session is not None
        if body is None:
            body = json.dumps(payload).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if sign:
            all_headers["X-Bridge-Signature"] = signature(body, secret)
        async with self.session.post(
            self.host.route_url("/events"), data=body, headers=all_headers
        ) as resp:
            raw = await resp.read()
            try:
                answer = json.loads(raw)
            except ValueError:
                answer = raw
            return resp.status, answer

    async def post_ok(self, payload: dict[str, Any]) -> str:
        status, answer = await self.post(payload)
        assert status == 200, (status, answer)
        return answer["status"]

    async def remote_sends_message(
        self,
        chat_id: str,
        sender_id: str,
        text: str,
        message_id: str,
        *,
        sender_name: str | None = None,
    ) -> None:
        await self.post_ok(
            {
                "id": message_id,
                "chat": {"id": chat_id},
                "sender": {"id": sender_id, "name": sender_name},
                "text": text,
            }
        )

    async def remote_presses_button(
        self, chat_id: str, sender_id: str, message_id: str, button_id: str
    ) -> None:
        sent = [json.loads(r.body) for r in self.receiver.requests]
        title = next(
            b["title"] for p in sent for b in p.get("buttons", []) if b["id"] == button_id
        )
        press = {
            "type": "button", "id": message_id, "chat": {"id": chat_id},
            "sender": {"id": sender_id}, "button_id": button_id, "title": title,
            "press_id": f"press-{message_id}-{button_id}",
        }  # fmt: skip
        await self.post_ok(press)

    async def remote_sends_attachment(
        self,
        chat_id: str,
        sender_id: str,
        message_id: str,
        data: bytes,
        filename: str,
        mimetype: str,
    ) -> None:
        url = self.receiver.serve(filename, ServedFile(data, mimetype))
        attachment = {"url": url, "filename": filename, "mimetype": mimetype, "size": len(data)}
        await self.post_ok(
            {
                "id": message_id,
                "chat": {"id": chat_id},
                "sender": {"id": sender_id},
                "attachment": attachment,
            }
        )

    # ------------------------------------------------------------------ bridge -> integrator

    async def remote_received(self) -> list[Received]:
        return [_normalise(entry) for entry in self.receiver.deliveries]

    async def make_remote_fail(self, kind: FailureKind, count: int = 1) -> None:
        if kind == "temporary":
            failure = Failure(503, '{"error": "overloaded"}', {"Retry-After": "7"})
        else:
            failure = Failure(422, '{"error": "chat is closed"}')
        self.receiver.fail(failure, count)


def _normalise(entry: InboxRequest) -> Received:
    payload = entry.payload
    if payload["type"] != "message":
        received = Received(
            type=payload["type"],
            id=payload["id"],
            chat_id=payload["chat_id"],
            target=payload["target"],
        )
        if "text" in payload:
            received["text"] = payload["text"]
            received["html"] = payload["html"]
        if "emoji" in payload:
            received["emoji"] = payload["emoji"]
        return received
    assert entry.answer_id is not None
    attachment = payload.get("attachment")
    return Received(
        type="message",
        id=entry.answer_id,
        chat_id=payload["chat_id"],
        text=payload["text"],
        html=payload["html"],
        reply_to=payload["reply_to"],
        buttons=[(b["id"], b["title"]) for b in payload.get("buttons", [])],
        attachment=None
        if attachment is None
        else {
            "filename": attachment["filename"],
            "mimetype": attachment["mimetype"],
            "data": base64.b64decode(attachment["data_base64"]),
        },
    )
