"""Matrix -> remote: staff events in portal rooms go out through the channel account."""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

from ..config import Config
from ..connector import (
    DeleteHandler,
    DeliveryError,
    EditHandler,
    MediaSender,
    NetworkConnector,
    PermanentDeliveryError,
    ReactionHandler,
    ReadReceiptHandler,
    ReplyHandler,
    TypingHandler,
)
from ..db import Message, Portal, QueueItem, Reaction
from ..db.message import media_metadata
from ..events import (
    MatrixEdit,
    MatrixMedia,
    MatrixMessage,
    MatrixReaction,
    MatrixReactionRemove,
    MatrixReadReceipt,
    MatrixRedaction,
    MatrixTyping,
    MessageRef,
    SentMessage,
)
from ..logsafe import pii
from ..metrics.registry import BridgeMetrics
from ..seams import ConversationRef, Internal, Origin, Outgoing, Refuse, Seams
from ..types import AccountID, MessageID, PortalKey, RemoteChatID, RemoteUserID
from .delivery import deliver, notice_txn, record
from .incoming import (
    MEDIA_TYPES,
    TEXT_TYPES,
    Media,
    StaffEdit,
    StaffMessage,
    StaffReaction,
    StaffRedaction,
)
from .notices import Notices
from .sender import MatrixSender
from .util import txn_id

log = logging.getLogger("bridge.staff")


class StaffHandler:
    """Handles one recorded staff event of a portal room (commands are routed elsewhere)."""

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

    # ------------------------------------------------------------------ entry points

    async def message(self, item: QueueItem, portal: Portal, evt: StaffMessage) -> None:
        room_id, event_id = evt.room_id, evt.event_id
        if await Message.get_by_event(room_id, event_id):
            return  # delivered before a crash; never send twice
        connector = self._connector(portal)
        msgtype = evt.msgtype
        name = await self.sender.displayname(room_id, evt.sender)
        prefix = self._prefix(name, evt.sender)
        reply_to = await self._reply_target(room_id, evt.reply_to)
        base = partial(
            MatrixMessage,
            portal=_key(portal),
            event_id=event_id,
            sender=evt.sender,
            sender_name=name,
            msgtype=msgtype,
            reply_to=reply_to,
            prefix=prefix,
            timestamp=evt.timestamp,
        )
        body = evt.body
        if msgtype in MEDIA_TYPES and evt.media is not None:
            if evt.media.url is None and evt.media.file is None:
                await self.notices.failure(room_id, event_id, "the file has no address")
                return
            if not isinstance(connector, MediaSender):
                await self.notices.failure(
                    room_id, event_id, f"{connector.title} does not accept files from the bridge"
                )
                return
            media = self._media(evt.media)
            limit = connector.capabilities.max_file_size.get(
                msgtype, connector.capabilities.max_file_size.get("*")
            )
            if limit and media.size and media.size > limit:
                reason = (
                    f"the file is {_mb(media.size)}, {connector.title} takes at most {_mb(limit)}"
                )
                await self.notices.failure(room_id, event_id, reason)
                return
            # No caption: no text at all (the sender's name travels with the message anyway).
            text, html_body = (prefix + body if evt.caption else ""), None
            sender_fn: Callable[[MatrixMessage], Awaitable[SentMessage]] = connector.send_media
        elif msgtype in TEXT_TYPES:
            if not body:
                return
            text = body if msgtype != "m.emote" else f"* {name} {body}"
            html_body = None
            if evt.html is not None:
                html_body = html.escape(prefix) + _strip_reply_fallback(evt.html)
            # Any reply's fallback goes, also one quoting what the customer never got (a
            # notice of the bot): left in, it would reach them and hide a note's marker.
            text = prefix + (_strip_plain_reply_fallback(text) if evt.reply_to else text)
            if reply_to is not None and isinstance(connector, ReplyHandler):
                sender_fn = connector.send_reply
            else:
                sender_fn = connector.send_message
        else:
            await self.notices.failure(
                room_id, event_id, f"{msgtype or 'untyped'} messages are not supported"
            )
            return
        gated = await self._gate(portal, connector, evt.sender, text, html_body)
        if isinstance(gated, Internal):
            log.info("Kept %s in Matrix: %s", event_id, gated.why)
            return
        if isinstance(gated, Refuse):
            self.metrics.failed(portal.account, "out", "refused")
            await self.notices.failure(room_id, event_id, gated.reason, txn=notice_txn(item))
            return
        media_part = media if msgtype in MEDIA_TYPES else None
        msg = base(text=gated.text, html=gated.html, media=media_part)
        if reply_to and not isinstance(connector, ReplyHandler):
            await self.notices.send(
                room_id,
                f"ℹ️ {connector.title} has no replies; the message was sent without the quote.",
                reply_to=event_id,
            )
        sent = await deliver(
            item, connector, self.notices, room_id, event_id, partial(sender_fn, msg), self.metrics
        )
        if sent is not None:
            self.metrics.bridged(portal.account, "out", item.created_at)
            if gated.text != text and text:
                # A gate rewrote it (a canned reply): the room shows what the customer got.
                await self.notices.send(
                    room_id, f"↪️ Sent as:\n{gated.text}", reply_to=event_id,
                    txn=txn_id("rewritten", event_id),
                )  # fmt: skip
            # Before the record: a crash in between sends it again, and tells the hooks again.
            await self.seams.delivered(gated)
            log.info(
                "Delivered %s to %s/%s as %s", event_id, portal.account, pii(portal.chat),
                pii(sent.message_id),
            )  # fmt: skip
            await record(f"the delivery of {event_id}", Message(
                portal.account, portal.chat, sent.message_id, 0, event_id, room_id, None,
                evt.sender, int((sent.timestamp or time.time()) * 1000),
                media_metadata(evt.msgtype),
            ).insert)  # fmt: skip

    async def edit(self, item: QueueItem, portal: Portal, evt: StaffEdit) -> None:
        room_id, event_id = evt.room_id, evt.event_id
        target = await Message.get_by_event(room_id, evt.target)
        if target is None:
            return
        if target.sender is not None or target.sender_mxid != evt.sender:
            # Matrix clients keep showing the original of someone else's message.
            await self.notices.failure(
                room_id, event_id, "only your own messages can be edited; the edit was not sent"
            )
            return
        connector = self._connector(portal)
        if not isinstance(connector, EditHandler):
            await self.notices.failure(
                room_id, event_id, f"{connector.title} has no edits; the edit was not sent"
            )
            return
        window = connector.capabilities.edit_window
        if window is not None and time.time() - target.timestamp / 1000 > window:
            reason = f"{connector.title} allows edits only within {_duration(window)}"
            await self.notices.failure(room_id, event_id, reason)
            return
        name = await self.sender.displayname(room_id, evt.sender)
        prefix = self._prefix(name, evt.sender)
        html_body = html.escape(prefix) + evt.html if evt.html is not None else None
        gated = await self._gate(portal, connector, evt.sender, prefix + evt.body, html_body)
        if isinstance(gated, Internal):
            return
        if isinstance(gated, Refuse):
            self.metrics.failed(portal.account, "out", "refused")
            await self.notices.failure(room_id, event_id, gated.reason, txn=notice_txn(item))
            return
        longest = connector.capabilities.max_text_length
        if longest is not None and len(gated.text) > longest:
            # A message can be split in parts, an edit replaces one: it must fit.
            reason = f"{connector.title} takes edits of at most {longest} characters"
            await self.notices.failure(room_id, event_id, f"{reason}; the edit was not sent")
            return
        edit = MatrixEdit(
            _key(portal), event_id, evt.sender, message_ref(target), gated.text, gated.html
        )
        await deliver(item, connector, self.notices, room_id, event_id, lambda: _done(
            connector.handle_matrix_edit(edit)
        ), self.metrics)  # fmt: skip

    async def redaction(self, item: QueueItem, portal: Portal, evt: StaffRedaction) -> None:
        room_id, redacts = evt.room_id, evt.redacts
        connector = self._connector(portal)
        key = _key(portal)
        reaction = await Reaction.get_by_event(room_id, redacts)
        if reaction is not None:
            if not isinstance(connector, ReactionHandler):
                return
            if not _is_matrix_user(reaction.sender):
                # A customer's reaction: removed in Matrix only, as their messages are.
                await self.notices.send(
                    room_id,
                    "ℹ️ A customer's reaction was removed in Matrix only; the customer still"
                    " sees it.",
                    reply_to=evt.event_id,
                )
                return
            if not self._may_delete(portal, reaction.sender, evt.sender):
                await self.notices.failure(
                    room_id, evt.event_id,
                    f"only {reaction.sender} or an admin can take back that reaction;"
                    " the customer still sees it",
                )  # fmt: skip
                return
            removal = MatrixReactionRemove(
                key, evt.event_id, evt.sender, MessageRef(MessageID(reaction.message_id)),
                reaction.emoji,
            )  # fmt: skip
            if await deliver(item, connector, self.notices, room_id, redacts, lambda: _done(
                connector.handle_matrix_reaction_remove(removal)
            ), self.metrics) is not None:  # fmt: skip
                await record(f"the removal of reaction {redacts}", reaction.delete)
            return
        target = await Message.get_by_event(room_id, redacts)
        if target is None:
            return
        if target.sender is not None:
            # Moderation inside the company: the customer's own copy is not touched.
            await self.notices.send(
                room_id,
                "ℹ️ A customer's message was removed in Matrix only; the customer still has it.",
                reply_to=evt.event_id,
            )
            return
        if not self._may_delete(portal, target.sender_mxid, evt.sender):
            await self.notices.failure(
                room_id, evt.event_id,
                f"only {target.sender_mxid} or an admin of {portal.account} can delete that"
                " message for the customer; the remote copy stays",
            )  # fmt: skip
            return
        if not isinstance(connector, DeleteHandler):
            await self.notices.failure(
                room_id,
                redacts,
                f"{connector.title} cannot delete messages; the remote copy stays",
            )
            return
        window = connector.capabilities.delete_window
        if window is not None and time.time() - target.timestamp / 1000 > window:
            reason = f"{connector.title} allows deleting only within {_duration(window)}"
            await self.notices.failure(room_id, redacts, f"deletion failed: {reason}")
            return
        redaction = MatrixRedaction(key, evt.event_id, evt.sender, message_ref(target))
        if await deliver(item, connector, self.notices, room_id, redacts, lambda: _done(
            connector.handle_matrix_redaction(redaction)
        ), self.metrics) is not None:  # fmt: skip
            await record(f"the deletion of {redacts}", partial(
                Message.delete_all, portal.account, portal.chat, target.message_id
            ))  # fmt: skip

    async def reaction(self, item: QueueItem, portal: Portal, evt: StaffReaction) -> None:
        room_id = evt.room_id
        if await Reaction.get_by_event(room_id, evt.event_id):
            return  # delivered before a crash
        target = await Message.get_by_event(room_id, evt.target)
        if target is None:
            return
        connector = self._connector(portal)
        if not isinstance(connector, ReactionHandler):
            await self.notices.failure(
                room_id, evt.event_id, f"{connector.title} has no reactions"
            )
            return
        reaction = MatrixReaction(
            _key(portal), evt.event_id, evt.sender, message_ref(target), evt.key
        )
        if await deliver(item, connector, self.notices, room_id, evt.event_id, lambda: _done(
            connector.handle_matrix_reaction(reaction)
        ), self.metrics) is not None:  # fmt: skip
            await record(f"the delivery of reaction {evt.event_id}", Reaction(
                portal.account, portal.chat, target.message_id, evt.sender, evt.key,
                evt.event_id, room_id,
            ).insert)  # fmt: skip

    async def receipt(self, portal: Portal, room_id: str, event_id: str, user: str) -> None:
        connector = self._connector(portal)
        if not isinstance(connector, ReadReceiptHandler):
            return
        target = await Message.get_by_event(room_id, event_id)
        if target is None:
            return
        try:
            await connector.handle_matrix_read_receipt(
                MatrixReadReceipt(_key(portal), user, message_ref(target))
            )
        except DeliveryError as e:
            log.info("Read receipt not delivered in %s: %s", room_id, pii(e.reason))

    async def typing(self, portal: Portal, user: str, typing: bool) -> None:
        connector = self._connector(portal)
        if isinstance(connector, TypingHandler):
            try:
                await connector.handle_matrix_typing(MatrixTyping(_key(portal), user, typing))
            except DeliveryError as e:
                log.debug("Typing not delivered: %s", pii(e.reason))

    # ------------------------------------------------------------------ helpers

    async def _gate(
        self,
        portal: Portal,
        connector: NetworkConnector,
        sender: str,
        text: str,
        html_body: str | None,
    ) -> Outgoing | Refuse | Internal:
        """``text`` after the outbound gates; HTML only for a channel that carries it."""
        ref = ConversationRef(AccountID(portal.account), RemoteChatID(portal.chat), portal.room_id)
        if not connector.capabilities.html:
            html_body = None
        gated = await self.seams.gate(Outgoing(ref, Origin.STAFF, sender, text, html_body))
        if isinstance(gated, Outgoing) and not connector.capabilities.html:
            return Outgoing(ref, gated.origin, gated.sender, gated.text, None)
        return gated

    def _prefix(self, name: str, mxid: str) -> str:
        return self.config.sender_prefix_template.format(displayname=name, mxid=mxid)

    def _may_delete(self, portal: Portal, author: str, user: str) -> bool:
        """Staff delete their own messages and reactions remotely; admins of the account
        those of colleagues too."""
        return user == author or self.config.permission_level(user, portal.account) == "admin"

    def _connector(self, portal: Portal) -> NetworkConnector:
        connector = self.connectors.get(portal.account)
        if connector is None:
            raise PermanentDeliveryError(f"channel account {portal.account} is not configured")
        return connector

    async def _reply_target(self, room_id: str, target_id: str | None) -> MessageRef | None:
        if target_id is None:
            return None
        target = await Message.get_by_event(room_id, target_id)
        return None if target is None else message_ref(target)

    def _media(self, media: Media) -> MatrixMedia:
        kind = media.mimetype or "application/octet-stream"
        url = media.url or str((media.file or {}).get("url") or "")
        return self.sender.media(url, media.filename, kind, media.size, media.file)


def _is_matrix_user(sender: str) -> bool:
    """Whether a reaction's recorded sender is a staff member's Matrix ID (a customer's
    reaction records their remote id)."""
    return sender.startswith("@") and ":" in sender


def _key(portal: Portal) -> PortalKey:
    return PortalKey(AccountID(portal.account), RemoteChatID(portal.chat))


async def _done(awaitable: Awaitable[None]) -> SentMessage:
    await awaitable
    return SentMessage(message_id=MessageID(""))


def message_ref(target: Message) -> MessageRef:
    return MessageRef(
        MessageID(target.message_id),
        RemoteUserID(target.sender) if target.sender else None,
        target.timestamp / 1000,
    )


def _strip_reply_fallback(formatted: str) -> str:
    end = formatted.find("</mx-reply>")
    return (
        formatted[end + len("</mx-reply>") :]
        if formatted.startswith("<mx-reply>") and end >= 0
        else formatted
    )


def _strip_plain_reply_fallback(text: str) -> str:
    lines = text.split("\n")
    if lines and lines[0].startswith("> "):
        while lines and lines[0].startswith(">"):
            lines.pop(0)
        if lines and not lines[0]:
            lines.pop(0)
    return "\n".join(lines)


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:g} hours" if seconds >= 3600 else f"{seconds / 60:g} minutes"
