"""Matrix -> remote: staff events in portal rooms go out through the channel account."""

from __future__ import annotations

import asyncio
import html
import logging
import math
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from mautrix.appservice import IntentAPI
from mautrix.types import ContentURI, EventID, RoomID, UserID

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
    TemporaryDeliveryError,
    TypingHandler,
)
from ..db import Message, Portal, QueueItem, Reaction
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
from ..tasks import until_done
from ..types import AccountID, MessageID, PortalKey, RemoteChatID, RemoteUserID
from .dispatcher import GiveUp
from .media import download_to_file
from .notices import Notices
from .util import txn_id

log = logging.getLogger("bridge.matrix")

MEDIA_TYPES = ("m.image", "m.file", "m.audio", "m.video")
TEXT_TYPES = ("m.text", "m.notice", "m.emote")
RETRY_MAX = 60.0
RECORD_RETRY = 0.5
RECORD_RETRY_MAX = 5.0


class MatrixHandler:
    """Handles one recorded Matrix event of a portal room (commands are routed elsewhere)."""

    def __init__(
        self,
        config: Config,
        bot: IntentAPI,
        connectors: dict[str, NetworkConnector],
        notices: Notices,
    ) -> None:
        self.config = config
        self.bot = bot
        self.connectors = connectors
        self.notices = notices

    # ------------------------------------------------------------------ entry points

    async def message(self, item: QueueItem, portal: Portal, evt: dict[str, Any]) -> None:
        content = evt.get("content") or {}
        room_id = RoomID(evt["room_id"])
        event_id = EventID(evt["event_id"])
        if await Message.get_by_event(room_id, event_id):
            return  # delivered before a crash; never send twice
        relates = _object(content.get("m.relates_to"))
        if relates.get("rel_type") == "m.replace":
            await self._edit(item, portal, evt, relates)
            return
        connector = self._connector(portal)
        msgtype = content.get("msgtype")
        sender = UserID(evt["sender"])
        name = await self.displayname(room_id, sender)
        prefix = self.config.sender_prefix_template.format(displayname=name, mxid=sender)
        body: str = content["body"] if isinstance(content.get("body"), str) else ""
        reply_to = await self._reply_target(portal, room_id, relates)
        base = partial(
            MatrixMessage,
            portal=_key(portal),
            event_id=event_id,
            sender=sender,
            sender_name=name,
            msgtype=msgtype or "m.text",
            reply_to=reply_to,
            prefix=prefix,
            timestamp=_seconds(evt.get("origin_server_ts")),
        )
        if msgtype in MEDIA_TYPES:
            if not isinstance(content.get("url"), str):
                await self.notices.failure(
                    room_id, event_id, "encrypted files are not supported yet"
                )
                return
            if not isinstance(connector, MediaSender):
                await self.notices.failure(
                    room_id, event_id, f"{connector.title} does not accept files from the bridge"
                )
                return
            info = _object(content.get("info"))
            media = self._media(content, info, msgtype)
            limit = connector.capabilities.max_file_size.get(
                msgtype, connector.capabilities.max_file_size.get("*")
            )
            if limit and media.size and media.size > limit:
                reason = (
                    f"the file is {_mb(media.size)}, {connector.title} takes at most {_mb(limit)}"
                )
                await self.notices.failure(room_id, event_id, reason)
                return
            caption = content.get("filename") and body != content.get("filename")
            # No caption: no text at all (the sender's name travels with the message anyway).
            msg = base(text=prefix + body if caption else "", html=None, media=media)
            send: Callable[[], Awaitable[SentMessage]] = partial(connector.send_media, msg)
        elif msgtype in TEXT_TYPES:
            if not body:
                return
            text = body if msgtype != "m.emote" else f"* {name} {body}"
            html_body = None
            if content.get("format") == "org.matrix.custom.html" and isinstance(
                content.get("formatted_body"), str
            ):
                html_body = html.escape(prefix) + _strip_reply_fallback(content["formatted_body"])
            text = _strip_plain_reply_fallback(text) if reply_to else text
            msg = base(text=prefix + text, html=html_body)
            if reply_to and isinstance(connector, ReplyHandler):
                send = partial(connector.send_reply, msg)
            else:
                send = partial(connector.send_message, msg)
        else:
            await self.notices.failure(room_id, event_id, f"{msgtype} messages are not supported")
            return
        if reply_to and not isinstance(connector, ReplyHandler):
            await self.notices.send(
                room_id,
                f"ℹ️ {connector.title} has no replies; the message was sent without the quote.",
                reply_to=event_id,
            )
        sent = await self.deliver(item, portal, room_id, event_id, send)
        if sent is not None:
            log.info(
                "Delivered %s to %s/%s as %s",
                event_id,
                portal.account,
                portal.chat,
                sent.message_id,
            )
            await _record(f"the delivery of {event_id}", Message(
                portal.account, portal.chat, sent.message_id, 0, event_id, room_id, None, sender,
                int((sent.timestamp or time.time()) * 1000),
            ).insert)  # fmt: skip

    async def redaction(self, item: QueueItem, portal: Portal, evt: dict[str, Any]) -> None:
        room_id = RoomID(evt["room_id"])
        redacts = evt.get("redacts") or (evt.get("content") or {}).get("redacts")
        if not isinstance(redacts, str):
            return
        connector = self._connector(portal)
        key = _key(portal)
        reaction = await Reaction.get_by_event(room_id, EventID(redacts))
        if reaction is not None:
            if not isinstance(connector, ReactionHandler):
                return
            if not _is_matrix_user(reaction.sender):
                # A customer's reaction: removed in Matrix only, as their messages are.
                await self.notices.send(
                    room_id,
                    "ℹ️ A customer's reaction was removed in Matrix only; the customer still"
                    " sees it.",
                    reply_to=EventID(evt["event_id"]),
                )
                return
            if not self._may_delete(portal, reaction.sender, evt["sender"]):
                await self.notices.failure(
                    room_id, EventID(evt["event_id"]),
                    f"only {reaction.sender} or an admin can take back that reaction;"
                    " the customer still sees it",
                )  # fmt: skip
                return
            removal = MatrixReactionRemove(
                key,
                evt["event_id"],
                evt["sender"],
                MessageRef(MessageID(reaction.message_id)),
                reaction.emoji,
            )
            if await self.deliver(item, portal, room_id, EventID(redacts), lambda: _done(
                connector.handle_matrix_reaction_remove(removal)
            )) is not None:  # fmt: skip
                await _record(f"the removal of reaction {redacts}", reaction.delete)
            return
        target = await Message.get_by_event(room_id, EventID(redacts))
        if target is None:
            return
        if target.sender is not None:
            # Moderation inside the company: the customer's own copy is not touched.
            await self.notices.send(
                room_id,
                "ℹ️ A customer's message was removed in Matrix only; the customer still has it.",
                reply_to=EventID(evt["event_id"]),
            )
            return
        if not self._may_delete(portal, target.sender_mxid, evt["sender"]):
            await self.notices.failure(
                room_id, EventID(evt["event_id"]),
                f"only {target.sender_mxid} or an admin of {portal.account} can delete that"
                " message for the customer; the remote copy stays",
            )  # fmt: skip
            return
        if not isinstance(connector, DeleteHandler):
            await self.notices.failure(
                room_id, EventID(redacts),
                f"{connector.title} cannot delete messages; the remote copy stays",
            )  # fmt: skip
            return
        window = connector.capabilities.delete_window
        if window is not None and time.time() - target.timestamp / 1000 > window:
            reason = f"{connector.title} allows deleting only within {_duration(window)}"
            await self.notices.failure(room_id, EventID(redacts), f"deletion failed: {reason}")
            return
        ref = message_ref(target)
        redaction = MatrixRedaction(key, evt["event_id"], evt["sender"], ref)
        if await self.deliver(item, portal, room_id, EventID(redacts), lambda: _done(
            connector.handle_matrix_redaction(redaction)
        )) is not None:  # fmt: skip
            await _record(f"the deletion of {redacts}", partial(
                Message.delete_all, portal.account, portal.chat, target.message_id
            ))  # fmt: skip

    async def reaction(self, item: QueueItem, portal: Portal, evt: dict[str, Any]) -> None:
        room_id = RoomID(evt["room_id"])
        if await Reaction.get_by_event(room_id, EventID(evt["event_id"])):
            return  # delivered before a crash
        relates = _object(_object(evt.get("content")).get("m.relates_to"))
        emoji, target_id = relates.get("key"), relates.get("event_id")
        if not isinstance(emoji, str) or not isinstance(target_id, str):
            return
        target = await Message.get_by_event(room_id, EventID(target_id))
        if target is None:
            return
        connector = self._connector(portal)
        if not isinstance(connector, ReactionHandler):
            await self.notices.failure(
                room_id, EventID(evt["event_id"]), f"{connector.title} has no reactions"
            )
            return
        key = _key(portal)
        ref = message_ref(target)
        reaction = MatrixReaction(key, evt["event_id"], evt["sender"], ref, emoji)
        if await self.deliver(item, portal, room_id, EventID(evt["event_id"]), lambda: _done(
            connector.handle_matrix_reaction(reaction)
        )) is not None:  # fmt: skip
            await _record(f"the delivery of reaction {evt['event_id']}", Reaction(
                portal.account, portal.chat, target.message_id, evt["sender"], emoji,
                evt["event_id"], room_id,
            ).insert)  # fmt: skip

    async def receipt(self, portal: Portal, room_id: RoomID, event_id: str, user: str) -> None:
        connector = self._connector(portal)
        if not isinstance(connector, ReadReceiptHandler):
            return
        target = await Message.get_by_event(room_id, EventID(event_id))
        if target is None:
            return
        key = _key(portal)
        ref = message_ref(target)
        try:
            await connector.handle_matrix_read_receipt(MatrixReadReceipt(key, user, ref))
        except DeliveryError as e:
            log.info("Read receipt not delivered in %s: %s", room_id, e.reason)

    async def typing(self, portal: Portal, user: str, typing: bool) -> None:
        connector = self._connector(portal)
        if isinstance(connector, TypingHandler):
            key = _key(portal)
            try:
                await connector.handle_matrix_typing(MatrixTyping(key, user, typing))
            except DeliveryError as e:
                log.debug("Typing not delivered: %s", e.reason)

    # ------------------------------------------------------------------ delivery

    async def deliver(
        self,
        item: QueueItem,
        portal: Portal,
        room_id: RoomID,
        event_id: EventID,
        action: Callable[[], Awaitable[SentMessage]],
    ) -> SentMessage | None:
        """Run ``action`` until it succeeds, fails permanently, or the channel's delivery
        deadline (counted from when the bridge accepted the event) passes. Failures are
        shown in the room as a notice replying to ``event_id``. Items of this room wait."""
        connector = self._connector(portal)
        deadline = item.created_at / 1000 + connector.capabilities.delivery_deadline
        delay = 1.0
        while True:
            try:
                return await action()
            except PermanentDeliveryError as e:
                await self.notices.failure(room_id, event_id, e.reason, txn=_ntxn(item))
                return None
            except asyncio.CancelledError:
                raise
            except Exception as e:
                reason = e.reason if isinstance(e, DeliveryError) else f"{type(e).__name__}: {e}"
                wait = (
                    getattr(e, "retry_after", None)
                    if isinstance(e, TemporaryDeliveryError)
                    else None
                )
                wait = max(wait or delay, 0.05)
                if time.time() + wait > deadline:
                    tries = item.attempts + 1
                    # The dispatcher keeps it as a dead letter and tells the room.
                    raise GiveUp(
                        f"{reason} (gave up after {tries} attempt{'s' * (tries > 1)})"
                    ) from e
                log.warning(
                    "Delivery of %s failed (%s), retrying in %.1fs", event_id, reason, wait
                )
                await item.bump_attempts()
                await asyncio.sleep(wait)
                delay = min(delay * 2, RETRY_MAX)

    # ------------------------------------------------------------------ helpers

    def _may_delete(self, portal: Portal, author: str, user: str) -> bool:
        """Staff delete their own messages and reactions remotely; admins of the account
        those of colleagues too."""
        return user == author or self.config.permission_level(user, portal.account) == "admin"

    def _connector(self, portal: Portal) -> NetworkConnector:
        connector = self.connectors.get(portal.account)
        if connector is None:
            raise PermanentDeliveryError(f"channel account {portal.account} is not configured")
        return connector

    async def displayname(self, room_id: RoomID, user: UserID) -> str:
        try:
            member = await self.bot.get_room_member_info(room_id, user)
            if member and member.displayname:
                return member.displayname
        except Exception as e:
            log.debug("No member info for %s in %s: %s", user, room_id, e)
        return user.split(":", 1)[0].lstrip("@")

    async def _reply_target(
        self, portal: Portal, room_id: RoomID, relates: dict[str, Any]
    ) -> MessageRef | None:
        reply = relates.get("m.in_reply_to") or {}
        target_id = reply.get("event_id") if isinstance(reply, dict) else None
        if not isinstance(target_id, str):
            return None
        target = await Message.get_by_event(room_id, EventID(target_id))
        if target is None:
            return None
        return message_ref(target)

    def _media(self, content: dict[str, Any], info: dict[str, Any], msgtype: str) -> MatrixMedia:
        url = ContentURI(content["url"])
        names = (content.get("filename"), content.get("body"), "file")
        filename = next(name for name in names if isinstance(name, str) and name)
        size = info.get("size") if isinstance(info.get("size"), int) else None
        mimetype = info.get("mimetype") if _text(info.get("mimetype")) else None
        kind = mimetype or "application/octet-stream"
        return MatrixMedia(
            url=url,
            filename=filename,
            mimetype=kind,
            size=size,
            download=lambda: self.bot.download_media(url),
            open=lambda limit: download_to_file(self.bot, url, kind, limit=limit),
        )

    async def _edit(
        self, item: QueueItem, portal: Portal, evt: dict[str, Any], relates: dict[str, Any]
    ) -> None:
        room_id = RoomID(evt["room_id"])
        event_id = EventID(evt["event_id"])
        target_id = relates.get("event_id")
        if not isinstance(target_id, str):
            return
        target = await Message.get_by_event(room_id, EventID(target_id))
        if target is None:
            return
        if target.sender is not None or target.sender_mxid != evt["sender"]:
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
        new = _object(_object(evt.get("content")).get("m.new_content"))
        sender = UserID(evt["sender"])
        name = await self.displayname(room_id, sender)
        prefix = self.config.sender_prefix_template.format(displayname=name, mxid=sender)
        body: str = new["body"] if isinstance(new.get("body"), str) else ""
        html_body = None
        if new.get("format") == "org.matrix.custom.html" and isinstance(
            new.get("formatted_body"), str
        ):
            html_body = html.escape(prefix) + new["formatted_body"]
        key = _key(portal)
        ref = message_ref(target)
        edit = MatrixEdit(key, event_id, sender, ref, prefix + body, html_body)
        await self.deliver(item, portal, room_id, event_id, lambda: _done(
            connector.handle_matrix_edit(edit)
        ))  # fmt: skip


def _is_matrix_user(sender: str) -> bool:
    """Whether a reaction's recorded sender is a staff member's Matrix ID (a customer's
    reaction records their remote id)."""
    return sender.startswith("@") and ":" in sender


def _object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (hostile events have any type
    anywhere)."""
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _seconds(timestamp_ms: Any) -> float | None:
    """A Matrix millisecond timestamp in seconds, None when it is no sensible number."""
    if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int | float):
        return None
    try:
        seconds = timestamp_ms / 1000
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


async def _record(what: str, write: Callable[[], Awaitable[None]]) -> None:
    """Store what a delivery changed. The remote side has the message now: if the database
    fails here, running the queue item again would deliver it a second time, so the write
    itself is retried until the database is back."""
    await until_done(
        f"record {what}", write, log=log, first_delay=RECORD_RETRY,
        max_delay=RECORD_RETRY_MAX, traceback=False,
    )  # fmt: skip


def _key(portal: Portal) -> PortalKey:
    return PortalKey(AccountID(portal.account), RemoteChatID(portal.chat))


async def _done(awaitable: Awaitable[None]) -> SentMessage:
    await awaitable
    return SentMessage(message_id="")  # type: ignore[arg-type]


def message_ref(target: Message) -> MessageRef:
    return MessageRef(
        MessageID(target.message_id),
        RemoteUserID(target.sender) if target.sender else None,
        target.timestamp / 1000,
    )


def _ntxn(item: QueueItem) -> str:
    return txn_id("notice", str(item.id), str(item.created_at))


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
