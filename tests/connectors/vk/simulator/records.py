"""What the VK simulator records for tests to inspect."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class StoredFile:
    """A file the simulator hosts: an upload of the community or a customer's attachment."""

    key: str
    data: bytes
    filename: str
    mimetype: str


@dataclass
class SentMessage:
    """A message of the community, as ``messages.send`` accepted it."""

    peer_id: int
    cmid: int
    text: str
    random_id: int
    at: float
    attachments: list[str] = field(default_factory=list)
    files: list[StoredFile] = field(default_factory=list)
    reply_to: int | None = None
    """The ``conversation_message_id`` it replies to."""
    edits: list[str] = field(default_factory=list)
    deleted: bool = False
    repeats: int = 0
    """Sends with the same ``random_id`` that VK dropped."""
    buttons: list[tuple[str, str]] = field(default_factory=list)
    """The inline keyboard's callback buttons: (label, payload)."""


@dataclass
class CustomerMessage:
    peer_id: int
    from_id: int
    cmid: int
    text: str
    at: float


@dataclass
class Rejection:
    method: str
    code: int
    peer_id: int | None = None


@dataclass
class CallbackAttempt:
    status: int | None
    answer: str
    error: str | None = None


@dataclass
class CallbackDelivery:
    event: dict[str, Any]
    attempts: list[CallbackAttempt] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        last = self.attempts[-1] if self.attempts else None
        return last is not None and last.status == 200 and last.answer == "ok"
