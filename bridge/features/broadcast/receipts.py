"""Receipts of broadcast messages: an inbound hook that moves a recipient on to
``delivered``, ``read`` or ``failed`` (with the reason) when a receipt names its message
(found by account and remote message id; receipts of chats without a room reach the hooks
too). A receipt only moves a recipient forward: a late delivery receipt does not undo a read."""

from __future__ import annotations

import time

from ...db.broadcast import Recipient
from ...events import RemoteDeliveryFailure, RemoteDeliveryReceipt, RemoteReadReceipt
from ...seams import Inbound


class ReceiptHook:
    async def on_inbound(self, inbound: Inbound) -> None:
        event = inbound.event
        reason = None
        if isinstance(event, RemoteDeliveryReceipt):
            status = "delivered"
        elif isinstance(event, RemoteReadReceipt):
            status = "read"
        elif isinstance(event, RemoteDeliveryFailure):
            status, reason = "failed", event.reason or "not delivered"
        else:
            return
        if event.message_id:
            now = int(time.time() * 1000)
            account = inbound.conversation.account
            await Recipient.receipt(account, event.message_id, status, reason, now)
