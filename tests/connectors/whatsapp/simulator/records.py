"""What the simulator records for tests to inspect."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .. import payloads as wa
from ..payloads import Json, Template


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
        if self.type == "interactive":  # the body shown above the buttons or list
            body = self.content.get("body")
            return body.get("text") if isinstance(body, dict) else None
        return self.content.get("caption")

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """An interactive message's reply buttons as (id, title), as the customer sees them."""
        action = self.content.get("action") if self.type == "interactive" else None
        buttons = action.get("buttons") if isinstance(action, dict) else None
        return [(b["reply"]["id"], b["reply"]["title"]) for b in buttons or []]


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
