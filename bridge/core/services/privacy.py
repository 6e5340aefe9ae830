"""What a data protection feature needs of the core (``bridge.seams``, "Data protection"): a
room's whole timeline with the media its events refer to, redactions as the bot, files of the
media repository, deleting media through Synapse's admin API, retiring a ghost and removing a
conversation from the core's own tables with their caches.

Every step is idempotent, so that an erasure or a retention run killed midway repeats it after
a restart without harm."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from mautrix.errors import MatrixRequestError
from mautrix.util.async_db import Connection
from yarl import URL

from ...db import Ghost, Portal
from ...db.erasure import rows_touched
from ...db.keys import digest
from ...media import FileTooLarge
from ...seams import Timeline, TimelineEvent
from ..crypto.attachments import AttachmentError
from ..sender import refused
from ..util import conversation_key, txn_id
from .common import ServiceBase
from .history import HISTORY_LIMIT, Pages

log = logging.getLogger("bridge.privacy")


class PrivacyServices(ServiceBase):
    async def timeline(
        self, room_id: str, *, limit: int = HISTORY_LIMIT, state: bool = False
    ) -> Timeline:
        newest_first: list[TimelineEvent] = []
        pages = Pages(self.sender, room_id, limit)
        async for chunk, _state in pages:
            for raw in chunk:
                event = _event(raw, state)
                if event is not None:
                    newest_first.append(event)
        return Timeline(newest_first[::-1], pages.complete)

    async def redact(self, room_id: str, event_id: str, *, reason: str) -> bool:
        try:
            await self.sender.redact(room_id, event_id, txn_id("redact", room_id, event_id))
        except MatrixRequestError as e:
            if refused(e):
                log.warning("Could not redact %s in %s: %s", event_id, room_id, e)
                return False
            raise
        return True

    async def download(self, url: str, *, limit: int, file: dict[str, Any] | None = None) -> bytes:
        try:
            media = await self.sender.download_to_file(
                url, "application/octet-stream", limit=limit, file=file
            )
        except FileTooLarge as e:
            raise ValueError(f"the file is larger than {limit} bytes") from e
        except AttachmentError as e:  # a ValueError too, which here means "too large"
            raise OSError(f"the encrypted file could not be decrypted: {e}") from e
        with media:
            return await media.read()

    async def delete_media(self, url: str) -> bool:
        token = self.config.hs_admin_token
        parsed = URL(url)
        if token is None or parsed.scheme != "mxc" or not parsed.host:
            return False
        server, media_id = parsed.host, parsed.path.lstrip("/")
        if server != self.config.hs_domain or not media_id or "/" in media_id:
            return False
        return await self.sender.admin_delete_media(
            self.config.hs_address, token, server, media_id
        )

    async def retire_ghost(self, account: str, remote_user: str, rooms: Sequence[str]) -> None:
        ghost = await Ghost.get(account, remote_user)
        if ghost is None:
            return
        for room_id in rooms:
            try:
                await self.sender.leave(room_id, as_user=ghost.mxid)
            except MatrixRequestError as e:
                if not refused(e):
                    raise
        try:
            await self.sender.set_displayname("", as_user=ghost.mxid)
            await self.sender.clear_avatar(as_user=ghost.mxid)
        except MatrixRequestError as e:
            if not refused(e):
                raise
        await ghost.delete()

    async def ghosts_leave(self, room_id: str) -> int:
        left = 0
        for user in await self.sender.joined_members(room_id):
            if not self.ghosts.is_ghost(user):
                continue
            try:
                await self.sender.leave(room_id, as_user=user)
            except MatrixRequestError as e:
                if not refused(e):
                    raise
                continue
            left += 1
        return left

    async def erase_conversation(self, account: str, chat: str) -> int:
        portal = await Portal.get(account, chat)
        if portal is not None and portal.room_id:  # first: a rerun finds the row
            try:
                await self.sender.remove_alias(self.portals.alias_localpart(account, chat))
            except MatrixRequestError as e:
                if not refused(e):  # no such alias any more: done before
                    raise
        key, chat_key = conversation_key(account, chat), digest(chat)
        room = portal.room_id if portal is not None and portal.room_id else ""
        removed = 0
        conn: Connection
        async with Portal.db.acquire() as conn, conn.transaction():
            for query, args in (
                # Staff messages still waiting for their key (end-to-bridge encryption).
                ("DELETE FROM crypto_waiting WHERE room_id=$1", (room,)),
                ("DELETE FROM message WHERE account=$1 AND chat_key=$2", (account, chat_key)),
                ("DELETE FROM reaction WHERE account=$1 AND chat=$2", (account, chat)),
                ("DELETE FROM queue WHERE queue_key=$1", (key,)),
                ("DELETE FROM dead_letter WHERE queue_key=$1", (key,)),
                (
                    "DELETE FROM remote_dedup WHERE account=$1 AND substr(dedup_key, 1, $3)=$2",
                    (account, f"{chat}/", len(chat) + 1),
                ),
                ("DELETE FROM conversation WHERE account=$1 AND chat_key=$2", (account, chat_key)),
                (
                    "DELETE FROM conversation_data WHERE account=$1 AND chat_key=$2",
                    (account, chat_key),
                ),
                ("DELETE FROM portal WHERE account=$1 AND chat_key=$2", (account, chat_key)),
            ):
                removed += rows_touched(await conn.execute(query, *args))
        Portal.forget_cached()
        return removed


def _event(raw: Any, state: bool = False) -> TimelineEvent | None:
    if not isinstance(raw, dict) or ("state_key" in raw and not state):
        return None
    state_key = raw.get("state_key")
    if "state_key" in raw and not isinstance(state_key, str):
        return None
    event_id, sender, type_ = raw.get("event_id"), raw.get("sender"), raw.get("type")
    if not (isinstance(event_id, str) and isinstance(sender, str) and isinstance(type_, str)):
        return None
    content = raw.get("content")
    content = content if isinstance(content, dict) else {}
    unsigned = raw.get("unsigned")
    redacted = isinstance(unsigned, dict) and "redacted_because" in unsigned
    stamp = raw.get("origin_server_ts")
    return TimelineEvent(
        event_id=event_id,
        sender=sender,
        type=type_,
        timestamp=stamp if isinstance(stamp, int) and not isinstance(stamp, bool) else 0,
        content=content,
        media=media_urls(content),
        redacted=redacted,
        state_key=state_key,
    )


def media_urls(content: dict[str, Any]) -> tuple[str, ...]:
    """The ``mxc://`` URLs of an event's content: its file (plain or encrypted), its thumbnail
    (plain or encrypted), and those of an edit's new content."""
    found: list[str] = []
    for part in (content, content.get("m.new_content")):
        if not isinstance(part, dict):
            continue
        info = part.get("info")
        for holder in (part, info if isinstance(info, dict) else {}):
            for name in ("url", "thumbnail_url"):
                _add(found, holder.get(name))
            for name in ("file", "thumbnail_file"):
                file = holder.get(name)
                if isinstance(file, dict):
                    _add(found, file.get("url"))
    return tuple(found)


def _add(found: list[str], url: Any) -> None:
    if isinstance(url, str) and url.startswith("mxc://") and url not in found:
        found.append(url)


__all__ = ["PrivacyServices", "media_urls"]
