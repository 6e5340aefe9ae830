"""The VK side of the simulator: the community's conversations, who lets it write, the
``random_id`` memory, the request rate, forced failures and the error answers."""

from __future__ import annotations

from collections import deque
from typing import Any

from tests.connectors.sim_base import SimulatorBase

from .records import (
    CallbackDelivery,
    CustomerMessage,
    Rejection,
    SentMessage,
    StoredFile,
)

CHAT_OFFSET = 2_000_000_000
RATE = 20
"""Calls a second a community token may make (error 6 beyond)."""
TEXT_LIMIT = 4096
DEDUP_SECONDS = 3600.0
DEDUP_MESSAGES = 100
"""VK checks ``random_id`` against the sender's messages of the last hour, at most the last
100 of them."""
MESSAGES = {
    1: "Unknown error occurred",
    5: "User authorization failed: invalid access_token (4).",
    6: "Too many requests per second",
    8: "Invalid request: v is required",
    9: "Flood control",
    10: "Internal server error",
    100: "One of the parameters specified was missing or invalid",
    900: "Can't send messages for user from blacklist",
    901: "Can't send messages for users without permission",
    909: "Can't edit this message, because it's too old",
    911: "Keyboard format is invalid",
    914: "Message is too long",
    924: "Can't delete this message for everybody",
}


class ApiError(Exception):
    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.message = MESSAGES.get(code, "Error") + (f": {detail}" if detail else "")

    def answer(self, method: str, params: dict[str, str]) -> dict[str, Any]:
        shown = [{"key": "method", "value": method}, {"key": "oauth", "value": "1"}]
        shown += [{"key": k, "value": v} for k, v in params.items() if k != "access_token"]
        return {
            "error": {"error_code": self.code, "error_msg": self.message, "request_params": shown}
        }


class State(SimulatorBase[SentMessage, CallbackDelivery]):
    def __init__(self, access_token: str, group_id: int) -> None:
        super().__init__()
        self.access_token = access_token
        self.group_id = group_id
        self.names: dict[int, tuple[str, str]] = {}
        self.allowed: set[int] = set()
        """Users the community may write to (they wrote, or allowed its messages)."""
        self.blacklisted: set[int] = set()
        self.cmids: dict[int, int] = {}
        self.sent: list[SentMessage] = []
        self.customer_messages: list[CustomerMessage] = []
        self.rejected: list[Rejection] = []
        self.webhook_deliveries: list[CallbackDelivery] = []
        self.files: dict[str, StoredFile] = {}
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.event_answers: list[dict[str, str]] = []
        """``messages.sendMessageEventAnswer`` calls: the presses the community answered."""
        self.actions: list[tuple[str, SentMessage, str]] = []
        """``send``, ``edit`` and ``delete`` of the community's messages, in order."""
        self._recent: deque[float] = deque()
        self._storm: list[int] = []
        self.rate = RATE
        self.text_limit = TEXT_LIMIT

    # -- bending -----------------------------------------------------------------------------

    def storm(self, count: int, code: int = 6) -> None:
        """The next ``count`` API calls fail with error ``code``."""
        self._storm += [code] * count

    def allow(self, user_id: int, allowed: bool = True) -> None:
        (self.allowed.add if allowed else self.allowed.discard)(user_id)

    # -- bookkeeping -------------------------------------------------------------------------

    def next_cmid(self, peer_id: int) -> int:
        self.cmids[peer_id] = self.cmids.get(peer_id, 0) + 1
        return self.cmids[peer_id]

    def check_call(self, method: str, params: dict[str, str]) -> None:
        """Auth, version, forced failures and the rate, in the order VK checks them."""
        self.calls.append((method, params))
        if params.get("access_token") != self.access_token:
            raise self.reject(method, 5)
        if not params.get("v"):
            raise self.reject(method, 8)
        if self._storm:
            raise self.reject(method, self._storm.pop(0))
        now = self.clock.now()
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        if len(self._recent) >= self.rate:
            raise self.reject(method, 6)
        self._recent.append(now)

    def reject(self, method: str, code: int, peer_id: int | None = None) -> ApiError:
        self.rejected.append(Rejection(method, code, peer_id))
        self._notify()
        return ApiError(code)

    def earlier_send(self, peer_id: int, random_id: int) -> SentMessage | None:
        """The message this ``random_id`` already sent to ``peer_id`` (VK's dedup window)."""
        if random_id == 0:
            return None
        now = self.clock.now()
        mine = [m for m in self.sent if m.peer_id == peer_id][-DEDUP_MESSAGES:]
        for message in mine:
            if message.random_id == random_id and message.at > now - DEDUP_SECONDS:
                return message
        return None

    def find_sent(self, peer_id: int, cmid: int) -> SentMessage | None:
        return next((m for m in self.sent if m.peer_id == peer_id and m.cmid == cmid), None)

    def may_write(self, peer_id: int) -> int | None:
        """The error code that keeps the community from writing to ``peer_id``, if any."""
        if peer_id > CHAT_OFFSET:
            return None
        if peer_id in self.blacklisted:
            return 900
        return None if peer_id in self.allowed else 901
