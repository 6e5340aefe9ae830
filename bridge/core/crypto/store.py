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
    stored (received from a device, or made for the bridge's own messages)."""

    def __init__(self, account_id: str, pickle_key: str, db: Database) -> None:
        super().__init__(account_id, pickle_key, db)
        self.on_key: KeyArrived | None = None

    async def put_group_session(
        self,
        room_id: RoomID,
        sender_key: IdentityKey,
        session_id: SessionID,
        session: InboundGroupSession,
    ) -> None:
        await super().put_group_session(room_id, sender_key, session_id, session)
        if self.on_key is not None:
            await self.on_key(str(room_id), str(session_id))


def _put(cache: OrderedDict[str, Any], key: str, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    if len(cache) > ROOMS:
        cache.popitem(last=False)
