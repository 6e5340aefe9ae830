"""A local WhatsApp Business Cloud API (Graph API) server for tests.

It answers the way ``graph.facebook.com`` does for Cloud API - ``/{version}/{phone-number-id}/
messages`` and ``/media``, ``/{version}/{media-id}``, ``/{version}/{waba-id}/message_templates``,
bearer-token auth, Graph error bodies with Cloud API codes - and it plays Meta towards the bridge:
it verifies the webhook (``hub.challenge``) and POSTs signed ``messages`` webhooks
(``X-Hub-Signature-256``), retrying non-2xx answers, so that a production connector runs against
it with only its base URL changed.

Tests drive it from the customer side (``receive``, ``media_message``, ``emit_statuses``), bend
it (``clock``, ``storm``, ``fail_next``, ``set_undeliverable``, ``limits``, ``rate_limits``), then
inspect what the bot did (``sent``, ``read_receipts``, ``uploads``, ``rejected``,
``webhook_deliveries``) or await it (``wait_for_*``). Payload builders live in ``payloads.py``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import random
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from . import payloads as wa
from .payloads import (
    ERRORS,
    PRODUCT,
    SUPPORTED_MIME,
    ApiError,
    Json,
    Template,
    base_mime,
    is_animated_webp,
    kind_for_mime,
)
from .payloads import no_object_error as _no_object
from .payloads import param_error as _param

LOOPBACK = "127.0.0.1"
KiB = 1 << 10
MiB = 1 << 20
SIGNATURE_HEADER = "X-Hub-Signature-256"
VERSION = r"{version:v\d+\.\d+}"
T = TypeVar("T")
REQUEST_JSON = web.RequestKey("whatsapp_request_json", dict)
UNAVAILABLE_TEMPLATE = frozenset({"PENDING", "REJECTED", "IN_APPEAL", "PENDING_DELETION"})


# -- configuration --------------------------------------------------------------------------------


class SimClock:
    """The simulator's "now": wall time plus ``offset``. The 24-hour window, media URL expiry
    and the rate limits read it, so ``advance`` ages everything at once."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._frozen: float | None = None

    def now(self) -> float:
        return (time.time() if self._frozen is None else self._frozen) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def freeze(self) -> None:
        """Stop time (``advance`` still moves it) so rate-limit tests do not race the wall."""
        self._frozen = time.time()

    def unfreeze(self) -> None:
        if self._frozen is not None:
            self.offset -= time.time() - self._frozen
            self._frozen = None


@dataclass
class Limits:
    """The documented limits; tests may lower them to keep payloads small."""

    text_length: int = 4096
    caption_length: int = 1024
    image_bytes: int = 5 * MiB
    audio_bytes: int = 16 * MiB
    video_bytes: int = 16 * MiB
    document_bytes: int = 100 * MiB
    sticker_bytes: int = 100 * KiB
    animated_sticker_bytes: int = 500 * KiB
    media_url_ttl: float = 300.0
    service_window: float = 24 * 3600.0

    def media_bytes(self, kind: str, data: bytes) -> int:
        if kind == "sticker" and is_animated_webp(data):
            return self.animated_sticker_bytes
        return int(getattr(self, f"{kind}_bytes"))


@dataclass
class RateLimits:
    """Throughput per business number (130429) and the pair rate to one user (131056): a token
    bucket of ``pair_burst`` refilled with one message every ``pair_interval`` seconds."""

    enabled: bool = True
    messages_per_second: int = 80
    pair_interval: float = 6.0
    pair_burst: int = 45


# -- records --------------------------------------------------------------------------------------


@dataclass
class StoredMedia:
    id: str
    data: bytes
    mime_type: str
    kind: str
    phone_number_id: str
    origin: str  # "upload" (the bot's) or "inbound" (a customer's)
    filename: str | None = None
    at: float = 0.0
    deleted: bool = False
    url_requests: int = 0

    @property
    def sha256_hex(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def sha256_b64(self) -> str:
        return wa.sha256_b64(self.data)


@dataclass
class SentMessage:
    """A message the API accepted: the parsed request, the wamid answered and, for media sent
    by id, the uploaded file."""

    wamid: str
    phone_number_id: str
    to: str
    wa_id: str
    type: str
    body: Json
    at: float
    media: StoredMedia | None = None
    template: Template | None = None
    rendered: str | None = None
    """Template messages: the body text with the parameters filled in."""

    @property
    def content(self) -> Json:
        value = self.body.get(self.type)
        return value if isinstance(value, dict) else {}

    @property
    def context_id(self) -> str | None:
        ctx = self.body.get("context")
        return ctx.get("message_id") if isinstance(ctx, dict) else None

    @property
    def media_bytes(self) -> bytes | None:
        return self.media.data if self.media is not None else None

    @property
    def text(self) -> str | None:
        if self.type == "text":
            return self.content.get("body")
        if self.type == "template":
            return self.rendered
        return self.content.get("caption")


@dataclass
class ReadReceipt:
    message_id: str
    typing: bool
    body: Json
    at: float


@dataclass
class Rejection:
    """An error the API answered."""

    method: str
    path: str
    status: int
    code: int
    error: Json
    request: Json | None
    at: float


@dataclass
class InboundMessage:
    wamid: str
    wa_id: str
    type: str
    at: float


@dataclass
class WebhookAttempt:
    status: int | None
    error: str | None = None
    answer: str = ""
    duplicate: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status <= 299


@dataclass
class WebhookDelivery:
    """One webhook event and every POST of it (retries after non-2xx, forced duplicates)."""

    payload: Json
    body: bytes
    signature: str | None
    url: str
    attempts: list[WebhookAttempt] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return any(a.ok for a in self.attempts)

    @property
    def statuses(self) -> list[int | None]:
        return [a.status for a in self.attempts]


# -- the simulator --------------------------------------------------------------------------------


class WhatsAppSimulator:
    """``async with WhatsAppSimulator(access_token=...) as sim:`` then point the connector's
    Graph base URL at ``sim.base_url`` and its webhook settings at ``sim.app_secret`` /
    ``sim.verify_token``; tell the simulator the bridge's webhook with ``webhook_url``."""

    def __init__(
        self,
        access_token: str = "EAAsimulator-access-token",
        *,
        phone_number_id: str = "106540352242922",
        display_phone_number: str = "15550783881",
        waba_id: str = "102290129340398",
        verified_name: str = "Simulated Business",
        app_secret: str = "simulator-app-secret",
        verify_token: str = "simulator-verify-token",
        webhook_url: str | None = None,
        limits: Limits | None = None,
        rate_limits: RateLimits | None = None,
        webhook_max_attempts: int = 3,
        webhook_retry_delay: float = 0.05,
        webhook_timeout: float = 10.0,
    ) -> None:
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.display_phone_number = display_phone_number
        self.waba_id = waba_id
        self.verified_name = verified_name
        self.app_secret = app_secret
        self.verify_token = verify_token
        self.webhook_url = webhook_url
        self.limits = limits or Limits()
        self.rate_limits = rate_limits or RateLimits()
        self.webhook_max_attempts = webhook_max_attempts
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_timeout = webhook_timeout
        self.auto_statuses: tuple[str, ...] = ()
        """Statuses webhooks sent by themselves after every accepted message (reactions only
        get ``sent``, as documented), e.g. ``("sent", "delivered")``."""
        self.clock = SimClock()
        self.port = 0

        self.sent: list[SentMessage] = []
        self.read_receipts: list[ReadReceipt] = []
        self.uploads: list[StoredMedia] = []
        self.rejected: list[Rejection] = []
        self.downloads: list[tuple[str, int]] = []
        """(media id, HTTP status) of every media URL download attempt."""
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.verifications: list[tuple[dict[str, str], int, str]] = []
        self.templates: list[Template] = []
        self.inbound: dict[str, InboundMessage] = {}

        self._media: dict[str, StoredMedia] = {}
        self._last_inbound: dict[str, float] = {}
        self._undeliverable: dict[str, str] = {}
        self._storm: list[tuple[int, int | None] | None] = []
        """Failures of the next message sends; ``None`` lets one pass."""
        self._failures: list[tuple[int, int | None]] = []
        self._throughput: deque[float] = deque()
        self._pairs: dict[str, tuple[float, float]] = {}
        self._url_key = secrets.token_bytes(16)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=self.limits.document_bytes + 8 * MiB)
        ep = self._endpoint
        app.router.add_post(f"/{VERSION}/{{node}}/messages", ep(self._messages))
        app.router.add_post(f"/{VERSION}/{{node}}/media", ep(self._upload))
        app.router.add_get(f"/{VERSION}/{{node}}/message_templates", ep(self._list_templates))
        app.router.add_get(f"/{VERSION}/{{node}}", ep(self._get_node))
        app.router.add_delete(f"/{VERSION}/{{node}}", ep(self._delete_node))
        app.router.add_get("/whatsapp_business/attachments/", self._download)
        app.router.add_route("*", "/{tail:.*}", ep(self._unknown_path))
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def __aenter__(self) -> WhatsAppSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- Meta's side: configuration ---------------------------------------------------------------

    def configure_webhook(
        self, url: str, *, app_secret: str | None = None, verify_token: str | None = None
    ) -> None:
        self.webhook_url = url
        if app_secret is not None:
            self.app_secret = app_secret
        if verify_token is not None:
            self.verify_token = verify_token

    def add_template(
        self,
        name: str,
        language: str,
        body_text: str,
        status: str = "APPROVED",
        category: str = "UTILITY",
        *,
        header_text: str | None = None,
        footer_text: str | None = None,
    ) -> Template:
        template = Template(name, language, body_text, status, category, header_text, footer_text)
        self.templates.append(template)
        return template

    def template(self, name: str, language: str) -> Template | None:
        return next((t for t in self.templates if t.name == name and t.language == language), None)

    def set_undeliverable(self, wa_id: str, mode: str = "sync") -> None:
        """Messages to ``wa_id`` fail with 131026: answered at once (``sync``), or accepted and
        then reported by a ``failed`` status webhook (``webhook``), as Meta does for most
        undeliverable numbers. ``mode=""`` makes the number reachable again."""
        if mode:
            self._undeliverable[wa_id] = mode
        else:
            self._undeliverable.pop(wa_id, None)

    def open_window(self, wa_id: str, at: float | None = None) -> None:
        """Pretend ``wa_id`` last wrote at ``at`` (default: now)."""
        self._last_inbound[wa_id] = self.clock.now() if at is None else at

    def close_window(self, wa_id: str) -> None:
        self._last_inbound.pop(wa_id, None)

    def window_open(self, wa_id: str) -> bool:
        last = self._last_inbound.get(wa_id)
        return last is not None and self.clock.now() - last < self.limits.service_window

    def storm(
        self, count: int, code: int = 130429, *, status: int | None = None, after: int = 0
    ) -> None:
        """The next ``count`` message sends (after ``after`` that pass) fail with ``code``
        (130429, 131056, 1, 2, 131000, ...), whatever the limits say. ``status`` overrides the
        HTTP status."""
        self._storm.extend([None] * after + [(code, status)] * count)

    def fail_next(self, count: int = 1, code: int = 1, *, status: int | None = None) -> None:
        """The next ``count`` Graph requests of any kind fail with ``code`` (default 1, "An
        unknown error occurred", HTTP 500; code 2 answers 503)."""
        self._failures.extend([(code, status)] * count)

    def add_media(
        self, data: bytes, mime_type: str, *, filename: str | None = None, origin: str = "inbound"
    ) -> StoredMedia:
        """Store a file on "Meta's" side (a customer's media) so ``GET /{media-id}`` serves it."""
        kind = kind_for_mime(mime_type) or "document"
        media = StoredMedia(
            wa.new_media_id(), data, mime_type, kind, self.phone_number_id, origin, filename,
            at=self.clock.now(),
        )  # fmt: skip
        self._media[media.id] = media
        return media

    def media(self, media_id: str) -> StoredMedia:
        return self._media[media_id]

    def sent_message(self, wamid: str) -> SentMessage:
        return next(s for s in self.sent if s.wamid == wamid)

    # -- the customer side: inbound webhooks ------------------------------------------------------

    def messages_payload(self, *messages: Json, names: Mapping[str, str] | None = None) -> Json:
        """The webhook for inbound ``messages`` to this business number."""
        return wa.messages_payload(
            messages,
            waba_id=self.waba_id,
            phone_number_id=self.phone_number_id,
            display_phone_number=self.display_phone_number,
            names=names,
        )

    def statuses_payload(self, *statuses: Json) -> Json:
        return wa.envelope(
            waba_id=self.waba_id,
            phone_number_id=self.phone_number_id,
            display_phone_number=self.display_phone_number,
            statuses=statuses,
        )

    def media_message(
        self,
        kind: str,
        from_: str,
        data: bytes,
        mime_type: str,
        *,
        filename: str | None = None,
        **kw: Any,
    ) -> Json:
        """Store ``data`` as a customer's media and build the inbound message that carries it
        (timestamp from the simulator clock unless given)."""
        media = self.add_media(data, mime_type, filename=filename)
        kw.setdefault("timestamp", self.clock.now())
        return wa.media_message(
            kind, from_, media.id, mime_type=mime_type, sha256=media.sha256_b64,
            filename=filename, **kw,
        )  # fmt: skip

    async def receive(
        self, *messages: Json, names: Mapping[str, str] | None = None, **send_kw: Any
    ) -> WebhookDelivery:
        """Deliver inbound ``messages`` (payloads builders) in one signed webhook."""
        return await self.send_webhook(self.messages_payload(*messages, names=names), **send_kw)

    def _register(self, payload: Mapping[str, Any]) -> None:
        """Inbound messages exist on Meta's side once sent, whatever the bridge answers: their
        ids can be marked read and the sender's 24-hour window restarts (at clock time)."""
        now = self.clock.now()
        for msg in wa.iter_messages(payload):
            wamid, sender = msg.get("id"), msg.get("from")
            if isinstance(wamid, str) and isinstance(sender, str):
                self.inbound[wamid] = InboundMessage(wamid, sender, str(msg.get("type")), now)
                self._last_inbound[sender] = max(now, self._last_inbound.get(sender, now))

    # -- webhooks ---------------------------------------------------------------------------------

    async def verify_webhook(
        self,
        *,
        mode: str = "subscribe",
        token: str | None = None,
        challenge: str | None = None,
        url: str | None = None,
    ) -> tuple[int, str]:
        """The verification request Meta makes when the callback URL is set:
        ``GET ?hub.mode=...&hub.challenge=...&hub.verify_token=...``; returns (status, body)."""
        assert self._http is not None
        target = url or self.webhook_url
        if target is None:
            raise RuntimeError("no webhook URL configured")
        params = {
            "hub.mode": mode,
            "hub.challenge": challenge or str(secrets.randbelow(10**9)),
            "hub.verify_token": self.verify_token if token is None else token,
        }
        async with self._http.get(target, params=params) as resp:
            result = (resp.status, await resp.text())
        self.verifications.append((params, *result))
        return result

    def _serialize(self, payload: Mapping[str, Any]) -> bytes:
        # Meta's bodies escape non-ASCII (``\\ud83d\\ude00``): the signature is over these bytes.
        return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode()

    async def send_webhook(
        self,
        payload: Mapping[str, Any],
        *,
        bad_signature: bool = False,
        no_signature: bool = False,
        duplicate: bool = False,
        max_attempts: int | None = None,
        url: str | None = None,
    ) -> WebhookDelivery:
        """POST ``payload`` to the webhook, signed with the app secret (or with a wrong one, or
        unsigned); repeat after non-2xx answers up to ``max_attempts`` in all; ``duplicate``
        posts it once more after that. Inbound messages in it are registered first."""
        target = url or self.webhook_url
        if target is None:
            raise RuntimeError("no webhook URL configured")
        self._register(payload)
        body = self._serialize(payload)
        secret = self.app_secret + ("-wrong" if bad_signature else "")
        sig = None if no_signature else wa.signature(body, secret)
        delivery = WebhookDelivery(dict(payload), body, sig, target)
        self.webhook_deliveries.append(delivery)
        attempts = max_attempts or self.webhook_max_attempts
        for n in range(attempts):
            if n:
                await asyncio.sleep(self.webhook_retry_delay)
            attempt = await self._post(target, body, sig)
            delivery.attempts.append(attempt)
            self._notify()
            if attempt.ok:
                break
        if duplicate:
            attempt = await self._post(target, body, sig)
            attempt.duplicate = True
            delivery.attempts.append(attempt)
            self._notify()
        return delivery

    async def _post(self, url: str, body: bytes, sig: str | None) -> WebhookAttempt:
        assert self._http is not None
        headers = {"Content-Type": "application/json", "User-Agent": "facebookexternalua"}
        if sig is not None:
            headers[SIGNATURE_HEADER] = sig
        timeout = aiohttp.ClientTimeout(total=self.webhook_timeout)
        try:
            async with self._http.post(url, data=body, headers=headers, timeout=timeout) as resp:
                return WebhookAttempt(resp.status, answer=await resp.text())
        except (aiohttp.ClientError, TimeoutError) as exc:
            return WebhookAttempt(None, error=f"{type(exc).__name__}: {exc}")

    async def deliver_shuffled(
        self,
        payloads: Iterable[Mapping[str, Any]],
        *,
        seed: int | None = None,
        concurrent: bool = False,
        **send_kw: Any,
    ) -> list[WebhookDelivery]:
        """Deliver ``payloads`` in a shuffled order (delivery is unordered), one after the other
        or all at once; returns the deliveries in the order they were made."""
        items = list(payloads)
        random.Random(seed).shuffle(items)
        if concurrent:
            return list(await asyncio.gather(*(self.send_webhook(p, **send_kw) for p in items)))
        return [await self.send_webhook(p, **send_kw) for p in items]

    async def emit_statuses(
        self,
        wamid: str,
        statuses: Sequence[str] = ("sent", "delivered", "read"),
        *,
        errors: Sequence[Json] | None = None,
        **send_kw: Any,
    ) -> list[WebhookDelivery]:
        """One status webhook per status for a message the bot sent: conversation and pricing
        on sent/delivered/read, ``errors`` (default 131026) on failed."""
        sent = self.sent_message(wamid)
        category = sent.template.category.lower() if sent.template else "service"
        conversation_id = secrets.token_hex(16)
        deliveries = []
        for status in statuses:
            now = self.clock.now()
            if status == "failed":
                entry = wa.status_update(
                    wamid, status, sent.wa_id, timestamp=now,
                    errors=errors or [wa.webhook_error(131026)],
                )  # fmt: skip
            else:
                expires = now + self.limits.service_window if status == "sent" else None
                conv = wa.conversation(
                    conversation_id, origin=category, expiration_timestamp=expires
                )
                entry = wa.status_update(
                    wamid, status, sent.wa_id, timestamp=now, conversation=conv,
                    pricing=wa.pricing(category),
                )  # fmt: skip
            deliveries.append(await self.send_webhook(self.statuses_payload(entry), **send_kw))
        return deliveries

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- waiting ----------------------------------------------------------------------------------

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> T:
        """Wait until ``predicate()`` returns something truthy (re-checked on every change) and
        return it; TimeoutError after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"simulator: condition not met within {timeout} s")
            event = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await event.wait()

    @staticmethod
    def _first(records: list[T], predicate: Callable[[T], bool] | None) -> T | None:
        return next((r for r in records if predicate is None or predicate(r)), None)

    async def wait_for_sent(
        self,
        predicate: Callable[[SentMessage], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> SentMessage:
        return await self.wait_for(lambda: self._first(self.sent, predicate), timeout)

    async def wait_for_read_receipt(
        self,
        predicate: Callable[[ReadReceipt], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> ReadReceipt:
        return await self.wait_for(lambda: self._first(self.read_receipts, predicate), timeout)

    async def wait_for_upload(
        self,
        predicate: Callable[[StoredMedia], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> StoredMedia:
        return await self.wait_for(lambda: self._first(self.uploads, predicate), timeout)

    async def wait_for_rejection(
        self,
        predicate: Callable[[Rejection], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Rejection:
        return await self.wait_for(lambda: self._first(self.rejected, predicate), timeout)

    async def wait_for_webhook_delivery(
        self,
        predicate: Callable[[WebhookDelivery], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> WebhookDelivery:
        return await self.wait_for(
            lambda: self._first(self.webhook_deliveries, predicate), timeout
        )

    # -- HTTP plumbing ----------------------------------------------------------------------------

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

    # -- POST /{phone-number-id}/messages ---------------------------------------------------------

    async def _messages(self, request: web.Request) -> Json:
        self._check_phone(request)
        body = await self._json(request)
        if body.get("messaging_product") != PRODUCT:
            raise _param("The parameter messaging_product is required and must be whatsapp.")
        if "status" in body:
            return self._mark_read(body)
        failure = self._storm.pop(0) if self._storm else None
        if failure is not None:
            code, status = failure
            raise ApiError(code, status=status)
        type_, wa_id, content = wa.check_message(
            body, text_length=self.limits.text_length, caption_length=self.limits.caption_length
        )
        media, template, rendered = None, None, None
        if type_ in SUPPORTED_MIME and "id" in content:
            media = self._media.get(str(content["id"]))
            if media is None or media.deleted:
                raise ApiError(131009, details=f"Param {type_}['id'] is not a valid media id.")
        elif type_ == "template":
            template, rendered = self._check_template(content)
        self._check_throughput()
        if self._undeliverable.get(wa_id) == "sync":
            raise ApiError(131026)
        if type_ != "template" and not self.window_open(wa_id):
            raise ApiError(131047)
        self._check_pair(wa_id)

        sent = SentMessage(
            wa.new_wamid(wa_id), self.phone_number_id, str(body["to"]), wa_id, type_, body,
            self.clock.now(), media, template, rendered,
        )  # fmt: skip
        self.sent.append(sent)
        self._notify()
        if self._undeliverable.get(wa_id) == "webhook" and self.webhook_url:
            self._spawn(self.emit_statuses(sent.wamid, ["failed"]))
        elif self.auto_statuses and self.webhook_url:
            statuses = ["sent"] if type_ == "reaction" else list(self.auto_statuses)
            self._spawn(self.emit_statuses(sent.wamid, statuses))
        message: Json = {"id": sent.wamid}
        if type_ == "template":
            message["message_status"] = "accepted"
        return {
            "messaging_product": PRODUCT,
            "contacts": [{"input": sent.to, "wa_id": wa_id}],
            "messages": [message],
        }

    def _mark_read(self, body: Json) -> Json:
        if body.get("status") != "read":
            raise _param("Param status must be read.")
        message_id = body.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise _param("The parameter message_id is required.")
        if message_id not in self.inbound:
            raise _param(f"Invalid message_id: {message_id}")
        typing = isinstance(body.get("typing_indicator"), dict)
        self.read_receipts.append(ReadReceipt(message_id, typing, body, self.clock.now()))
        self._notify()
        return {"success": True}

    def _check_template(self, content: Json) -> tuple[Template, str]:
        name, code = content["name"], content["language"]["code"]
        template = self.template(name, code)
        if template is None or template.status in UNAVAILABLE_TEMPLATE:
            raise ApiError(132001, details=f"template name ({name}) does not exist in {code}")
        if template.status == "PAUSED":
            raise ApiError(132015)
        if template.status == "DISABLED":
            raise ApiError(132016)
        return template, wa.check_template_params(template, content)

    def _check_throughput(self) -> None:
        if not self.rate_limits.enabled:
            return
        now = self.clock.now()
        while self._throughput and now - self._throughput[0] >= 1.0:
            self._throughput.popleft()
        if len(self._throughput) >= self.rate_limits.messages_per_second:
            raise ApiError(130429)
        self._throughput.append(now)

    def _check_pair(self, wa_id: str) -> None:
        if not self.rate_limits.enabled:
            return
        limits, now = self.rate_limits, self.clock.now()
        tokens, last = self._pairs.get(wa_id, (float(limits.pair_burst), now))
        tokens = min(float(limits.pair_burst), tokens + (now - last) / limits.pair_interval)
        if tokens < 1.0:
            self._pairs[wa_id] = (tokens, now)
            raise ApiError(131056)
        self._pairs[wa_id] = (tokens - 1.0, now)

    # -- media ------------------------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> Json:
        self._check_phone(request)
        if not request.content_type.startswith("multipart/"):
            raise _param("The request must be multipart/form-data.")
        form = await request.post()
        if form.get("messaging_product") != PRODUCT:
            raise _param("The parameter messaging_product is required and must be whatsapp.")
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            raise _param("The parameter file is required.")
        with upload.file:
            data = upload.file.read()
        mime = form.get("type")
        if not isinstance(mime, str) or not mime:
            raise _param("The parameter type is required.")
        kind = kind_for_mime(mime)
        if kind is None:
            allowed = ", ".join(sorted(set().union(*SUPPORTED_MIME.values())))
            raise ApiError(
                131053,
                details=f"Param file must be a file with one of the following types: {allowed}. "
                f"Received file of type '{base_mime(mime)}'.",
            )
        limit = self.limits.media_bytes(kind, data)
        if not data or len(data) > limit:
            raise ApiError(
                131053,
                details=f"{kind} file size {len(data)} bytes is outside the allowed range "
                f"(1 to {limit} bytes) for {base_mime(mime)}.",
            )
        media = StoredMedia(
            wa.new_media_id(), data, mime, kind, self.phone_number_id, "upload",
            upload.filename or None, at=self.clock.now(),
        )  # fmt: skip
        self._media[media.id] = media
        self.uploads.append(media)
        self._notify()
        return {"id": media.id}

    def _url_hash(self, media_id: str, ext: int) -> str:
        digest = hmac.new(self._url_key, f"{media_id}:{ext}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    async def _get_node(self, request: web.Request) -> Json:
        node = request.match_info["node"]
        if node == self.phone_number_id:
            return {
                "verified_name": self.verified_name,
                "code_verification_status": "VERIFIED",
                "display_phone_number": self.display_phone_number,
                "quality_rating": "GREEN",
                "platform_type": "CLOUD_API",
                "throughput": {"level": "STANDARD"},
                "id": self.phone_number_id,
            }
        media = self._media.get(node)
        if media is None or media.deleted:
            raise _no_object(node, "get")
        owner = request.query.get("phone_number_id")
        if owner is not None and owner != media.phone_number_id:
            raise _param("Param phone_number_id does not match the media's phone number.")
        ext = int(self.clock.now() + self.limits.media_url_ttl)
        query = urlencode({"mid": media.id, "ext": ext, "hash": self._url_hash(media.id, ext)})
        media.url_requests += 1
        self._notify()
        return {
            "messaging_product": PRODUCT,
            "url": f"{self.base_url}/whatsapp_business/attachments/?{query}",
            "mime_type": media.mime_type,
            "sha256": media.sha256_hex,
            "file_size": len(media.data),
            "id": media.id,
        }

    async def _delete_node(self, request: web.Request) -> Json:
        node = request.match_info["node"]
        media = self._media.get(node)
        if media is None or media.deleted:
            raise _no_object(node, "delete")
        owner = request.query.get("phone_number_id")
        if owner is not None and owner != media.phone_number_id:
            raise _param("Param phone_number_id does not match the media's phone number.")
        media.deleted = True
        self._notify()
        return {"success": True}

    async def _download(self, request: web.Request) -> web.Response:
        """The media URL: bytes only with the bearer token and only until ``ext``; otherwise 401
        (no/wrong token) or 404 (expired, unknown or tampered URL, deleted media)."""
        media_id = request.query.get("mid", "")
        try:
            self._authorize(request)
        except ApiError as exc:
            self.downloads.append((media_id, exc.status))
            self._notify()
            return web.json_response(exc.body, status=exc.status)
        media = self._media.get(media_id)
        try:
            ext = int(request.query.get("ext", ""))
        except ValueError:
            ext = 0
        valid = hmac.compare_digest(request.query.get("hash", ""), self._url_hash(media_id, ext))
        if media is None or media.deleted or not valid or self.clock.now() > ext:
            self.downloads.append((media_id, 404))
            self._notify()
            return web.Response(status=404, text="Not Found")
        self.downloads.append((media_id, 200))
        self._notify()
        return web.Response(body=media.data, headers={"Content-Type": media.mime_type})

    # -- GET /{waba-id}/message_templates ---------------------------------------------------------

    async def _list_templates(self, request: web.Request) -> Json:
        node = request.match_info["node"]
        if node != self.waba_id:
            raise _no_object(node, "get")
        return wa.templates_page(self.templates, request.query, f"{self.base_url}{request.path}")
