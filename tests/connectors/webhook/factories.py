"""Matrix-side events for the webhook tests."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from bridge.events import MatrixMedia, MatrixMessage, MessageRef
from bridge.types import AccountID, MessageID, PortalKey, RemoteChatID
from tests.infra.ports import free_port

PORTAL = PortalKey(AccountID("support-webhook"), RemoteChatID("chat-1"))
STAFF = "@alice:example.com"
_ids = itertools.count(1)


def event_id() -> str:
    return f"$ev{next(_ids)}:example.com"


def message(text: str = "Alice: hello", **fields: Any) -> MatrixMessage:
    fields.setdefault("portal", PORTAL)
    fields.setdefault("event_id", event_id())
    fields.setdefault("msgtype", "m.text")
    return MatrixMessage(sender=STAFF, sender_name="Alice", text=text, **fields)


def changed(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of the payload ``base`` with ``changes``; a change to ``...`` drops the key."""
    data = copy.deepcopy(base)
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def ref(message_id: str) -> MessageRef:
    return MessageRef(MessageID(message_id))


def media(
    data: bytes, *, size: int | None = -1, name: str = "file.bin"
) -> tuple[MatrixMedia, list[int]]:
    """A media item whose downloads are counted in the returned list."""
    calls: list[int] = []

    async def download() -> bytes:
        calls.append(1)
        return data

    declared = len(data) if size == -1 else size
    return MatrixMedia(
        "mxc://example.com/m", name, "application/octet-stream", declared, download
    ), calls


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/inbox"
