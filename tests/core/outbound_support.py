"""Stand-ins the tests of bridge-initiated messages share: a connector that keeps what it was
given and a notice poster that keeps what was posted."""

from __future__ import annotations

from typing import Any

from bridge.connector import Capabilities, PermanentDeliveryError
from bridge.events import MatrixMessage, SentMessage
from bridge.types import MessageID


class RecordingConnector:
    channel = "test"
    title = "Test channel"

    def __init__(self, capabilities: Capabilities | None = None) -> None:
        self.capabilities = capabilities or Capabilities(html=False)
        self.sent: list[MatrixMessage] = []
        self.refuse = False

    async def send_message(self, msg: MatrixMessage) -> SentMessage:
        if self.refuse:
            raise PermanentDeliveryError("the window is closed")
        self.sent.append(msg)
        return SentMessage(MessageID(f"r{len(self.sent)}"), 1_700_000_000.0)


class RecordingNotices:
    """Keeps what was posted, once per transaction id (as the homeserver does)."""

    def __init__(self) -> None:
        self.posted: dict[str, str] = {}
        self.failures: list[str] = []

    async def send(self, room_id: str, text: str, *, txn: str | None = None, **_: Any) -> str:
        self.posted.setdefault(txn or str(len(self.posted)), text)
        return f"$notice-{txn}"

    async def failure(self, room_id: str, event_id: Any, reason: str, **_: Any) -> None:
        self.failures.append(reason)
