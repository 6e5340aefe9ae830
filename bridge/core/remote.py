"""Remote -> Matrix: turns recorded remote events into Matrix events in portal rooms."""

from __future__ import annotations

import html as html_module
import logging
import re
import time
from typing import Any

from mautrix.errors import MatrixRequestError
from mautrix.types import EventType, RoomID, UserID

from ..connector import (
    DeliveryError,
    MediaDownloader,
    NetworkConnector,
    TemporaryDeliveryError,
)
from ..db import Conversation, Message, Portal, Reaction
from ..db.message import media_metadata
from ..events import (
    RemoteAttachment,
    RemoteBlocked,
    RemoteButtonPress,
    RemoteConsent,
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
from ..logsafe import pii
from ..media import MediaFile
from ..seams import ConversationRef, Inbound
from ..types import AccountID, RemoteChatID
from .dispatcher import GiveUp
from .ghosts import GhostManager
from .notices import Notices
from .portals import PortalManager
from .sender import MatrixSender, Refused, refused
from .util import EVENT_CONTENT_LIMIT, json_size, now_ms, shorten_text, split_text, txn_id

log = logging.getLogger("bridge.remote")

HOOKS_ALONE = (RemoteBlocked, RemoteConsent)
"""Remote events that make no room and show no ghost: for the inbound hooks."""

_MSGTYPES = {"image": "m.image", "audio": "m.audio", "video": "m.video"}
EDIT_CUT = "… (shortened: the edit is too long for Matrix)"


def _msgtype_for(mimetype: str) -> str:
    return _MSGTYPES.get(mimetype.split("/", 1)[0], "m.file")


class RemoteHandler:
    """Bridges one recorded remote event into its portal room, as the sender's ghost."""

    def __init__(
        self,
        sender: MatrixSender,
        portals: PortalManager,
        ghosts: GhostManager,
        connectors: dict[str, NetworkConnector],
        notices: Notices,
    ) -> None:
        self.sender = sender
        self.portals = portals
        self.ghosts = ghosts
        self.connectors = connectors
        self.notices = notices

    async def handle(self, account: str, event: RemoteEvent) -> Inbound | None:
        """Bridge ``event``; what the inbound hooks are told of it (None: nothing bridged)."""
        try:
            return await self._handle(account, event)
        except Refused as e:
            raise GiveUp(f"homeserver refused the event: {e}") from e
        except MatrixRequestError as e:
            # The homeserver refused (403 redacting, 413 too large, 400 bad name ...): sending
            # the same again gets the same answer. Rate limits and 5xx are retried.
            if refused(e):
                raise GiveUp(f"homeserver refused: {e.errcode} {e.message}") from e
            raise

    async def _handle(self, account: str, event: RemoteEvent) -> Inbound | None:
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

        if isinstance(event, HOOKS_ALONE):
            # No room is made for these; they reach the hooks (and the room, if there is one).
            found = await Portal.get(account, event.chat.id)
            room = found.room_id if found is not None and found.room_id else None
            if room is not None and isinstance(event, RemoteBlocked):
                who = event.sender.displayname or event.sender.id
                await self.notices.send(
                    RoomID(room), f"🚫 {who} blocked {title}: nothing more reaches them here.",
                    txn=txn_id("blocked", account, event.dedup_key()),
                )  # fmt: skip
            return Inbound(ConversationRef(AccountID(account), event.chat.id, room), event, False)
        if isinstance(event, RemoteMessage | RemoteButtonPress):
            ghost = await self.ghosts.ensure(account, event.sender, title, fetch)
            # A press is the customer writing too (a consent given by button is no log line):
            # a chat whose room was unlinked or never made gets one.
            portal = await self.portals.get_or_create(
                account, event.chat, event.sender, ghost, fetch
            )
        else:
            found = await Portal.get(account, event.chat.id)
            if found is None or not found.room_id:
                # A receipt or a failure of something sent without a room (a broadcast):
                # nothing to show and no ghost to make; the hooks may know it.
                log.debug("No room for %s of %s/%s", event.kind, account, pii(event.chat.id))
                ref = ConversationRef(AccountID(account), event.chat.id, None)
                return Inbound(ref, event, first_contact=False)
            portal = found
            ghost = await self.ghosts.ensure(account, event.sender, title, fetch)
        extra = event.metadata.get("portal")
        if isinstance(event, RemoteMessage | RemoteButtonPress) and isinstance(extra, dict):
            if extra:  # a press, too, is the customer writing (WhatsApp's window opens)
                # Each value on its own: nothing another writer set is lost.
                await Conversation.put_data(account, event.chat.id, extra)
        room_id = RoomID(portal.room_id or "")
        await self.sender.ensure_joined(room_id, as_user=ghost)
        if isinstance(event, RemoteMessage):
            await self._message(portal, room_id, ghost, event)
        elif isinstance(event, RemoteEdit):
            await self._edit(portal, room_id, ghost, event)
        elif isinstance(event, RemoteDelete):
            await self._delete(portal, ghost, event)
        elif isinstance(event, RemoteReaction):
            await self._reaction(portal, room_id, ghost, event)
        elif isinstance(event, RemoteReactionRemove):
            await self._reaction_remove(portal, ghost, event)
        elif isinstance(event, RemoteReadReceipt):
            await self._receipt(portal, room_id, ghost, event)
        elif isinstance(event, RemoteDeliveryReceipt):
            await self._receipt(portal, room_id, None, event)
        elif isinstance(event, RemoteTyping):
            await self.sender.set_typing(room_id, event.timeout_ms, as_user=ghost)
        elif isinstance(event, RemoteDeliveryFailure):
            await self._failure(portal, room_id, event)
        elif isinstance(event, RemoteButtonPress):
            await self._press(portal, room_id, ghost, event)
        first = False
        if isinstance(event, RemoteMessage):
            first_id = await Conversation.first_message_of(
                account, event.chat.id, event.message_id, now_ms()
            )
            first = first_id == event.message_id
        ref = ConversationRef(AccountID(account), RemoteChatID(portal.chat), portal.room_id)
        return Inbound(ref, event, first_contact=first)

    async def _message(
        self, portal: Portal, room_id: RoomID, ghost: UserID, event: RemoteMessage
    ) -> None:
        done = {
            m.part for m in await Message.get_parts(portal.account, portal.chat, event.message_id)
        }
        parts: list[dict[str, Any]] = []
        for attachment in event.attachments:
            parts.append(
                await self._attachment_content(portal.account, room_id, ghost, attachment)
            )
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
                ghost, room_id, EventType.ROOM_MESSAGE, content, txn, event
            )
            await Message(
                portal.account,
                portal.chat,
                event.message_id,
                index,
                event_id,
                room_id,
                event.sender.id,
                ghost,
                _ts_ms(event.timestamp),
                media_metadata(content.get("msgtype")),
            ).insert()
            log.info(
                "Bridged %s/%s message %s part %d as %s",
                portal.account, pii(portal.chat), pii(event.message_id), index, event_id,
            )  # fmt: skip

    async def _attachment_content(
        self, account: str, room_id: RoomID, ghost: UserID, attachment: RemoteAttachment
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
                where, size = await self.sender.upload_to_room(
                    room_id, data, mimetype, name, as_user=ghost
                )
        else:
            where, size = await self.sender.upload_to_room(
                room_id, data, mimetype, name, as_user=ghost
            )
        return {
            "msgtype": _msgtype_for(mimetype),
            "body": name,
            "filename": name,
            **where,
            "info": {"mimetype": mimetype, "size": size},
        }

    async def _edit(
        self, portal: Portal, room_id: RoomID, ghost: UserID, event: RemoteEdit
    ) -> None:
        target = await Message.get_parts(portal.account, portal.chat, event.message_id)
        if not target:
            log.info(
                "Edit of unknown message %s in %s/%s",
                pii(event.message_id),
                portal.account,
                pii(portal.chat),
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
        await self._send(ghost, room_id, EventType.ROOM_MESSAGE, content, txn, event)

    async def _delete(self, portal: Portal, ghost: UserID, event: RemoteDelete) -> None:
        for part in await Message.get_parts(portal.account, portal.chat, event.message_id):
            txn = txn_id("redact", part.event_id)
            # Someone else's message (staff's, or another customer's where the remote side lets
            # a business or an admin delete it): its sender's ghost may not redact it, the bot,
            # creator of the room, may.
            redactor = ghost if part.sender_mxid == ghost else None
            await self.sender.redact(part.room_id, part.event_id, txn, as_user=redactor)
            await part.delete()

    async def _reaction(
        self, portal: Portal, room_id: RoomID, ghost: UserID, event: RemoteReaction
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
        event_id = await self._send(ghost, room_id, EventType.REACTION, content, txn, event)
        await Reaction(
            portal.account, portal.chat, event.message_id, event.sender.id, event.emoji,
            event_id, room_id,
        ).insert()  # fmt: skip

    async def _reaction_remove(
        self, portal: Portal, ghost: UserID, event: RemoteReactionRemove
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
            await self.sender.redact(existing.room_id, existing.event_id, txn, as_user=ghost)
            await existing.delete()

    async def _receipt(
        self,
        portal: Portal,
        room_id: RoomID,
        reader: UserID | None,
        event: RemoteReadReceipt | RemoteDeliveryReceipt,
    ) -> None:
        parts = await Message.get_parts(portal.account, portal.chat, event.message_id)
        if parts:
            await self.sender.mark_read(room_id, parts[-1].event_id, as_user=reader)

    async def _failure(
        self, portal: Portal, room_id: RoomID, event: RemoteDeliveryFailure
    ) -> None:
        parts = await Message.get_parts(portal.account, portal.chat, event.message_id)
        target = parts[0].event_id if parts else None
        await self.notices.failure(
            room_id, target, event.reason, txn=txn_id("failure", portal.account, event.dedup_key())
        )

    async def _press(
        self, portal: Portal, room_id: RoomID, ghost: UserID, event: RemoteButtonPress
    ) -> None:
        """A notice of the customer's ghost, in reply to the message whose button it was."""
        who = event.sender.displayname or event.sender.id
        content: dict[str, Any] = {
            "msgtype": "m.notice",
            "body": f"🔘 {who} pressed “{event.title or event.button_id}”",
        }
        target = await Message.get_parts(portal.account, portal.chat, event.message_id)
        if target:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": target[0].event_id}}
        txn = txn_id("press", portal.account, portal.chat, event.dedup_key())
        await self._send(ghost, room_id, EventType.ROOM_MESSAGE, content, txn, event)

    async def _send(
        self,
        ghost: UserID,
        room_id: RoomID,
        event_type: EventType,
        content: dict[str, Any],
        txn: str,
        event: RemoteEvent,
    ) -> str:
        if event.timestamp:
            # Keep the remote time visible to clients that show it; the event order is ours.
            content.setdefault("fi.mau.remote_timestamp", _ts_ms(event.timestamp))
        return await self.sender.send(
            room_id, content, event_type=event_type, txn=txn, as_user=ghost
        )


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


def _ts_ms(timestamp: float | None) -> int:
    return int((timestamp if timestamp else time.time()) * 1000)
