"""Messages the bridge starts: templates staff send, texts features send (a welcome). Each
becomes a durable ``outbound`` queue item of its conversation (``core/outbound.py`` delivers
it), so it is ordered after what was queued before it and goes out exactly once."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...connector import (
    Capabilities,
    DeliveryError,
    NetworkConnector,
    Template,
    TemplateHandler,
)
from ...db import QueueItem
from ...events import Button
from ...seams import ConversationRef
from ..util import conversation_key
from .common import ServiceBase
from .errors import ServiceError


@dataclass(frozen=True)
class Origin:
    """Where a staff member asked for a message (a command): answered there."""

    room_id: str
    event_id: str
    sender: str
    visible: bool = True
    """Whether the sender may see the conversation (its room is named in the answer)."""


class MessageServices(ServiceBase):
    async def templates(self, actor: str, account: str) -> tuple[NetworkConnector, list[Template]]:
        self.check(actor, account)
        connector = self.connectors[account]
        if not isinstance(connector, TemplateHandler):
            raise ServiceError(f"{connector.title} has no templates.")
        try:
            return connector, await connector.list_templates()
        except DeliveryError as e:
            raise ServiceError(f"Could not fetch the templates: {e.reason}") from e

    async def send_template(
        self,
        conversation: ConversationRef,
        template: Template,
        params: list[str],
        origin: Origin,
    ) -> bool:
        """Queue ``template`` to the conversation; asked for by ``origin`` (once: the same
        command run again queues nothing and returns False). Without a room of ``origin``
        (the provisioning API), a failure is shown in the conversation's room."""
        self.check(origin.sender, conversation.account)
        payload: dict[str, Any] = {
            "text": template.render(params),
            "template": {
                "name": template.name, "language": template.language, "text": template.text,
                "parameters": template.parameters, "category": template.category,
                "params": params,
            },
            "by": origin.sender,
            "reason": "template",
        }  # fmt: skip
        if origin.room_id:
            payload["origin"] = {
                "room_id": origin.room_id, "event_id": origin.event_id, "visible": origin.visible,
            }  # fmt: skip
        return await self._enqueue(conversation, payload, f"template:{origin.event_id}")

    async def send_text(
        self,
        conversation: ConversationRef,
        text: str,
        *,
        reason: str,
        dedup: str | None = None,
        html: str | None = None,
        buttons: Sequence[Button] = (),
    ) -> bool:
        payload: dict[str, Any] = {"text": text, "html": html, "by": reason, "reason": reason}
        if buttons:
            payload["buttons"] = [{"id": b.id, "title": b.title} for b in buttons]
        return await self._enqueue(conversation, payload, dedup)

    def capabilities(self, account: str) -> Capabilities | None:
        connector = self.connectors.get(account)
        return connector.capabilities if connector is not None else None

    async def _enqueue(
        self, conversation: ConversationRef, payload: dict[str, Any], dedup: str | None
    ) -> bool:
        # A name of its own for good (the queue id of a deleted row is given again on SQLite).
        key = secrets.token_hex(16)
        payload = {
            "account": conversation.account,
            "chat": conversation.chat,
            "key": key,
            **payload,
        }
        queue = conversation_key(conversation.account, conversation.chat)
        if dedup is None:
            item: QueueItem | None = await QueueItem.enqueue(queue, "outbound", payload)
        else:
            item = await QueueItem.record_remote(
                conversation.account, f"outbound:{dedup}", queue, payload, kind="outbound"
            )
        if item is None:
            return False
        self.dispatcher.submit(item)
        return True
