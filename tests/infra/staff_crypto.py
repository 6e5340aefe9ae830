"""End-to-end encryption for :class:`~tests.infra.staff.StaffClient` (matrix-nio's ``e2e`` extra).

An encrypted staff client is a fresh device with its own Olm account, kept in a temporary
directory that is removed on close.  Its keys are uploaded right after login.

Trust model, on purpose the simplest that works: the staff client **trusts every device
without verification**, as a staff member who clicks "send anyway" in Element would.  Room
keys go to every device of every joined member (nio's ``ignore_unverified_devices``), and
events from unverified devices are decrypted and recorded like any other.  There is no
cross-signing, no key backup and no key requests or forwarding: a key that never arrives
leaves its event undecrypted.

Before each encrypted send the member list and the members' device keys are fetched again
(``/joined_members`` and ``/keys/query``), so a member or device that appeared since the last
``/sync`` (the bridge creating its device, a customer ghost joining) still gets the room key.
Reactions are encrypted too (nio's ``room_send`` leaves ``m.reaction`` in the clear); as in
every client, ``m.relates_to`` stays in the cleartext part of the ``m.room.encrypted`` content.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

from nio import (
    AsyncClient,
    JoinedMembersResponse,
    KeysQueryResponse,
    KeysUploadResponse,
    MegolmEvent,
    ToDeviceResponse,
)
from nio import (
    Event as NioEvent,
)
from nio.crypto import decrypt_attachment, encrypt_attachment
from nio.exceptions import EncryptionError

from .staff_events import Event, StaffError

__all__ = ["StaffCrypto", "event_dict"]

Call = Callable[[str, Awaitable[Any], Any], Awaitable[Any]]


def event_dict(ev: Any, room_id: str, *, encrypted_mode: bool) -> Event:
    """The raw dict of a nio timeline event, ``room_id`` filled in.

    In encrypted mode a decrypted event is its plaintext (real ``type`` and ``content``, with
    ``event_id``, ``sender``, ``origin_server_ts``) and an event still encrypted is its
    ``m.room.encrypted`` source; both carry ``"encrypted": True``.
    """
    source: Event = dict(getattr(ev, "source", None) or {})
    if not encrypted_mode:
        return dict(source, room_id=source.get("room_id", room_id))
    if getattr(ev, "decrypted", False):
        return dict(source, room_id=room_id, encrypted=True)
    source.setdefault("room_id", room_id)
    if source.get("type") == "m.room.encrypted":
        source["encrypted"] = True
    return source


class StaffCrypto:
    """The E2EE side of one staff client: its store, keys, room-key sharing and media crypto."""

    def __init__(self, client: AsyncClient, store_dir: str, call: Call) -> None:
        self.nio = client
        self.store_dir = store_dir
        self._call = call
        self._send_lock = asyncio.Lock()
        #: undecrypted timeline events by event id: the nio event and its index in ``events``
        self.pending: dict[str, tuple[MegolmEvent, int]] = {}

    @staticmethod
    def new_store_dir() -> str:
        return tempfile.mkdtemp(prefix="staff-e2ee-")

    def close(self) -> None:
        store = self.nio.store
        if store is not None:
            store.database.close()
        shutil.rmtree(self.store_dir, ignore_errors=True)

    # ------------------------------------------------------------------ keys

    async def upload_keys(self) -> None:
        """Upload device keys (first call) and top up one-time keys when nio asks for it."""
        if self.nio.should_upload_keys:
            await self._call("upload keys", self.nio.keys_upload(), KeysUploadResponse)

    async def after_sync(self) -> None:
        """Housekeeping a client does after each ``/sync``: keys, queued to-device messages."""
        await self.upload_keys()
        if self.nio.should_query_keys:
            await self._call("query keys", self.nio.keys_query(), KeysQueryResponse)
        if self.nio.outgoing_to_device_messages:
            for resp in await self.nio.send_to_device_messages():
                if not isinstance(resp, ToDeviceResponse):
                    raise StaffError(f"sending to-device messages failed: {resp}")

    def retry(self) -> list[tuple[int, NioEvent]]:
        """Decrypt pending events whose key has arrived: ``(index in events, event)`` pairs."""
        done: list[tuple[int, NioEvent]] = []
        for event_id, (ev, index) in list(self.pending.items()):
            try:
                decrypted = self.nio.decrypt_event(ev)
            except EncryptionError:
                continue
            del self.pending[event_id]
            done.append((index, decrypted))
        return done

    # ------------------------------------------------------------------ sending

    def room_encrypted(self, room_id: str) -> bool | None:
        """Whether nio knows ``room_id`` as encrypted; None if it has not synced the room."""
        room = self.nio.rooms.get(room_id)
        return None if room is None else bool(room.encrypted)

    async def encrypt(
        self, room_id: str, event_type: str, content: dict[str, Any]
    ) -> dict[str, Any]:
        """The ``m.room.encrypted`` content for an event, after sharing the room key."""
        async with self._send_lock:  # one key share at a time
            room = self.nio.rooms[room_id]
            before = set(room.users)
            await self._call(
                f"members of {room_id}", self.nio.joined_members(room_id), JoinedMembersResponse
            )
            if set(room.users) != before:  # a new key for the new set of members
                self.nio.invalidate_outbound_session(room_id)
            assert self.nio.olm is not None
            self.nio.olm.add_changed_users(set(room.users))
            await self._call("query keys", self.nio.keys_query(), KeysQueryResponse)
            if self.nio.olm.should_share_group_session(room_id):
                await self.nio.share_group_session(room_id, ignore_unverified_devices=True)
            _type, encrypted = self.nio.encrypt(room_id, event_type, content)
            return encrypted

    # ------------------------------------------------------------------ media

    @staticmethod
    def encrypt_file(data: bytes) -> tuple[bytes, dict[str, Any]]:
        """Ciphertext and the EncryptedFile fields but ``url`` (``key``, ``iv``, ``hashes``,
        ``v``)."""
        return encrypt_attachment(data)

    @staticmethod
    def decrypt_file(ciphertext: bytes, file: dict[str, Any]) -> bytes:
        """Plaintext of an EncryptedFile's ciphertext; :class:`EncryptionError` if the SHA-256
        in ``hashes`` does not match."""
        if file.get("v") != "v2":
            raise EncryptionError(f"unsupported EncryptedFile version {file.get('v')!r}")
        return bytes(
            decrypt_attachment(ciphertext, file["key"]["k"], file["hashes"]["sha256"], file["iv"])
        )
