"""What the MAX simulator records for tests to inspect, and its limits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import unescape
from typing import Any

Json = dict[str, Any]
MiB = 1024 * 1024
TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class Limits:
    """The documented limits the simulator enforces."""

    text: int = 4000
    """Characters of ``text``."""
    per_chat: int = 2
    """Messages a bot may send to one chat within ``window`` seconds."""
    global_rate: int = 30
    """Requests a bot may make within ``window`` seconds."""
    window: float = 1.0
    chat_window: float = 0.95
    """The per-chat window: a second, less a little for the jitter of the network ("about" 2
    a second)."""
    delete_age: float = 24 * 3600.0
    """Only messages younger than this can be deleted by the bot."""
    buttons: int = 210
    rows: int = 30
    per_row: int = 7
    button_text: int = 128
    payload: int = 1024
    poll_timeout: int = 90


@dataclass
class Upload:
    """A file the bot uploaded through a one-time URL."""

    token: str
    kind: str
    data: bytes = b""
    filename: str | None = None
    content_type: str | None = None
    done: bool = False


@dataclass
class SentMessage:
    """A message the API accepted from the bot: the request as parsed and the mid answered."""

    mid: str
    chat_id: int
    text: str | None
    format: str | None
    attachments: list[Json]
    reply_to: str | None
    at: float
    uploads: list[Upload] = field(default_factory=list)

    @property
    def plain(self) -> str | None:
        """The text as the customer reads it (HTML tags removed)."""
        if self.text is None:
            return None
        return unescape(TAG.sub("", self.text)) if self.format == "html" else self.text

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(payload, text) of each callback button, row by row."""
        found: list[tuple[str, str]] = []
        for attachment in self.attachments:
            if attachment.get("type") == "inline_keyboard":
                for row in attachment["payload"]["buttons"]:
                    found += [(b.get("payload", ""), b["text"]) for b in row]
        return found


@dataclass
class EditRecord:
    mid: str
    chat_id: int
    text: str | None
    format: str | None
    at: float

    @property
    def plain(self) -> str | None:
        if self.text is None:
            return None
        return unescape(TAG.sub("", self.text)) if self.format == "html" else self.text


@dataclass
class DeletionRecord:
    mid: str
    chat_id: int
    at: float


@dataclass
class StoredMessage:
    """A message in a chat: the customer's or the bot's."""

    mid: str
    chat_id: int
    sender_id: int
    at: float
    from_bot: bool
    body: Json = field(default_factory=dict)
    deleted: bool = False


@dataclass
class ApiError:
    """A request the simulator refused."""

    method: str
    path: str
    status: int
    code: str
    message: str
    at: float


@dataclass
class WebhookDelivery:
    update: Json
    status: int
    answer: str
    secret_sent: str | None


@dataclass
class Failure:
    """A refusal queued by a test: the next request that writes is answered with it."""

    status: int
    code: str
    message: str
    retry_after: int | None = None
