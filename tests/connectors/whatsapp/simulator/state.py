"""The simulator's state: its configuration, what it recorded, Meta's side that tests set up
(templates, windows, undeliverable numbers, media) and waiting for the bot to act."""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from tests.connectors.sim_base import SimulatorBase

from .. import payloads as wa
from ..payloads import Template, kind_for_mime
from .config import Limits, RateLimits
from .records import (
    InboundMessage,
    ReadReceipt,
    Rejection,
    SentMessage,
    StoredMedia,
    WebhookDelivery,
)

T = TypeVar("T")


class SimulatorState(SimulatorBase[SentMessage, WebhookDelivery]):
    """The simulator's configuration, records and Meta-side state, shared by every part; the
    endpoints come from the classes ``server.WhatsAppSimulator`` combines."""

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
        super().__init__()
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

    # -- waiting ----------------------------------------------------------------------------------

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
