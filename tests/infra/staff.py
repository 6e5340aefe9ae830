"""The "staff user" of end-to-end tests: a thin async wrapper over matrix-nio's AsyncClient.

Everything that comes back from the homeserver is a raw event dict (nio's ``event.source``),
with ``room_id`` filled in, so tests assert on plain JSON::

    async with await StaffClient.login(hs.base_url, "@staff:localhost", "pw") as staff:
        room_id = await staff.create_room(invite=["@bridgebot:localhost"])
        await staff.send_text(room_id, "hello")
        ev = await staff.wait_for_event(match(room_id=room_id, sender=bot, body="hi"))

Syncing is done on demand (no background task): :meth:`wait_for_event` and
:meth:`wait_for_invite` long-poll ``/sync`` with the stored ``since`` token until something
matches.  Every timeline event ever seen is kept in :attr:`events`, so a predicate may match an
event that arrived before the call (``include_seen=False`` ignores those).

With ``encrypted=True`` (:meth:`StaffClient.login`, :meth:`StaffClient.from_token`) the client is
an E2EE device (see :mod:`tests.infra.staff_crypto` for what it trusts): it encrypts what it
sends to encrypted rooms, including files (:meth:`StaffClient.send_file`), and records events
decrypted, marked ``"encrypted": True``; an event whose key is missing is recorded as its
``m.room.encrypted`` source and replaced by its plaintext after the ``/sync`` that brings the key.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    JoinResponse,
    LoginResponse,
    MegolmEvent,
    RoomCreateResponse,
    RoomMessagesResponse,
    RoomPreset,
    RoomRedactResponse,
    RoomSendResponse,
    SyncResponse,
    UploadResponse,
    WhoamiResponse,
)
from nio.exceptions import EncryptionError
from nio.responses import DownloadResponse

from .staff_crypto import StaffCrypto, event_dict
from .staff_events import Event, EventPredicate, EventTimeout, StaffError, match, summary

__all__ = ["EventPredicate", "EventTimeout", "StaffClient", "StaffError", "match"]


class StaffClient:
    """A logged-in Matrix user driven by a test.  Use :meth:`login` or :meth:`from_token`."""

    #: seconds a single homeserver call may take (nio retries connection errors meanwhile,
    #: which rides out short homeserver restarts)
    call_timeout: float = 60.0

    def __init__(self, client: AsyncClient, store_dir: str | None = None) -> None:
        self.nio = client
        self.events: list[Event] = []
        self.pending_invites: dict[str, list[Event]] = {}
        self.joined_rooms: set[str] = set()
        self._seen_ids: set[str] = set()
        self._sync_lock = asyncio.Lock()
        self._synced_once = False
        #: events decrypted after they were recorded (each also replaced its entry in events)
        self._late: list[Event] = []
        self.crypto = None if store_dir is None else StaffCrypto(client, store_dir, self._call)

    # ------------------------------------------------------------------ construction

    @staticmethod
    def _new_nio(base_url: str, user_id: str = "", store_dir: str | None = None) -> AsyncClient:
        config = AsyncClientConfig(
            encryption_enabled=store_dir is not None,
            store_sync_tokens=False,
            max_timeout_retry_wait_time=1.0,
            request_timeout=60.0,
        )
        return AsyncClient(
            base_url.rstrip("/"), user_id, store_path=store_dir or "", config=config
        )

    @classmethod
    async def _start(
        cls, base_url: str, user_id: str, encrypted: bool, log_in: Callable[[AsyncClient], Any]
    ) -> StaffClient:
        store_dir = StaffCrypto.new_store_dir() if encrypted else None
        client = cls._new_nio(base_url, user_id, store_dir)
        staff = cls(client, store_dir)
        try:
            await log_in(client)
            if staff.crypto is not None:
                await staff.crypto.upload_keys()
        except BaseException:
            await staff.close()
            raise
        return staff

    @classmethod
    async def login(
        cls,
        base_url: str,
        user_id: str,
        password: str,
        *,
        device_name: str = "e2e-tests",
        encrypted: bool = False,
    ) -> StaffClient:
        """Log in with a new device; ``encrypted=True`` makes it an E2EE device."""

        async def log_in(client: AsyncClient) -> None:
            resp = await asyncio.wait_for(client.login(password, device_name=device_name), 60)
            if not isinstance(resp, LoginResponse):
                raise StaffError(f"login as {user_id} failed: {resp}")

        return await cls._start(base_url, user_id, encrypted, log_in)

    @classmethod
    async def from_token(
        cls,
        base_url: str,
        access_token: str,
        user_id: str | None = None,
        *,
        encrypted: bool = False,
    ) -> StaffClient:
        """Use an existing access token (e.g. from ``SynapseServer.register_user``).  With
        ``encrypted=True`` the token's device must not have E2EE keys yet (a fresh one has
        none): the client makes and uploads them."""

        async def log_in(client: AsyncClient) -> None:
            client.access_token = access_token
            resp = await asyncio.wait_for(client.whoami(), 60)
            if not isinstance(resp, WhoamiResponse):
                raise StaffError(f"whoami failed for the given token: {resp}")
            client.restore_login(resp.user_id, resp.device_id or "", access_token)

        return await cls._start(base_url, user_id or "", encrypted, log_in)

    async def close(self) -> None:
        """Close the HTTP session (always call this, or use ``async with``); an encrypted
        client's key store is deleted."""
        await self.nio.close()
        if self.crypto is not None:
            self.crypto.close()

    async def __aenter__(self) -> StaffClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def user_id(self) -> str:
        return str(self.nio.user_id)

    @property
    def access_token(self) -> str:
        return str(self.nio.access_token)

    @property
    def encrypted(self) -> bool:
        """Whether this client is an E2EE device."""
        return self.crypto is not None

    # ------------------------------------------------------------------ plumbing

    async def _call(self, what: str, coro: Any, ok: type | tuple[type, ...]) -> Any:
        try:
            resp = await asyncio.wait_for(coro, self.call_timeout)
        except TimeoutError:
            raise StaffError(f"{what}: no answer within {self.call_timeout:.0f}s") from None
        if isinstance(resp, ErrorResponse) or not isinstance(resp, ok):
            raise StaffError(f"{what} failed: {resp}")
        return resp

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        """Raw authenticated JSON call, ``path`` like ``/_matrix/client/v3/...``."""
        if self.nio.client_session is None:  # nio creates it lazily in its own calls
            await self.nio.whoami()
        headers = {
            "Authorization": f"Bearer {self.nio.access_token}",
            "Content-Type": "application/json",
        }
        data = None if body is None else json.dumps(body)
        resp = await asyncio.wait_for(
            self.nio.send(method, path, data, headers), self.call_timeout
        )
        try:
            text = await resp.text()
            if resp.status >= 400:
                raise StaffError(f"{method} {path} -> HTTP {resp.status}: {text}")
            return json.loads(text) if text else None
        finally:
            resp.release()

    # ------------------------------------------------------------------ rooms

    async def create_room(
        self,
        *,
        name: str | None = None,
        topic: str | None = None,
        invite: Iterable[str] = (),
        is_direct: bool = False,
        preset: RoomPreset | None = RoomPreset.private_chat,
        initial_state: Iterable[Event] = (),
    ) -> str:
        resp = await self._call(
            "create_room",
            self.nio.room_create(
                name=name,
                topic=topic,
                invite=list(invite),
                is_direct=is_direct,
                preset=preset,
                initial_state=list(initial_state),
            ),
            RoomCreateResponse,
        )
        self.joined_rooms.add(resp.room_id)
        return str(resp.room_id)

    async def join(self, room_id_or_alias: str) -> str:
        resp = await self._call(
            f"join {room_id_or_alias}", self.nio.join(room_id_or_alias), JoinResponse
        )
        self.pending_invites.pop(resp.room_id, None)
        self.joined_rooms.add(resp.room_id)
        return str(resp.room_id)

    async def leave(self, room_id: str) -> None:
        await self.api("POST", f"/_matrix/client/v3/rooms/{quote(room_id)}/leave", {})
        self.joined_rooms.discard(room_id)

    async def invite(self, room_id: str, user_id: str) -> None:
        await self.api(
            "POST", f"/_matrix/client/v3/rooms/{quote(room_id)}/invite", {"user_id": user_id}
        )

    async def get_state(self, room_id: str) -> list[Event]:
        result: list[Event] = await self.api(
            "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/state"
        )
        return result

    async def joined_members(self, room_id: str) -> list[str]:
        res = await self.api("GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/joined_members")
        return sorted(res["joined"])

    # ------------------------------------------------------------------ sending

    async def room_is_encrypted(self, room_id: str) -> bool:
        """Whether an encrypted client sends to ``room_id`` encrypted: the room's state as of the
        last ``/sync`` (one is made if the room was not synced yet).  Always False unencrypted."""
        if self.crypto is None:
            return False
        known = self.crypto.room_encrypted(room_id)
        if known is None:
            await self.sync_once(0)
            known = self.crypto.room_encrypted(room_id)
        return bool(known)

    async def send_event(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        """Send a room event, encrypted if :meth:`room_is_encrypted`."""
        if self.crypto is not None and await self.room_is_encrypted(room_id):
            encrypted = await self.crypto.encrypt(room_id, event_type, content)
            path = f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.encrypted/"
            res = await self.api("PUT", path + uuid.uuid4().hex, encrypted)
            return str(res["event_id"])
        resp = await self._call(
            f"send {event_type} to {room_id}",
            self.nio.room_send(room_id, event_type, content, ignore_unverified_devices=True),
            RoomSendResponse,
        )
        return str(resp.event_id)

    async def send_text(
        self,
        room_id: str,
        body: str,
        html: str | None = None,
        reply_to: str | None = None,
        *,
        msgtype: str = "m.text",
    ) -> str:
        """Send an ``m.room.message``; ``reply_to`` is the event id being replied to."""
        content: dict[str, Any] = {"msgtype": msgtype, "body": body}
        if html is not None:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = html
        if reply_to is not None:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        return await self.send_event(room_id, "m.room.message", content)

    async def edit(
        self, room_id: str, event_id: str, new_body: str, html: str | None = None
    ) -> str:
        """Send an ``m.replace`` edit of ``event_id``."""
        new_content: dict[str, Any] = {"msgtype": "m.text", "body": new_body}
        if html is not None:
            new_content["format"] = "org.matrix.custom.html"
            new_content["formatted_body"] = html
        content: dict[str, Any] = {
            "msgtype": "m.text",
            "body": f"* {new_body}",
            "m.new_content": new_content,
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
        }
        if html is not None:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = f"* {html}"
        return await self.send_event(room_id, "m.room.message", content)

    async def redact(self, room_id: str, event_id: str, reason: str | None = None) -> str:
        resp = await self._call(
            f"redact {event_id}",
            self.nio.room_redact(room_id, event_id, reason=reason),
            RoomRedactResponse,
        )
        return str(resp.event_id)

    async def react(self, room_id: str, event_id: str, key: str) -> str:
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        return await self.send_event(room_id, "m.reaction", content)

    async def send_file(
        self,
        room_id: str,
        data: bytes,
        filename: str,
        mimetype: str,
        msgtype: str = "m.file",
    ) -> str:
        """Upload ``data`` and send it as ``msgtype``; in an encrypted room the upload is
        ciphertext and the content has ``file`` (EncryptedFile) instead of ``url``."""
        encrypted = await self.room_is_encrypted(room_id)
        file_info: dict[str, Any] | None = None
        payload = data
        if self.crypto is not None and encrypted:
            payload, file_info = self.crypto.encrypt_file(data)
        resp, _ = await self._call(
            f"upload {filename}",
            self.nio.upload(
                lambda *_: payload,
                content_type="application/octet-stream" if encrypted else mimetype,
                filename=filename,
                filesize=len(payload),
            ),
            tuple,
        )
        if not isinstance(resp, UploadResponse):
            raise StaffError(f"upload {filename} failed: {resp}")
        content: dict[str, Any] = {
            "msgtype": msgtype,
            "body": filename,
            "filename": filename,
            "info": {"mimetype": mimetype, "size": len(data)},
        }
        if file_info is None:
            content["url"] = resp.content_uri
        else:
            content["file"] = {"url": resp.content_uri, **file_info}
        return await self.send_event(room_id, "m.room.message", content)

    async def download(self, content: dict[str, Any]) -> bytes:
        """The bytes of a media event's ``content``: ``url`` fetched, or ``file`` fetched and
        decrypted (its SHA-256 checked; :class:`StaffError` if it does not match)."""
        file = content.get("file")
        mxc = file["url"] if file else content["url"]
        resp = await self._call(f"download {mxc}", self.nio.download(mxc), DownloadResponse)
        if not file:
            return bytes(resp.body)
        try:
            return StaffCrypto.decrypt_file(bytes(resp.body), file)
        except EncryptionError as exc:
            raise StaffError(f"cannot decrypt {mxc}: {exc}") from None

    # ------------------------------------------------------------------ receiving

    async def sync_once(self, timeout: float = 0.0) -> None:  # noqa: ASYNC109
        """One ``/sync`` (long-polling up to ``timeout`` seconds); records events and invites."""
        async with self._sync_lock:
            resp = await self.nio.sync(timeout=int(timeout * 1000))
            if not isinstance(resp, SyncResponse):
                raise StaffError(f"sync failed: {resp}")
            self._synced_once = True
            self._record(resp)
            if self.crypto is not None:
                await self.crypto.after_sync()
                self._record_late()

    def _record(self, resp: SyncResponse) -> None:
        for room_id, info in resp.rooms.invite.items():
            if room_id not in self.joined_rooms:
                self.pending_invites[room_id] = [
                    dict(getattr(ev, "source", {}) or {}, room_id=room_id)
                    for ev in info.invite_state
                ]
        for room_id, room in resp.rooms.join.items():
            self.joined_rooms.add(room_id)
            self.pending_invites.pop(room_id, None)
            for ev in room.timeline.events:
                self._add_event(ev, room_id)
        for room_id, room in resp.rooms.leave.items():
            self.joined_rooms.discard(room_id)
            self.pending_invites.pop(room_id, None)
            for ev in room.timeline.events:
                self._add_event(ev, room_id)

    def _add_event(self, ev: Any, room_id: str) -> None:
        event_id = ev.source.get("event_id")
        if event_id in self._seen_ids:
            return
        if event_id:
            self._seen_ids.add(event_id)
        if self.crypto is not None and isinstance(ev, MegolmEvent) and event_id:
            self.crypto.pending[event_id] = (ev, len(self.events))
        self.events.append(event_dict(ev, room_id, encrypted_mode=self.crypto is not None))

    def _record_late(self) -> None:
        """Replace recorded undecryptable events whose key has arrived by their plaintext."""
        assert self.crypto is not None
        for index, ev in self.crypto.retry():
            decrypted = event_dict(ev, self.events[index]["room_id"], encrypted_mode=True)
            self.events[index] = decrypted
            self._late.append(decrypted)

    def find_events(self, predicate: EventPredicate, room_id: str | None = None) -> list[Event]:
        """All already-seen timeline events matching ``predicate`` (no syncing)."""
        return [
            ev
            for ev in self.events
            if (room_id is None or ev.get("room_id") == room_id) and predicate(ev)
        ]

    async def _sync_until(
        self,
        done: Callable[[], Any],
        timeout: float,  # noqa: ASYNC109
        what: str,
    ) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = done()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise EventTimeout(f"timed out after {timeout:.1f}s waiting for {what}")
            poll = 0.0 if not self._synced_once else min(remaining, 5.0)
            try:
                await asyncio.wait_for(self.sync_once(poll), remaining + 1.0)
            except TimeoutError:
                continue  # homeserver unreachable; nio kept retrying; loop re-checks deadline

    async def wait_for_event(
        self,
        predicate: EventPredicate,
        timeout: float = 30.0,  # noqa: ASYNC109
        *,
        room_id: str | None = None,
        include_seen: bool = True,
    ) -> Event:
        """Return the first timeline event (raw dict) for which ``predicate`` is true.

        Already-seen events are searched first unless ``include_seen=False``; then ``/sync`` is
        polled until a new event matches or ``timeout`` seconds pass (:class:`EventTimeout`,
        whose message lists the last events seen).
        """
        checked = 0 if include_seen else len(self.events)
        late_checked = len(self._late)

        def done() -> Event | None:
            nonlocal checked, late_checked
            new, checked = self.events[checked:], len(self.events)
            new += self._late[late_checked:]
            late_checked = len(self._late)
            for ev in new:
                if (room_id is None or ev.get("room_id") == room_id) and predicate(ev):
                    return ev
            return None

        try:
            result: Event = await self._sync_until(done, timeout, "a matching event")
        except EventTimeout as exc:
            recent = "\n  ".join(summary(ev) for ev in self.events[-15:]) or "(none)"
            raise EventTimeout(f"{exc}; last events seen:\n  {recent}") from None
        return result

    async def wait_for_events(
        self,
        predicate: EventPredicate,
        count: int,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> list[Event]:
        """Wait until at least ``count`` seen events match; return all that match."""

        def done() -> list[Event] | None:
            found = self.find_events(predicate)
            return found if len(found) >= count else None

        result: list[Event] = await self._sync_until(done, timeout, f"{count} matching events")
        return result

    async def wait_for_invite(self, timeout: float = 30.0) -> str:  # noqa: ASYNC109
        """Room id of a pending invite (the oldest one), syncing until one arrives."""

        def done() -> str | None:
            return next(iter(self.pending_invites), None)

        result: str = await self._sync_until(done, timeout, "an invite")
        return result

    async def accept_invites(self, timeout: float = 0.0) -> list[str]:  # noqa: ASYNC109
        """Join every pending invite (after a sync); with ``timeout`` > 0 wait for one first."""
        if timeout > 0:
            await self.wait_for_invite(timeout)
        else:
            await self.sync_once(0)
        return [await self.join(room_id) for room_id in list(self.pending_invites)]

    async def room_messages(self, room_id: str, limit: int = 1000) -> list[Event]:
        """All timeline events of ``room_id`` via ``/messages`` (oldest first, up to ``limit``)."""
        collected: list[Event] = []
        start: str | None = None
        while len(collected) < limit:
            resp = await self._call(
                f"messages of {room_id}",
                self.nio.room_messages(room_id, start=start, limit=min(100, limit)),
                RoomMessagesResponse,
            )
            collected.extend(self._history_event(ev, room_id) for ev in resp.chunk)
            if not resp.chunk or not resp.end or resp.end == start:
                break
            start = resp.end
        collected.reverse()
        return collected[-limit:]

    def _history_event(self, ev: Any, room_id: str) -> Event:
        # nio decrypted what it could; a key that arrived by a later /sync is tried here
        if self.crypto is not None and isinstance(ev, MegolmEvent):
            ev.room_id = ev.room_id or room_id
            try:
                ev = self.nio.decrypt_event(ev)
            except EncryptionError:
                pass
        return event_dict(ev, room_id, encrypted_mode=self.crypto is not None)
