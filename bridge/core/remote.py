"""Remote -> Matrix: turns recorded remote events into Matrix events in portal rooms."""

from __future__ import annotations

import html as html_module
import logging
import re
import time
from typing import Any, cast

from mautrix.api import Method, Path
from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixRequestError
from mautrix.types import EventID, EventType, RoomID

from ..connector import (
    DeliveryError,
    MediaDownloader,
    NetworkConnector,
    TemporaryDeliveryError,
)
from ..db import Message, Portal, Reaction
from ..events import (
    RemoteAttachment,
    RemoteDelete,
    RemoteDeliveryFailure,
    RemoteDeliveryReceipt,
    RemoteEdit,
    RemoteEvent,
    RemoteMessage,
    RemoteReaction,
    RemoteReactionRemove,
    RemoteReadReceipt,
    RemoteTyping,
)
from ..media import MediaFile
from .dispatcher import GiveUp
from .ghosts import GhostManager
from .portals import PortalManager
from .util import EVENT_CONTENT_LIMIT, json_size, shorten_text, split_text, txn_id

log = logging.getLogger("bridge.remote")

_MSGTYPES = {"image": "m.image", "audio": "m.audio", "video": "m.video"}
TXN_KEY = "net.business_bridge.txn_id"
"""In the content of every event the bridge sends for a remote event: its transaction id."""
EDIT_CUT = "… (shortened: the edit is too long for Matrix)"
LOOKBACK = 100
"""Events searched for one whose sending failed without an answer."""


def _msgtype_for(mimetype: str) -> str:
    return _MSGTYPES.get(mimetype.split("/", 1)[0], "m.file")


class RemoteHandler:
    def __init__(
        self,
        portals: PortalManager,
        ghosts: GhostManager,
        connectors: dict[str, NetworkConnector],
        notices: Any,
    ) -> None:
        self.portals = portals
        self.ghosts = ghosts
        self.connectors = connectors
        self.notices = notices
        self._unsure: set[str] = set()
        """Transactions whose last sending failed without telling whether it was stored."""

    async def handle(self, account: str, event: RemoteEvent) -> None:
        try:
            await self._handle(account, event)
        except MatrixRequestError as e:
            # The homeserver refused (403 redacting, 413 too large, 400 bad name ...): sending
            # the same again gets the same answer. Rate limits and 5xx are retried.
            if _refused(e):
                raise GiveUp(f"homeserver refused: {e.errcode} {e.message}") from e
            raise

    async def _handle(self, account: str, event: RemoteEvent) -> None:
        if account not in self.connectors:
            raise GiveUp(f"channel account {account!r} is no longer configured")
        title = self.portals.channel_title(account)
        connector = self.connectors[account]
        fetch = None
        if isinstance(connector, MediaDownloader):
            download = connector.download_attachment

            async def fetch(url: str) -> tuple[bytes, str]:
                data, mimetype = await download(RemoteAttachment(url=url, filename="avatar"))
                if isinstance(data, MediaFile):
                    with data:  # an avatar is small: the connector's file limit bounds it
                        return await data.read(), mimetype
                return data, mimetype

        intent = await self.ghosts.ensure(account, event.sender, title, fetch)
        if isinstance(event, RemoteMessage):
            portal = await self.portals.get_or_create(
                account, event.chat, event.sender, intent.mxid, fetch
            )
            extra = event.metadata.get("portal")
            if isinstance(extra, dict) and extra:
                portal.metadata.update(extra)
                await portal.save()
        else:
            found = await Portal.get(account, event.chat.id)
            if found is None or not found.room_id:
                log.info("Dropping %s for unknown chat %s/%s", event.kind, account, event.chat.id)
                return
            portal = found
        room_id = RoomID(portal.room_id or "")
        await intent.ensure_joined(room_id)
        if isinstance(event, RemoteMessage):
            await self._message(portal, room_id, intent, event)
        elif isinstance(event, RemoteEdit):
            await self._edit(portal, room_id, intent, event)
        elif isinstance(event, RemoteDelete):
            await self._delete(portal, intent, event)
        elif isinstance(event, RemoteReaction):
            await self._reaction(portal, room_id, intent, event)
        elif isinstance(event, RemoteReactionRemove):
            await self._reaction_remove(portal, intent, event)
        elif isinstance(event, RemoteReadReceipt):
            await self._receipt(portal, room_id, intent, event)
        elif isinstance(event, RemoteDeliveryReceipt):
            await self._receipt(portal, room_id, self.portals.bot, event)
        elif isinstance(event, RemoteTyping):
            await intent.set_typing(room_id, timeout=event.timeout_ms)
        elif isinstance(event, RemoteDeliveryFailure):
            await self._failure(portal, room_id, event)

    async def _message(
        self, portal: Portal, room_id: RoomID, intent: IntentAPI, event: RemoteMessage
    ) -> None:
        done = {
            m.part for m in await Message.get_parts(portal.account, portal.chat, event.message_id)
        }
        parts: list[dict[str, Any]] = []
        for attachment in event.attachments:
            parts.append(await self._attachment_content(portal.account, intent, attachment))
        if event.text or event.html or not parts:
            parts[0:0] = _text_contents(event)
        reply_event = None
        if event.reply_to:
            target = await Message.get_parts(portal.account, portal.chat, event.reply_to)
            if target:
                reply_event = target[0].event_id
        for index, content in enumerate(parts):
            if index in done:
                continue
            if reply_event and index == 0:
                content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_event}}
            txn = txn_id("msg", portal.account, portal.chat, event.message_id, str(index))
            event_id = await self._send(
                intent, room_id, EventType.ROOM_MESSAGE, content, txn, event
            )
            await Message(
                portal.account,
                portal.chat,
                event.message_id,
                index,
                event_id,
                room_id,
                event.sender.id,
                intent.mxid,
                _ts_ms(event.timestamp),
            ).insert()
            log.info(
                "Bridged %s/%s message %s part %d as %s",
                portal.account, portal.chat, event.message_id, index, event_id,
            )  # fmt: skip

    async def _attachment_content(
        self, account: str, intent: IntentAPI, attachment: RemoteAttachment
    ) -> dict[str, Any]:
        connector = self.connectors[account]
        name = attachment.filename or attachment.url.rsplit("/", 1)[-1] or "file"
        if not isinstance(connector, MediaDownloader):
            return {"msgtype": "m.notice", "body": f"⚠️ Attachment {name} not bridged: "
                    f"{connector.title} attachments are not supported"}  # fmt: skip
        try:
            data, mimetype = await connector.download_attachment(attachment)
        except TemporaryDeliveryError:
            raise
        except DeliveryError as e:
            return {"msgtype": "m.notice", "body": f"⚠️ Attachment {name} not bridged: {e.reason}"}
        mimetype = mimetype or attachment.mimetype or "application/octet-stream"
        if isinstance(data, MediaFile):
            # Streamed from its spool: a large file never sits in memory whole.
            with data:
                size = data.size
                mxc = await intent.upload_media(
                    data.chunks(), mime_type=mimetype, filename=name, size=size
                )
        else:
            size = len(data)
            mxc = await intent.upload_media(data, mime_type=mimetype, filename=name)
        return {
            "msgtype": _msgtype_for(mimetype),
            "body": name,
            "filename": name,
            "url": mxc,
            "info": {"mimetype": mimetype, "size": size},
        }

    async def _edit(
        self, portal: Portal, room_id: RoomID, intent: IntentAPI, event: RemoteEdit
    ) -> None:
        target = await Message.get_parts(portal.account, portal.chat, event.message_id)
        if not target:
            log.info(
                "Edit of unknown message %s in %s/%s",
                event.message_id,
                portal.account,
                portal.chat,
            )
            return
        text, html = event.text, event.html
        if json_size([text, html]) > EVENT_CONTENT_LIMIT // 4:
            # Text and HTML go in twice (the fallback and the new content), and an edit has
            # no parts to split into: shortened, as plain text.
            text = shorten_text(text or _html_text(html or ""), EVENT_CONTENT_LIMIT // 4, EDIT_CUT)
            html = None
        new: dict[str, Any] = {"msgtype": "m.text", "body": text}
        if html:
            new["format"] = "org.matrix.custom.html"
            new["formatted_body"] = html
        content = {
            **new,
            "body": f"* {text}",
            "m.new_content": new,
            "m.relates_to": {"rel_type": "m.replace", "event_id": target[0].event_id},
        }
        if html:
            content["formatted_body"] = f"* {html}"
        txn = txn_id("edit", portal.account, portal.chat, event.dedup_key())
        await self._send(intent, room_id, EventType.ROOM_MESSAGE, content, txn, event)

    async def _delete(self, portal: Portal, intent: IntentAPI, event: RemoteDelete) -> None:
        for part in await Message.get_parts(portal.account, portal.chat, event.message_id):
            txn = txn_id("redact", part.event_id)
            # Someone else's message (staff's, or another customer's where the remote side lets
            # a business or an admin delete it): its sender's ghost may not redact it, the bot,
            # creator of the room, may.
            redactor = intent if part.sender_mxid == intent.mxid else self.portals.bot
            await self._redact(redactor, RoomID(part.room_id), EventID(part.event_id), txn)
            await part.delete()

    async def _reaction(
        self, portal: Portal, room_id: RoomID, intent: IntentAPI, event: RemoteReaction
    ) -> None:
        target = await Message.get_parts(portal.account, portal.chat, event.message_id)
        if not target:
            return
        existing = await Reaction.get(
            portal.account, portal.chat, event.message_id, event.sender.id, event.emoji
        )
        if existing:
            return
        content = {
            "m.relates_to": {
                "rel_type": "m.annotation",
                "event_id": target[0].event_id,
                "key": event.emoji,
            }
        }
        txn = txn_id("react", portal.account, portal.chat, event.dedup_key())
        event_id = await self._send(intent, room_id, EventType.REACTION, content, txn, event)
        await Reaction(
            portal.account, portal.chat, event.message_id, event.sender.id, event.emoji,
            event_id, room_id,
        ).insert()  # fmt: skip

    async def _reaction_remove(
        self, portal: Portal, intent: IntentAPI, event: RemoteReactionRemove
    ) -> None:
        if event.emoji:
            found = await Reaction.get(
                portal.account, portal.chat, event.message_id, event.sender.id, event.emoji
            )
            reactions = [found] if found else []
        else:
            reactions = await Reaction.by_sender(
                portal.account, portal.chat, event.message_id, event.sender.id
            )
        for existing in reactions:
            txn = txn_id("redact", existing.event_id)
            await self._redact(intent, RoomID(existing.room_id), EventID(existing.event_id), txn)
            await existing.delete()

    async def _receipt(
        self,
        portal: Portal,
        room_id: RoomID,
        intent: IntentAPI,
        event: RemoteReadReceipt | RemoteDeliveryReceipt,
    ) -> None:
        parts = await Message.get_parts(portal.account, portal.chat, event.message_id)
        if parts:
            await intent.mark_read(room_id, EventID(parts[-1].event_id))

    async def _failure(
        self, portal: Portal, room_id: RoomID, event: RemoteDeliveryFailure
    ) -> None:
        parts = await Message.get_parts(portal.account, portal.chat, event.message_id)
        target = EventID(parts[0].event_id) if parts else None
        await self.notices.failure(
            room_id, target, event.reason, txn=txn_id("failure", portal.account, event.dedup_key())
        )

    async def _send(
        self,
        intent: IntentAPI,
        room_id: RoomID,
        event_type: EventType,
        content: dict[str, Any],
        txn: str,
        event: RemoteEvent,
    ) -> EventID:
        if event.timestamp:
            # Keep the remote time visible to clients that show it; the event order is ours.
            content.setdefault("fi.mau.remote_timestamp", _ts_ms(event.timestamp))
        content[TXN_KEY] = txn
        if txn in self._unsure:
            # An earlier attempt failed without an answer: the homeserver may have stored the
            # event and lost the transaction id with a restart, so look before sending again.
            sent = await self._find_sent(intent, room_id, txn)
            if sent is not None:
                self._unsure.discard(txn)
                return sent
        try:
            event_id = await intent.send_message_event(
                room_id, event_type, cast(Any, content), txn_id=txn
            )
        except MatrixRequestError as e:
            if _refused(e):
                raise GiveUp(f"homeserver refused the event: {e.errcode} {e.message}") from e
            self._unsure.add(txn)
            raise
        except Exception:
            self._unsure.add(txn)
            raise
        self._unsure.discard(txn)
        return event_id

    async def _find_sent(self, intent: IntentAPI, room_id: RoomID, txn: str) -> EventID | None:
        """The event ``intent`` sent to ``room_id`` in transaction ``txn``, if among the
        room's latest events."""
        path = Path.v3.rooms[room_id].messages
        query = {"dir": "b", "limit": str(LOOKBACK)}
        answer = await intent.api.request(Method.GET, path, query_params=query)
        for evt in answer.get("chunk", []):
            content = evt.get("content")
            if (
                evt.get("sender") == intent.mxid
                and isinstance(content, dict)
                and content.get(TXN_KEY) == txn
            ):
                log.info("Event of transaction %s was stored before: %s", txn, evt["event_id"])
                return EventID(evt["event_id"])
        return None

    async def _redact(
        self, intent: IntentAPI, room_id: RoomID, event_id: EventID, txn: str
    ) -> None:
        await intent.ensure_joined(room_id)
        await intent.api.request(Method.PUT, Path.v3.rooms[room_id].redact[event_id][txn], {})


def _text_contents(event: RemoteMessage) -> list[dict[str, Any]]:
    """The text of ``event`` as message contents: one, or several parts of plain text when it
    is over the homeserver's event size limit (HTML cannot be cut safely and is left out)."""
    msgtype = "m.notice" if event.notice else "m.text"
    content: dict[str, Any] = {"msgtype": msgtype, "body": event.text or ""}
    if event.html:
        content["format"] = "org.matrix.custom.html"
        content["formatted_body"] = event.html
    if json_size(content) <= EVENT_CONTENT_LIMIT:
        return [content]
    text = event.text or _html_text(event.html or "")
    return [{"msgtype": msgtype, "body": piece} for piece in split_text(text)]


def _html_text(markup: str) -> str:
    """Rough plain text of HTML, for HTML too long to send without a text of its own."""
    return html_module.unescape(re.sub(r"<[^>]*>", "", markup))


def _refused(e: MatrixRequestError) -> bool:
    """A final answer of the homeserver: a 4xx other than a rate limit."""
    return 400 <= e.http_status < 500 and e.http_status != 429 and e.errcode != "M_LIMIT_EXCEEDED"


def _ts_ms(timestamp: float | None) -> int:
    return int((timestamp if timestamp else time.time()) * 1000)
