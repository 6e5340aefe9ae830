"""What the simulator records for tests to inspect, its error type and its inner state rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..updates import Json


@dataclass
class UploadedFile:
    field: str
    filename: str
    content_type: str | None
    data: bytes


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    kind: str
    file_name: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    size: int | None = None

    @property
    def file_size(self) -> int:
        return len(self.data) if self.size is None else self.size

    def ref(self) -> Json:
        """The fields every media object carries, for the builders in ``updates``."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
        }


@dataclass
class SentMessage:
    method: str
    chat_id: int
    message_id: int
    text: str | None
    """``text`` or ``caption`` exactly as the bot sent it (markup included)."""
    parse_mode: str | None
    rendered: str | None
    """The text after parsing, as Telegram stores and shows it."""
    entities: list[Json]
    params: Json
    message: Json
    reply_to: int | None = None
    business_connection_id: str | None = None
    file: UploadedFile | None = None
    file_id: str | None = None

    @property
    def data(self) -> bytes | None:
        return self.file.data if self.file else None

    @property
    def filename(self) -> str | None:
        return self.file.filename if self.file else None

    @property
    def mime_type(self) -> str | None:
        for key in ("document", "audio", "voice", "video", "animation"):
            if key in self.message:
                return self.message[key].get("mime_type")
        return None


@dataclass
class EditRecord:
    method: str
    chat_id: int
    message_id: int
    text: str | None
    parse_mode: str | None
    rendered: str | None
    entities: list[Json]
    params: Json
    message: Json
    business_connection_id: str | None = None


@dataclass
class DeletionRecord:
    chat_id: int
    message_id: int
    params: Json


@dataclass
class ReactionRecord:
    chat_id: int
    message_id: int
    reaction: list[Json]
    params: Json

    @property
    def emojis(self) -> list[str]:
        return [r["emoji"] for r in self.reaction if r.get("type") == "emoji"]


@dataclass
class ActionRecord:
    chat_id: int
    action: str
    params: Json
    business_connection_id: str | None = None


@dataclass
class ThrottleRecord:
    method: str
    chat_id: int | None
    retry_after: int
    scope: str
    """"chat", "group", "global" or "storm"."""


@dataclass
class WebhookDelivery:
    update_id: int
    url: str
    status: int | None
    """HTTP status of the receiver's answer; None when the connection failed."""
    secret: str | None
    """The secret header value sent, or None when none was sent."""
    attempt: int
    error: str | None = None
    manual: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status <= 299


@dataclass
class ApiCall:
    method: str
    params: Json
    status: int
    description: str | None
    via: str = "http"


@dataclass
class StoredMessage:
    message: Json
    outgoing: bool
    business_connection_id: str = ""
    deleted: bool = False
    reaction: list[Json] = field(default_factory=list)

    @property
    def date(self) -> int:
        return int(self.message["date"])


class ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: Json | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> Json:
        body: Json = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def retry_after_error(seconds: int) -> ApiError:
    return ApiError(429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds})


@dataclass
class _Described:
    result: Any
    description: str


@dataclass
class _Pending:
    update: Json
    duplicates: int = 0
    failures: int = 0
    deliveries: int = 0

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])


@dataclass
class _Webhook:
    url: str
    secret: str
    max_connections: int


@dataclass
class _ChatState:
    chat: Json
    blocked: bool = False
    bot_is_admin: bool = True
    photo: tuple[StoredFile, StoredFile] | None = None

    @property
    def id(self) -> int:
        return int(self.chat["id"])

    @property
    def type(self) -> str:
        return str(self.chat["type"])


@dataclass
class _UserState:
    user: Json
    photos: list[StoredFile] = field(default_factory=list)
