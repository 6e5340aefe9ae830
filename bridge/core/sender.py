"""The one place the bridge calls the homeserver: every message, state event, redaction,
receipt, upload and download, for the bot and for ghosts, goes through ``MatrixSender``.

Encryption (one layer that encrypts and decrypts) and metrics (one place that counts) plug in
here; no other module holds an ``IntentAPI``. Callers name who acts by user ID (``None``: the
bridge bot)."""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import aiohttp
from mautrix.api import Method, Path
from mautrix.appservice import AppServiceAPI, IntentAPI
from mautrix.errors import MatrixRequestError
from mautrix.types import (
    ContentURI,
    EventID,
    EventType,
    Member,
    RoomAlias,
    RoomID,
    SpecVersions,
    StateEvent,
    UserID,
)
from yarl import URL

from ..events import MatrixMedia
from ..logsafe import pii
from ..media import MediaFile
from ..metrics.registry import BridgeMetrics
from .crypto.attachments import (
    AttachmentError,
    decrypt_response,
    encrypt_media,
    parse_encrypted_file,
)
from .crypto.marks import Undecryptable, txn_mark

if TYPE_CHECKING:
    from .crypto.machine import Encryption

log = logging.getLogger("bridge.sender")
T = TypeVar("T")

TXN_KEY = "net.business_bridge.txn_id"
"""In the content of every event the bridge sends with a transaction id: that id, so an event
stored before a lost answer is found again instead of sent twice."""
LOOKBACK = 100
"""Events searched for one whose sending failed without an answer."""
INTENTS = 10_000
"""Ghosts whose API objects are kept (the most recently used)."""
ENCRYPTION = {"algorithm": "m.megolm.v1.aes-sha2"}
"""The ``m.room.encryption`` content of rooms the bridge creates encrypted."""
ADMIN_TIMEOUT = 30.0
"""Seconds an admin API request may take."""


TIMELINE_FILTER = {"lazy_load_members": True, "include_redundant_members": False}


class Refused(Exception):
    """The homeserver gave a final answer (a 4xx other than a rate limit): the same request
    gets the same answer again."""

    def __init__(self, error: MatrixRequestError) -> None:
        super().__init__(f"{error.errcode} {error.message}")
        self.error = error


def refused(e: MatrixRequestError) -> bool:
    """A final answer of the homeserver: a 4xx other than a rate limit."""
    return 400 <= e.http_status < 500 and e.http_status != 429 and e.errcode != "M_LIMIT_EXCEEDED"


class MatrixSender:
    def __init__(
        self, api: AppServiceAPI, bot_mxid: UserID, metrics: BridgeMetrics | None = None
    ) -> None:
        self.api = api
        self.metrics = metrics or BridgeMetrics()
        """What the handlers count in; its ``reachability`` is told by every send and ping."""
        self.bot_mxid = bot_mxid
        self.bot: IntentAPI = api.bot_intent()
        self._unsure: set[str] = set()
        """Transactions whose last sending failed without telling whether it was stored."""
        self._intents: OrderedDict[str, IntentAPI] = OrderedDict()
        self.on_sent: Callable[[str], None] | None = None
        """Told the room of every event the bridge sent (the catch-up's room activity)."""
        self.crypto: Encryption | None = None
        """The bot's device, when encryption is allowed: what goes into an encrypted room is
        encrypted here, and encrypted events are decrypted here (``decrypt``)."""

    def _intent(self, user: UserID | str | None) -> IntentAPI:
        if user is None or user == self.bot_mxid:
            return self.bot
        intent = self._intents.get(user)
        if intent is None:
            intent = self._intents[user] = self.api.intent(UserID(user))
            if len(self._intents) > INTENTS:
                self._intents.popitem(last=False)
        else:
            self._intents.move_to_end(user)
        return intent

    # ------------------------------------------------------------------ events

    async def send(
        self,
        room_id: RoomID | str,
        content: dict[str, Any],
        *,
        event_type: EventType = EventType.ROOM_MESSAGE,
        txn: str | None = None,
        as_user: UserID | str | None = None,
    ) -> EventID:
        """Send an event. With ``txn`` (a deterministic transaction id) a retry never
        doubles it: not at the homeserver, and not after the homeserver lost the transaction
        id in a restart (the room is searched for the event before sending again). A final
        refusal raises ``Refused``."""
        intent = self._intent(as_user)
        room = RoomID(room_id)
        if txn is not None:
            content[TXN_KEY] = txn
            if txn in self._unsure:
                sent = await self._find_sent(intent, room, txn)
                if sent is not None:
                    self._unsure.discard(txn)
                    return sent
        if self.crypto is not None and await self.crypto.is_encrypted(room):
            content = await self.crypto.encrypt(room, event_type, content)
            event_type = EventType.ROOM_ENCRYPTED
            if txn is not None:
                content[TXN_KEY] = txn_mark(txn)
        try:
            event_id = await intent.send_message_event(
                room, event_type, cast(Any, content), txn_id=txn
            )
        except MatrixRequestError as e:
            self._answered(e)
            if refused(e):
                raise Refused(e) from e
            if txn is not None:
                self._unsure.add(txn)
            raise
        except Exception:
            self.metrics.reachability.failed()
            if txn is not None:
                self._unsure.add(txn)
            raise
        self.metrics.reachability.ok()
        if txn is not None:
            self._unsure.discard(txn)
        if self.on_sent is not None:
            self.on_sent(room)
        return event_id

    async def _find_sent(self, intent: IntentAPI, room_id: RoomID, txn: str) -> EventID | None:
        path = Path.v3.rooms[room_id].messages
        query = {"dir": "b", "limit": str(LOOKBACK)}
        answer = await intent.api.request(Method.GET, path, query_params=query)
        marks = (txn, txn_mark(txn))
        for evt in answer.get("chunk", []):
            content = evt.get("content")
            if (
                evt.get("sender") == intent.mxid
                and isinstance(content, dict)
                and content.get(TXN_KEY) in marks
            ):
                log.info("Event of transaction %s was stored before: %s", txn, evt["event_id"])
                return EventID(evt["event_id"])
        return None

    async def decrypt(self, event: dict[str, Any]) -> dict[str, Any]:
        """The plaintext of an ``m.room.encrypted`` event (raises ``Undecryptable``)."""
        if self.crypto is None:
            raise Undecryptable("encryption is not allowed in this bridge's config")
        return await self.crypto.decrypt(event)

    async def messages(
        self, room_id: str, start: str | None, limit: int
    ) -> tuple[list[Any], list[Any], str | None]:
        """One page of the room's timeline as the bot sees it, newest first (``/messages``
        backwards from ``start``; None: the newest event), encrypted events decrypted where the
        bridge has their keys, with the member events of its senders (lazy loading). Returns
        the raw events, those member events and the token of the next older page (None: the
        room's beginning was reached)."""
        path = Path.v3.rooms[RoomID(room_id)].messages
        query = {
            "dir": "b",
            "limit": str(limit),
            "filter": json.dumps({"lazy_load_members": True}),
        }
        if start is not None:
            query["from"] = start
        answer = await self.bot.api.request(Method.GET, path, query_params=query)
        chunk, state, end = answer.get("chunk"), answer.get("state"), answer.get("end")
        if isinstance(chunk, list) and self.crypto is not None:
            chunk = [await self._readable(evt) for evt in chunk]
        return (
            chunk if isinstance(chunk, list) else [],
            state if isinstance(state, list) else [],
            end if isinstance(end, str) and chunk else None,
        )

    async def timeline(
        self, room_id: str, start: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the room's timeline as the homeserver stored it, newest first
        (``/messages`` backwards from ``start``, None: the newest event), as the bot, without
        member state; and the token of the next older page (None: the beginning). A final
        refusal raises ``Refused``."""
        path = Path.v3.rooms[RoomID(room_id)].messages
        query = {"dir": "b", "limit": str(limit), "filter": json.dumps(TIMELINE_FILTER)}
        if start is not None:
            query["from"] = start
        try:
            request = self.bot.api.request(Method.GET, path, query_params=query)
            answer = await self._reach(request)
        except MatrixRequestError as e:
            if refused(e):  # the bot is not in the room (any more): it stays so
                raise Refused(e) from e
            raise
        chunk, end = answer.get("chunk"), answer.get("end")
        events = [e for e in chunk if isinstance(e, dict)] if isinstance(chunk, list) else []
        return events, end if isinstance(end, str) and events else None

    async def _readable(self, evt: Any) -> Any:
        """A timeline event decrypted when the bridge holds its key (its own messages and
        what it received), else as it is."""
        if self.crypto is None or not isinstance(evt, dict):
            return evt
        if evt.get("type") != EventType.ROOM_ENCRYPTED.t or "state_key" in evt:
            return evt
        try:
            return await self.crypto.decrypt(evt, wait=0)
        except Exception as e:
            log.debug("Event %s of the history stays encrypted: %s", evt.get("event_id"), e)
            return evt

    async def redact(
        self, room_id: str, event_id: str, txn: str, *, as_user: UserID | str | None = None
    ) -> None:
        intent = self._intent(as_user)
        await intent.ensure_joined(RoomID(room_id))
        path = Path.v3.rooms[RoomID(room_id)].redact[EventID(event_id)][txn]
        await intent.api.request(Method.PUT, path, {})

    async def mark_read(
        self, room_id: str, event_id: str, *, as_user: UserID | str | None
    ) -> None:
        await self._intent(as_user).mark_read(RoomID(room_id), EventID(event_id))

    async def set_typing(self, room_id: str, timeout_ms: int, *, as_user: UserID | str) -> None:
        await self._intent(as_user).set_typing(RoomID(room_id), timeout=timeout_ms)

    # ------------------------------------------------------------------ media

    async def upload(
        self,
        data: bytes | MediaFile,
        mimetype: str,
        filename: str,
        *,
        as_user: UserID | str | None = None,
    ) -> tuple[ContentURI, int]:
        """Upload to the media repository; a ``MediaFile`` goes in chunks (never whole in
        memory). Returns the URI and the size."""
        intent = self._intent(as_user)
        if isinstance(data, MediaFile):
            chunks: AsyncIterable[bytes] = data.chunks()
            mxc = await intent.upload_media(
                chunks, mime_type=mimetype, filename=filename, size=data.size
            )
            return mxc, data.size
        mxc = await intent.upload_media(data, mime_type=mimetype, filename=filename)
        return mxc, len(data)

    async def upload_to_room(
        self,
        room_id: str,
        data: bytes | MediaFile,
        mimetype: str,
        filename: str,
        *,
        as_user: UserID | str | None = None,
    ) -> tuple[dict[str, Any], int]:
        """Upload a file for a message in ``room_id``: encrypted (an ``EncryptedFile``) when
        the room is. Returns the content fields that point at it (``url`` or ``file``) and the
        file's size."""
        if self.crypto is None or not await self.crypto.is_encrypted(RoomID(room_id)):
            mxc, size = await self.upload(data, mimetype, filename, as_user=as_user)
            return {"url": mxc}, size
        size = data.size if isinstance(data, MediaFile) else len(data)
        sealed, file = await encrypt_media(data, mimetype)
        with sealed:
            file.url, _ = await self.upload(
                sealed, "application/octet-stream", "", as_user=as_user
            )
        return {"file": file.serialize()}, size

    def media(
        self,
        url: str,
        filename: str,
        mimetype: str,
        size: int | None,
        file: dict[str, Any] | None = None,
    ) -> MatrixMedia:
        """A file of the media repository as connectors take it: fetched only when they ask,
        whole (``download``) or streamed into a spool (``open``); an encrypted one (``file``,
        an ``EncryptedFile``) is decrypted on the way and its hash checked."""
        if file is not None:
            return MatrixMedia(
                url=url,
                filename=filename,
                mimetype=mimetype,
                size=size,
                download=lambda: self._download_encrypted(file, mimetype),
                open=lambda limit: self.download_to_file(url, mimetype, limit=limit, file=file),
            )
        return MatrixMedia(
            url=url,
            filename=filename,
            mimetype=mimetype,
            size=size,
            download=lambda: self.download(url),
            open=lambda limit: self.download_to_file(url, mimetype, limit=limit),
        )

    async def _download_encrypted(self, file: dict[str, Any], mimetype: str) -> bytes:
        with await self.download_to_file(file["url"], mimetype, file=file) as media:
            return await media.read()

    async def download(self, url: str) -> bytes:
        return await self.bot.download_media(ContentURI(url))

    async def download_to_file(
        self,
        url: str,
        mimetype: str,
        *,
        limit: int | None = None,
        file: dict[str, Any] | None = None,
    ) -> MediaFile:
        """The file at ``url`` as a ``MediaFile``, never held whole in memory (mautrix's
        ``download_media`` reads the whole body); with ``file`` (an ``EncryptedFile``)
        decrypted as it arrives. Raises ``FileTooLarge`` past ``limit``, ``AttachmentError``
        for an encrypted file that is malformed or does not match its hash."""
        intent = self.bot
        authenticated = bool((await intent.versions()).supports(SpecVersions.V111))
        full_url = intent.api.get_download_url(ContentURI(url), authenticated=authenticated)
        query: dict[str, Any] = {"allow_redirect": "true"}
        headers: dict[str, str] = {}
        if authenticated:
            headers["Authorization"] = f"Bearer {intent.api.token}"
            if intent.api.as_user_id:
                query["user_id"] = intent.api.as_user_id
        sealed = parse_encrypted_file(file) if file is not None else None
        if file is not None and sealed is None:
            raise AttachmentError("the encrypted file's keys are malformed")
        async with intent.api.session.get(full_url, params=query, headers=headers) as resp:
            resp.raise_for_status()
            if sealed is not None:
                return await decrypt_response(resp, sealed, mimetype, limit=limit)
            return await MediaFile.from_response(resp, limit=limit, mimetype=mimetype)

    # ------------------------------------------------------------------ users

    async def ensure_registered(self, user: UserID | str | None = None) -> None:
        await self._intent(user).ensure_registered()

    async def set_displayname(self, name: str, *, as_user: UserID | str | None = None) -> None:
        await self._intent(as_user).set_displayname(name)

    async def set_avatar(self, mxc: ContentURI, *, as_user: UserID | str) -> None:
        await self._intent(as_user).set_avatar_url(mxc)

    async def clear_avatar(self, *, as_user: UserID | str) -> None:
        await self._intent(as_user).set_avatar_url(ContentURI(""))

    async def admin_delete_media(
        self, hs_address: URL, token: str, server: str, media_id: str
    ) -> bool:
        """Delete a file of the media repository through Synapse's admin API (``DELETE
        /_synapse/admin/v1/media/<server>/<id>``) with an admin's ``token``. True: deleted,
        or no such file (a repeat); False: refused."""
        url = hs_address / "_synapse/admin/v1/media" / server / media_id
        headers = {"Authorization": f"Bearer {token}"}
        timeout = aiohttp.ClientTimeout(total=ADMIN_TIMEOUT)
        async with self.api.session.delete(url, headers=headers, timeout=timeout) as resp:
            if resp.status in (200, 404):
                return True
            if resp.status >= 500 or resp.status == 429:
                raise ConnectionError(f"admin media deletion answered {resp.status}")
            return False

    async def ensure_joined(self, room_id: str, *, as_user: UserID | str) -> None:
        await self._intent(as_user).ensure_joined(RoomID(room_id))

    async def leave(self, room_id: str, *, as_user: UserID | str) -> None:
        await self._intent(as_user).leave_room(RoomID(room_id))

    # ------------------------------------------------------------------ rooms (as the bot)

    async def create_room(
        self,
        alias_localpart: str,
        name: str,
        topic: str,
        invitees: list[UserID],
        power_users: dict[UserID, int],
        *,
        space: bool = False,
        state: list[dict[str, Any]] | None = None,
    ) -> RoomID:
        """A new room, the bot its creator; ``state``: more events of its initial state."""
        initial_state = list(state or ())
        encrypted = self.crypto is not None and self.crypto.settings.default and not space
        if encrypted:
            initial_state.append(
                {"type": "m.room.encryption", "state_key": "", "content": ENCRYPTION}
            )
        room_id = await self.bot.create_room(
            alias_localpart=alias_localpart,
            name=name,
            topic=topic,
            invitees=invitees,
            power_level_override={"users": power_users},
            creation_content={"type": "m.space"} if space else None,
            initial_state=initial_state,
        )
        if encrypted and self.crypto is not None:
            self.crypto.encryption_state(room_id, ENCRYPTION)
        return room_id

    async def set_state(
        self, room_id: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> None:
        await self.bot.send_state_event(
            RoomID(room_id), EventType.find(event_type, EventType.Class.STATE), content, state_key
        )

    async def resolve_alias(self, alias: str) -> RoomID:
        return (await self.bot.resolve_room_alias(RoomAlias(alias))).room_id

    async def remove_alias(self, alias_localpart: str) -> None:
        await self.bot.remove_room_alias(alias_localpart)

    async def invite(self, room_id: str, user: UserID | str) -> None:
        await self.bot.invite_user(RoomID(room_id), UserID(user))
        if self.crypto is not None:
            # The next message goes out in a session shared with the invitee too, also when
            # it is sent before the invite comes back in a transaction.
            await self.crypto.member(room_id, str(user), "invite", None)

    async def kick(self, room_id: str, user: str, reason: str) -> None:
        await self.bot.kick_user(RoomID(room_id), UserID(user), reason)

    async def join(self, room_id: str) -> None:
        await self.bot.join_room(RoomID(room_id))

    async def set_room_name(self, room_id: str, name: str) -> None:
        await self.bot.set_room_name(RoomID(room_id), name)

    async def set_room_avatar(self, room_id: str, mxc: ContentURI) -> None:
        await self.bot.set_room_avatar(RoomID(room_id), mxc)

    async def joined_members(self, room_id: str) -> list[UserID]:
        return list(await self.bot.get_joined_members(RoomID(room_id)))

    async def members(self, room_id: str) -> list[StateEvent]:
        return list(await self.bot.get_members(RoomID(room_id)))

    async def member_info(self, room_id: str, user: str, *, fresh: bool = False) -> Member | None:
        """``user``'s membership event in ``room_id``; ``fresh``: asked of the homeserver, not
        the state store (which follows the events as they are handled, so may lag)."""
        return await self.bot.get_room_member_info(RoomID(room_id), UserID(user), fresh)

    async def displayname(self, room_id: str, user: str) -> str:
        """``user``'s name in ``room_id``, else their localpart."""
        try:
            member = await self.member_info(room_id, user)
            if member and member.displayname:
                return member.displayname
        except Exception as e:
            log.debug("No member info for %s in %s: %s", pii(user), room_id, e)
        return user.split(":", 1)[0].lstrip("@")

    # ------------------------------------------------------------------ homeserver

    async def versions(self) -> None:
        await self._reach(self.bot.versions())

    async def ping(self, appservice_id: str) -> int:
        return await self._reach(self.bot.appservice_ping(appservice_id))

    async def _reach(self, request: Awaitable[T]) -> T:
        """``request``'s answer; the homeserver's reachability told of it."""
        try:
            answer = await request
        except MatrixRequestError as e:
            self._answered(e)
            raise
        except Exception:
            self.metrics.reachability.failed()
            raise
        self.metrics.reachability.ok()
        return answer

    def _answered(self, e: MatrixRequestError) -> None:
        """A 5xx is a proxy's (or a homeserver's) failure; any other status is an answer."""
        if e.http_status >= 500 or e.http_status == 0:
            self.metrics.reachability.failed()
        else:
            self.metrics.reachability.ok()
