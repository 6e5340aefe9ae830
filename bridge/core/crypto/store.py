"""What mautrix's ``OlmMachine`` needs to know besides its keys: which rooms are encrypted and
who is in them (``RoomCrypto``, from the state events the bridge receives and, for a room it has
not seen yet, from the homeserver), and a crypto store that says when a new room key arrived
(``KeyStore``), so that messages waiting for that key are decrypted then."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, cast

from mautrix.client import Client
from mautrix.crypto import PgCryptoStore
from mautrix.crypto import StateStore as CryptoStateStore
from mautrix.crypto.sessions import InboundGroupSession
from mautrix.errors import MForbidden, MNotFound
from mautrix.types import (
    DeviceID,
    DeviceIdentity,
    EventType,
    IdentityKey,
    RoomEncryptionStateEventContent,
    RoomID,
    SessionID,
    UserID,
)
from mautrix.util.async_db import Database

log = logging.getLogger("bridge.crypto")

ROOMS = 100_000
"""Rooms whose encryption state and members are kept in memory (the most recently used)."""

SHARED_WITH = ("join", "invite")
"""Memberships whose devices get a room's keys."""

KeyArrived = Callable[[str, str], Awaitable[None]]
"""Told (room id, session id) once a room key is stored."""


class RoomCrypto(CryptoStateStore):
    """Encryption state and joined members of rooms, learnt from the state events of
    transactions and asked of the homeserver for a room not seen since the start."""

    def __init__(self, client: Client, is_ghost: Callable[[str], bool]) -> None:
        self.client = client
        self.is_ghost = is_ghost
        self._encryption: OrderedDict[str, RoomEncryptionStateEventContent | None] = OrderedDict()
        self._members: OrderedDict[str, set[str]] = OrderedDict()

    # ------------------------------------------------------------------ learning

    def learn_encryption(self, room_id: str, content: dict[str, Any]) -> None:
        try:
            parsed = RoomEncryptionStateEventContent.deserialize(cast(Any, content))
        except Exception:
            return
        _put(self._encryption, room_id, parsed)

    def learn_member(self, room_id: str, user: str, membership: str) -> None:
        members = self._members.get(room_id)
        if members is None:
            return  # asked of the homeserver when needed
        if membership in SHARED_WITH:
            members.add(user)
        else:
            members.discard(user)

    # ------------------------------------------------------------------ asking

    async def get_encryption_info(self, room_id: RoomID) -> RoomEncryptionStateEventContent | None:
        if room_id in self._encryption:
            self._encryption.move_to_end(room_id)
            return self._encryption[room_id]
        try:
            content = await self.client.get_state_event(room_id, EventType.ROOM_ENCRYPTION)
        except (MNotFound, MForbidden):
            content = None
        info = content if isinstance(content, RoomEncryptionStateEventContent) else None
        _put(self._encryption, room_id, info)
        return info

    async def is_encrypted(self, room_id: RoomID) -> bool:
        return await self.get_encryption_info(room_id) is not None

    async def members(self, room_id: str) -> list[UserID]:
        """The members whose devices get the room's keys, joined or invited (a staff member
        invited into a new conversation reads its first message once they join): staff, not
        ghosts (they have no devices; the bot's device encrypts for them)."""
        members = self._members.get(room_id)
        if members is None:
            events = await self.client.get_members(RoomID(room_id))
            members = {
                str(e.state_key)
                for e in events
                if str(getattr(e.content, "membership", "")) in SHARED_WITH
            }
            _put(self._members, room_id, members)
        else:
            self._members.move_to_end(room_id)
        return [UserID(u) for u in sorted(members) if not self.is_ghost(u)]

    async def find_shared_rooms(self, user_id: UserID) -> list[RoomID]:
        return [
            RoomID(room)
            for room, members in self._members.items()
            if user_id in members and self._encryption.get(room) is not None
        ]


class KeyStore(PgCryptoStore):
    """mautrix's crypto store in the bridge's database, telling ``on_key`` of every room key
    stored (received from a device, or made for the bridge's own messages).

    What every decryption reads is kept in memory after its first read, as written: the room
    key (its pickle is decrypted on every read otherwise), the sending device and its user's
    cross-signing keys; every write of them goes to the database first and replaces or drops
    the copy."""

    def __init__(self, account_id: str, pickle_key: str, db: Database) -> None:
        super().__init__(account_id, pickle_key, db)
        self.on_key: KeyArrived | None = None
        self._sessions: OrderedDict[tuple[str, str], InboundGroupSession] = OrderedDict()
        self._devices: OrderedDict[tuple[str, str], DeviceIdentity | None] = OrderedDict()
        self._cross_signing: OrderedDict[str, Any] = OrderedDict()

    async def get_group_session(
        self, room_id: RoomID, session_id: SessionID
    ) -> InboundGroupSession | None:
        key = (str(room_id), str(session_id))
        cached = self._sessions.get(key)
        if cached is not None:
            self._sessions.move_to_end(key)
            return cached
        session = await super().get_group_session(room_id, session_id)
        if session is not None:
            _put(self._sessions, (str(room_id), str(session_id)), session)
        return session

    async def redact_group_session(
        self, room_id: RoomID, session_id: SessionID, reason: str
    ) -> None:
        self._sessions.clear()
        await super().redact_group_session(room_id, session_id, reason)

    async def redact_group_sessions(
        self, room_id: RoomID | None, sender_key: IdentityKey | None, reason: str
    ) -> list[SessionID]:
        self._sessions.clear()
        return await super().redact_group_sessions(room_id, sender_key, reason)  # type: ignore[arg-type]

    async def redact_expired_group_sessions(self) -> list[SessionID]:
        self._sessions.clear()
        return await super().redact_expired_group_sessions()

    async def redact_outdated_group_sessions(self) -> list[SessionID]:
        self._sessions.clear()
        return await super().redact_outdated_group_sessions()

    async def find_device_by_key(
        self, user_id: UserID, identity_key: IdentityKey
    ) -> DeviceIdentity | None:
        key = (str(user_id), str(identity_key))
        if key in self._devices:
            return self._devices[key]
        device = await super().find_device_by_key(user_id, identity_key)
        _put(self._devices, key, device)
        return device

    async def put_devices(self, user_id: UserID, devices: dict[DeviceID, DeviceIdentity]) -> None:
        await super().put_devices(user_id, devices)
        for key in [k for k in self._devices if k[0] == user_id]:
            del self._devices[key]

    async def get_cross_signing_keys(self, user_id: UserID) -> Any:
        if user_id in self._cross_signing:
            return self._cross_signing[user_id]
        keys = await super().get_cross_signing_keys(user_id)
        _put(self._cross_signing, user_id, keys)
        return keys

    async def put_cross_signing_key(self, user_id: UserID, usage: Any, key: Any) -> None:
        await super().put_cross_signing_key(user_id, usage, key)
        self._cross_signing.pop(user_id, None)

    async def delete(self) -> None:
        self._sessions.clear()
        self._devices.clear()
        self._cross_signing.clear()
        await super().delete()

    async def put_group_session(
        self,
        room_id: RoomID,
        sender_key: IdentityKey,
        session_id: SessionID,
        session: InboundGroupSession,
    ) -> None:
        await super().put_group_session(room_id, sender_key, session_id, session)
        _put(self._sessions, (str(room_id), str(session_id)), session)
        if self.on_key is not None:
            await self.on_key(str(room_id), str(session_id))


def _put(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    if len(cache) > ROOMS:
        cache.popitem(last=False)
