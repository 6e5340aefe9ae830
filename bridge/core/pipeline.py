"""The conversation pipeline: every queue item of a conversation, whatever its direction,
runs in that conversation's one ordering domain (its queue key), one at a time.

* remote events (``kind='remote'``) are bridged into the portal room, then the inbound hooks
  are called;
* Matrix events (``kind='matrix'``) are routed: staff events of a portal room go out through
  its channel account, past the outbound gates; commands, invitations and the rest;
* bridge-initiated messages (``kind='outbound'``) go out through the outbound gates;
* catch-ups (``kind='catchup'``) read the room back for events the homeserver never pushed
  and queue them in their place (``catchup.py``).

A Matrix event is recorded under its conversation's key when its room is a portal (else under
its room's ``mx:`` key), so a staff reply and the customer's next message never run at once
and never overtake each other."""

from __future__ import annotations

from typing import Any

from ..db import Portal, QueueItem
from ..events import RemoteEvent, RemoteMessage
from ..metrics.registry import BridgeMetrics
from ..seams import Seams
from ..types import AccountID
from .appservice import matrix_queue_key
from .catchup import KIND as CATCH_UP
from .catchup import CatchUp
from .dispatcher import Dispatcher, GiveUp
from .outbound import OutboundHandler
from .remote import RemoteHandler
from .routing import MatrixRouter
from .util import conversation_key


class Pipeline:
    def __init__(
        self,
        dispatcher: Dispatcher,
        router: MatrixRouter,
        remote: RemoteHandler,
        outbound: OutboundHandler,
        seams: Seams,
        metrics: BridgeMetrics | None = None,
        *,
        catchup: CatchUp | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.router = router
        self.remote = remote
        self.outbound = outbound
        self.seams = seams
        self.metrics = metrics or BridgeMetrics()
        self.catchup = catchup

    async def process(self, item: QueueItem) -> None:
        if item.kind == "remote":
            try:
                event = RemoteEvent.from_json(item.payload["event"])
            except (KeyError, TypeError, ValueError) as e:
                raise GiveUp(f"unreadable remote event: {e}") from e
            account = item.payload["account"]
            inbound = await self.remote.handle(account, event)
            if inbound is not None:
                await self.seams.inbound(inbound)
                if isinstance(event, RemoteMessage) and inbound.conversation.room_id:
                    # Counted once the hooks are through too: a retried item counts once.
                    self.metrics.bridged(account, "in", item.created_at)
        elif item.kind == "matrix":
            await self.router.route(item)
        elif item.kind == "outbound":
            await self.outbound.handle(item)
        elif item.kind == CATCH_UP and self.catchup is not None:
            await self.catchup.handle(item)
        else:
            raise GiveUp(f"unknown queue item kind {item.kind!r}")

    async def record_remote(self, account: AccountID, event: RemoteEvent) -> bool:
        item = await QueueItem.record_remote(
            account,
            # Remote ids are unique per chat only (Telegram numbers messages per chat).
            f"{event.chat.id}/{event.dedup_key()}",
            conversation_key(account, event.chat.id),
            {"account": account, "event": event.to_json()},
        )
        if item is None:
            return False
        self.dispatcher.submit(item)
        return True

    @staticmethod
    async def matrix_key(event: dict[str, Any]) -> str:
        """The queue key of a Matrix event: its conversation's, when its room is a portal."""
        room_id = event.get("room_id")
        portal = await Portal.get_by_room(room_id) if isinstance(room_id, str) else None
        if portal is not None:
            return conversation_key(portal.account, portal.chat)
        return matrix_queue_key(event)
