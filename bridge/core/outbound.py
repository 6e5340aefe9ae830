"""Delivers the messages the bridge starts (``outbound`` queue items): a template a staff
member sent with a command, an automatic reply a feature queued.

Exactly once across a crash: the item remembers in its payload that the connector took the
message (``sent``) before anything else happens, so a run after a crash shows it in the room
and answers the command without sending it again; every Matrix event it causes has a
deterministic transaction id. Deadline, retries and failure notices are those of staff
messages (``delivery.py``); the outbound gates see it first. Reply buttons go only to a
channel whose capabilities take them; otherwise the message is refused with a notice."""

from __future__ import annotations

import logging
import time
from typing import Any

from ..config import Config
from ..connector import (
    NetworkConnector,
    SentMessage,
    Template,
    TemplateHandler,
    button_problem,
)
from ..db import Message, Portal, QueueItem
from ..events import Button, MatrixMessage
from ..metrics.registry import BridgeMetrics
from ..seams import ConversationRef, Internal, Origin, Outgoing, Refuse, Seams
from ..types import AccountID, MessageID, PortalKey, RemoteChatID
from .delivery import deliver, record
from .dispatcher import GiveUp
from .notices import Notices
from .sender import MatrixSender
from .util import txn_id

log = logging.getLogger("bridge.outbound")


class OutboundHandler:
    def __init__(
        self,
        config: Config,
        sender: MatrixSender,
        connectors: dict[str, NetworkConnector],
        notices: Notices,
        seams: Seams,
        metrics: BridgeMetrics | None = None,
    ) -> None:
        self.config = config
        self.sender = sender
        self.connectors = connectors
        self.notices = notices
        self.seams = seams
        self.metrics = metrics or BridgeMetrics()

    async def handle(self, item: QueueItem) -> None:
        payload = item.payload
        account, chat = payload.get("account"), payload.get("chat")
        text = payload.get("text")
        if not (isinstance(account, str) and isinstance(chat, str) and isinstance(text, str)):
            raise GiveUp("unreadable bridge-initiated message")
        connector = self.connectors.get(account)
        if connector is None:
            raise GiveUp(f"channel account {account!r} is no longer configured")
        portal = await Portal.get(account, chat)
        if portal is None or not portal.room_id:
            raise GiveUp(f"the conversation {account}/{chat} is no longer bridged")
        origin = payload.get("origin") if isinstance(payload.get("origin"), dict) else None
        # A refusal or a failure answers the command that asked, else shows in the portal.
        answer_room = origin["room_id"] if origin else portal.room_id
        answer_to = origin["event_id"] if origin else None
        ref = ConversationRef(AccountID(account), RemoteChatID(chat), portal.room_id)
        by, reason = str(payload.get("by") or "bridge"), str(payload.get("reason") or "")
        sent = payload.get("sent")
        buttons = _buttons(payload)
        if not isinstance(sent, dict):
            problem = button_problem(buttons, connector.capabilities, connector.title)
            if problem is not None:
                await self.notices.failure(
                    answer_room, answer_to, problem, txn=txn_id("refused", _key(item))
                )
                return
            template = (
                payload.get("template") if isinstance(payload.get("template"), dict) else None
            )
            outgoing = Outgoing(
                ref, Origin.BRIDGE, by, text, payload.get("html"),
                template=template["name"] if template else None, reason=reason,
                buttons=buttons,
            )  # fmt: skip
            gated = await self.seams.gate(outgoing)
            if isinstance(gated, Internal):
                return
            if isinstance(gated, Refuse):
                self.metrics.failed(account, "out", "refused")
                await self.notices.failure(
                    answer_room, answer_to, gated.reason, txn=txn_id("refused", _key(item))
                )
                return
            result = await deliver(
                item, connector, self.notices, answer_room, answer_to,
                lambda: self._send(connector, portal, item, gated, template), self.metrics,
            )  # fmt: skip
            if result is None:
                return
            self.metrics.bridged(account, "out", item.created_at)
            sent = {
                "message_id": result.message_id,
                "timestamp": result.timestamp,
                "text": gated.text,
            }
            await record(f"the sending of item {item.id}", lambda: item.set_payload(
                {**payload, "sent": sent}
            ))  # fmt: skip
        await self._show(item, portal, payload, sent)
        await self.seams.delivered(
            Outgoing(ref, Origin.BRIDGE, by, str(sent["text"]), reason=reason)
        )

    async def _send(
        self,
        connector: NetworkConnector,
        portal: Portal,
        item: QueueItem,
        outgoing: Outgoing,
        template: dict[str, Any] | None,
    ) -> SentMessage:
        chat = RemoteChatID(portal.chat)
        if template is not None:
            if not isinstance(connector, TemplateHandler):
                raise GiveUp(f"{connector.title} has no templates")
            tpl = Template(
                template["name"], template["language"], template["text"],
                int(template["parameters"]), str(template.get("category") or ""),
            )  # fmt: skip
            return await connector.send_template(chat, tpl, list(template["params"]))
        msg = MatrixMessage(
            portal=PortalKey(AccountID(portal.account), chat),
            event_id=f"outbound:{_key(item)}",
            sender=self.config.bot_mxid,
            sender_name=self.config.bot_displayname,
            msgtype="m.text",
            text=outgoing.text,
            html=outgoing.html if connector.capabilities.html else None,
            automatic=True,
            buttons=outgoing.buttons,
        )
        return await connector.send_message(msg)

    async def _show(
        self, item: QueueItem, portal: Portal, payload: dict[str, Any], sent: dict[str, Any]
    ) -> None:
        """Show in the room exactly what the customer got, map the remote message to that
        notice, and answer the command that asked for it."""
        room_id = portal.room_id or ""
        by = str(payload.get("by") or "bridge")
        template = payload.get("template")
        if isinstance(template, dict):
            name = await self.sender.displayname(room_id, by)
            text = f"📨 Template {template['name']} sent by {name}:\n{sent['text']}"
        else:
            text = f"🤖 Automatic message ({payload.get('reason') or by}):\n{sent['text']}"
            buttons = _buttons(payload)
            if buttons:
                text += "\n" + " ".join(f"[{button.title}]" for button in buttons)
        event_id = await self.notices.send(room_id, text, txn=txn_id("outbound", _key(item)))
        message_id = str(sent.get("message_id") or "")
        if event_id is not None and message_id:
            stamp = sent.get("timestamp")
            when = int((stamp if isinstance(stamp, int | float) else time.time()) * 1000)
            sender_mxid = by if by.startswith("@") else self.config.bot_mxid
            if not await Message.get_by_event(room_id, event_id):
                await record(f"the message of item {item.id}", Message(
                    portal.account, portal.chat, MessageID(message_id), 0, event_id, room_id,
                    None, sender_mxid, when,
                ).insert)  # fmt: skip
        origin = payload.get("origin")
        if isinstance(origin, dict):
            if origin.get("room_id") == room_id:
                answer = "Sent."
            elif origin.get("visible") is False:
                answer = "Sent; you may not see that conversation."
            else:
                answer = f"Sent; the conversation is in {room_id}."
            await self.notices.send(
                origin["room_id"], answer, reply_to=origin.get("event_id"),
                txn=txn_id("outbound-answer", _key(item)),
            )  # fmt: skip


def _buttons(payload: dict[str, Any]) -> tuple[Button, ...]:
    raw = payload.get("buttons")
    if not isinstance(raw, list):
        return ()
    return tuple(
        Button(str(b.get("id") or ""), str(b.get("title") or ""))
        for b in raw
        if isinstance(b, dict)
    )


def _key(item: QueueItem) -> str:
    """What names this message for good: its transaction ids and the id the connector sees
    (a webhook's ``Idempotency-Key``, a mail's Message-ID) come from it. The queue id alone
    would not do: SQLite gives the id of a deleted row to the next one."""
    key = item.payload.get("key")
    return key if isinstance(key, str) and key else f"{item.id}.{item.created_at}"
