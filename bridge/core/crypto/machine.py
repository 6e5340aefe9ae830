"""The bridge's Matrix device and what it does: mautrix's ``OlmMachine`` over a crypto store
in the bridge's own database, in appservice mode.

The bot has one device, created without a login (MSC4190) and kept in the database. The
homeserver pushes what a syncing client would get with the appservice transactions: to-device
messages (MSC2409: room keys, key requests), device list changes and one-time key counts
(MSC3202). The listener records the first two in the queue, under one ordering key of their own,
before it answers, so a room key the homeserver handed over is never lost to a crash; one-time
key counts are a state, not an event, and are acted on at once. (A key sent while the bridge
was down may never be handed over: Synapse does not resend to-device messages to an
appservice. A message waiting for its key therefore asks the sending device for it.)

Every message the bridge sends into an encrypted room, as the bot or as a ghost, is encrypted
with the bot device's Megolm session for that room, shared with the staff members' devices
(never with ghosts: they have none). A key request is answered only for a member of the room
(else ``m.unauthorised``), from a device trusted enough (else ``m.unverified``) and not
blacklisted (``m.blacklisted``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, cast

import aiohttp
from mautrix.client import Client
from mautrix.crypto import OlmMachine, RejectKeyShare
from mautrix.crypto.sessions import InboundGroupSession
from mautrix.errors import (
    DecryptionError,
    DuplicateMessageIndex,
    EncryptionError,
    GroupSessionWithheldError,
    MatrixError,
    MForbidden,
    MNotFound,
    SessionNotFound,
)
from mautrix.types import (
    ASToDeviceEvent,
    DeviceID,
    DeviceIdentity,
    DeviceLists,
    DeviceOTKCount,
    EncryptedEvent,
    EncryptionKeyAlgorithm,
    EventType,
    IdentityKey,
    RequestedKeyInfo,
    RoomID,
    RoomKeyWithheldCode,
    SessionID,
    TrustState,
    UserID,
)
from mautrix.util.async_db import Database

from ...config import Config
from ...logsafe import pii
from .marks import TO_DEVICE, Undecryptable
from .store import KeyArrived, KeyStore, RoomCrypto

log = logging.getLogger("bridge.crypto")

DEVICE_NAME = "Business Bridge"
MEGOLM = "m.megolm.v1.aes-sha2"


KEY_WAIT = 5.0
"""Seconds a message whose key is missing waits for it before the room is told (the key
usually comes in the same or the next transaction, handled beside the message)."""


class _Routine(logging.Filter):
    """mautrix warns of every staff device that is not cross-signed, at every key share: the
    common case (the trust levels decide what is done about it), kept for debug logs."""

    PHRASES = ("isn't cross-signed", "Didn't find cross-signing key")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and any(p in str(record.msg) for p in self.PHRASES):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


OLM_LOG = logging.getLogger("bridge.crypto.olm")
OLM_LOG.addFilter(_Routine())


class BridgeOlmMachine(OlmMachine):
    """mautrix's machine with two changes of order and cost (both on private methods of the
    pinned mautrix 0.21, as its bridges' own code does):

    * one-time keys are saved with the account before they are uploaded (mautrix saves after
      the upload: a kill in between left keys on the homeserver whose private halves were
      gone, and a staff device that claimed one could never give the bridge a room key);
    * a room key is not written back after every message it decrypts: the write only keeps
      the ratchet bookkeeping that key deletion (off here) uses."""

    async def _share_keys(self, current_otk_count: int | None) -> None:
        assert self.account is not None
        if current_otk_count is None:
            current_otk_count = (await self.client.upload_keys()).get(
                EncryptionKeyAlgorithm.SIGNED_CURVE25519, 0
            )
        device_keys = (
            None
            if self.account.shared
            else self.account.get_device_keys(self.client.mxid, self.client.device_id)
        )
        one_time_keys = self.account.get_one_time_keys(
            self.client.mxid, self.client.device_id, current_otk_count
        )
        if not device_keys and not one_time_keys:
            return
        self.account.mark_keys_as_published()
        await self.crypto_store.put_account(self.account)  # first: the private halves
        await self.client.upload_keys(one_time_keys=one_time_keys, device_keys=device_keys)
        self.account.shared = True
        self._last_key_share = time.monotonic()
        await self.crypto_store.put_account(self.account)

    async def _ratchet_session(self, sess: InboundGroupSession, index: int) -> None:
        if self.ratchet_keys_on_decrypt or self.delete_fully_used_keys_on_decrypt:
            await super()._ratchet_session(sess, index)


class Encryption:
    """The bot's device: encrypts, decrypts, and keeps its keys on the homeserver."""

    def __init__(
        self,
        config: Config,
        db: Database,
        session: aiohttp.ClientSession,
        is_ghost: Callable[[str], bool],
    ) -> None:
        self.config = config
        self.settings = config.encryption
        self.bot = UserID(config.bot_mxid)
        self.client = Client(
            mxid=self.bot,
            base_url=str(config.hs_address),
            token=config.as_token,
            client_session=session,
            log=logging.getLogger("bridge.crypto.api"),  # type: ignore[arg-type]
        )
        self.client.api.as_user_id = self.bot
        self.crypto_db = Database.create(
            config.db_url,
            upgrade_table=KeyStore.upgrade_table,
            log=logging.getLogger("bridge.crypto.db"),
        )
        self.crypto_db.override_pool(db)
        self.store = KeyStore(self.bot, self.settings.pickle_key, self.crypto_db)
        self.rooms = RoomCrypto(self.client, is_ghost)
        self.machine = BridgeOlmMachine(
            self.client,
            self.store,
            self.rooms,
            log=logging.getLogger("bridge.crypto.olm"),  # type: ignore[arg-type]
        )
        self.machine.allow_key_share = self._allow_key_share
        self.machine.send_keys_min_trust = TrustState.parse(self.settings.receive)
        self.machine.share_keys_min_trust = TrustState.parse(self.settings.share)
        self.min_send_trust = TrustState.parse(self.settings.send)
        self._share_locks: dict[str, asyncio.Lock] = {}
        self.ready = asyncio.Event()

    @property
    def device_id(self) -> str:
        return str(self.client.device_id)

    def on_key(self, callback: KeyArrived) -> None:
        self.store.on_key = callback

    # ------------------------------------------------------------------ start

    async def start(self) -> None:
        """Open the store and make sure the bot's device exists and its keys are on the
        homeserver (a device whose keys are gone, e.g. after the homeserver's database was
        reset, is replaced by a new one)."""
        await self.crypto_db.start()
        await self.store.open()
        device_id = await self.store.get_device_id()
        if device_id and not await self._device_exists(device_id):
            log.warning(
                "The bridge's device %s is gone from the homeserver: starting over with a new "
                "device (messages encrypted for the old one cannot be decrypted)",
                device_id,
            )
            await self.store.delete()
            device_id = None
        # PUT /devices/<id> as the appservice (MSC4190): creates the device, or is a no-op.
        await self.client.create_device_msc4190(device_id or "", DEVICE_NAME)
        await self.machine.load()
        if not device_id:
            await self.store.put_device_id(self.client.device_id)
        await self.machine.share_keys()
        self.ready.set()
        log.info("End-to-bridge encryption on: device %s (appservice mode)", self.device_id)

    async def _device_exists(self, device_id: DeviceID) -> bool:
        try:
            keys = await self.client.query_keys([self.bot])
        except MatrixError:
            return True  # cannot tell: keep it
        return bool(keys.device_keys.get(self.bot, {}).get(device_id))

    async def stop(self) -> None:
        await self.store.close()

    # ------------------------------------------------------------------ what arrives

    async def to_device(self, raw: dict[str, Any]) -> None:
        await self.ready.wait()
        data: Any = {k: v for k, v in raw.items() if k != TO_DEVICE}
        evt = ASToDeviceEvent.deserialize(data)
        await self.machine.handle_as_to_device_event(cast(ASToDeviceEvent, evt))

    async def device_lists(self, changed: list[str], left: list[str]) -> None:
        await self.ready.wait()
        lists = DeviceLists(changed=[UserID(u) for u in changed], left=[UserID(u) for u in left])
        await self.machine.handle_device_lists(lists)

    async def otk_counts(self, counts: dict[str, Any]) -> None:
        """One-time key counts of a transaction (``org.matrix.msc3202.
        device_one_time_keys_count``): uploads new keys when the homeserver runs low."""
        if not self.ready.is_set():
            return
        mine = counts.get(self.bot, {}).get(self.device_id) if isinstance(counts, dict) else None
        if isinstance(mine, dict):
            try:
                await self.machine.handle_otk_count(DeviceOTKCount.deserialize(cast(Any, mine)))
            except Exception:
                log.exception("Could not upload new one-time keys")

    async def member(self, room_id: str, user: str, membership: str, prev: str | None) -> None:
        """A membership change: from the next message on, a new session shared with who is in
        the room now (a ghost's changes need none)."""
        self.rooms.learn_member(room_id, user, membership)
        if self.rooms.is_ghost(user) or membership == prev:
            return
        if await self.rooms.is_encrypted(RoomID(room_id)):
            await self.store.remove_outbound_group_session(RoomID(room_id))

    def encryption_state(self, room_id: str, content: dict[str, Any]) -> None:
        self.rooms.learn_encryption(room_id, content)

    # ------------------------------------------------------------------ sending

    async def is_encrypted(self, room_id: str) -> bool:
        return await self.rooms.is_encrypted(RoomID(room_id))

    async def encrypt(
        self, room_id: str, event_type: EventType, content: dict[str, Any]
    ) -> dict[str, Any]:
        """``content`` encrypted for the room's staff devices (``m.room.encrypted`` content),
        sharing a new session with them first when needed."""
        await self.ready.wait()
        room = RoomID(room_id)
        try:
            encrypted = await self.machine.encrypt_megolm_event(room, event_type, content)
        except EncryptionError:
            lock = self._share_locks.setdefault(room_id, asyncio.Lock())
            async with lock:
                if not await self._has_usable_session(room):
                    members = await self.rooms.members(room)
                    # Their devices afresh: the homeserver pushes device list changes only of
                    # users who share a joined room with the bridge, so the list of a staff
                    # member who is only invited so far (a new device, say) may be stale.
                    await self.machine._fetch_keys(members, include_untracked=True)
                    await self.machine.share_group_session(room, members)
            encrypted = await self.machine.encrypt_megolm_event(room, event_type, content)
        return dict(encrypted.serialize())

    async def _has_usable_session(self, room: RoomID) -> bool:
        session = await self.store.get_outbound_group_session(room)
        return session is not None and session.shared and not session.expired

    # ------------------------------------------------------------------ receiving

    async def decrypt(self, raw: dict[str, Any], wait: float = KEY_WAIT) -> dict[str, Any]:
        """The plaintext event of the ``m.room.encrypted`` event ``raw``, in the same raw form
        (``type`` and ``content`` decrypted, ``m.relates_to`` kept), or ``Undecryptable``."""
        await self.ready.wait()
        try:
            evt = EncryptedEvent.deserialize(cast(Any, raw))
            session_id = str(evt.content.session_id)
        except Exception as e:
            raise Undecryptable("it is not a valid encrypted event") from e
        try:
            try:
                result = await self.machine.decrypt_megolm_event(evt)
            except SessionNotFound:
                if not wait or not await self.machine.wait_for_session(
                    evt.room_id, evt.content.session_id, timeout=wait
                ):
                    raise
                result = await self.machine.decrypt_megolm_event(evt)
        except SessionNotFound as e:
            raise Undecryptable("its key has not reached the bridge", session_id) from e
        except GroupSessionWithheldError as e:
            raise Undecryptable(f"the sending device withheld its key ({e.withheld_code})") from e
        except DuplicateMessageIndex as e:
            raise Undecryptable("it repeats an earlier message's encryption (a replay)") from e
        except DecryptionError as e:
            raise Undecryptable(f"it could not be decrypted ({e.message})") from e
        trust = result.get("mautrix", {}).get("trust_state", TrustState.UNVERIFIED)
        if trust < self.min_send_trust:
            raise Undecryptable(
                f"the sending device is {trust}; the bridge takes messages from devices that are"
                f" {self.settings.send} or better"
            )
        content = result.content.serialize()
        kept = ("room_id", "event_id", "sender", "origin_server_ts", "unsigned")
        plain: dict[str, Any] = {k: raw[k] for k in kept if k in raw}
        plain["type"] = str(result.type)
        plain["content"] = content if isinstance(content, dict) else {}
        return plain

    async def request_key(self, room_id: str, sender: str, content: dict[str, Any]) -> None:
        """Ask the device that sent an encrypted event for its room key (``m.room_key_request``;
        the answer comes as a forwarded key, like any other key). A homeserver may lose a key
        meant for the bridge: Synapse does not resend to-device messages to an appservice that
        was down when they were sent."""
        sender_key, session_id = content.get("sender_key"), content.get("session_id")
        device_id = content.get("device_id")
        if not all(isinstance(v, str) and v for v in (sender_key, session_id, device_id)):
            return
        try:
            await self.machine.request_room_key(
                RoomID(room_id), IdentityKey(str(sender_key)), SessionID(str(session_id)),
                {UserID(sender): [DeviceID(str(device_id))]}, timeout=0,
            )  # fmt: skip
        except MatrixError as e:
            log.warning("Could not ask %s for the key of %s: %s", pii(sender), room_id, e)

    async def has_key(self, room_id: str, session_id: str) -> bool:
        return bool(await self.store.has_group_session(RoomID(room_id), session_id))  # type: ignore[arg-type]

    # ------------------------------------------------------------------ key requests

    async def _allow_key_share(self, device: DeviceIdentity, request: RequestedKeyInfo) -> bool:
        who = f"{pii(device.user_id)}/{device.device_id}"
        if not self.settings.allow_key_sharing:
            raise _refused(
                f"Key sharing is off; refused {who}",
                code=RoomKeyWithheldCode.UNAVAILABLE,
                reason="The bridge does not share keys",
            )
        if device.trust == TrustState.BLACKLISTED:
            raise _refused(
                f"Refused a key request of blacklisted device {who}",
                code=RoomKeyWithheldCode.BLACKLISTED,
                reason="Your device is blacklisted by the bridge",
            )
        try:
            joined = await self.client.get_joined_members(request.room_id)
        except (MNotFound, MForbidden):
            joined = {}
        if device.user_id not in joined:
            raise _refused(
                f"Refused a key request of {who} for {request.room_id}: not a member",
                code=RoomKeyWithheldCode.UNAUTHORIZED,
                reason="You are not a member of that room",
            )
        if await self.machine.resolve_trust(device) < self.machine.share_keys_min_trust:
            raise _refused(
                f"Refused a key request of device {who}: not trusted enough",
                code=RoomKeyWithheldCode.UNVERIFIED,
                reason="Your device is not trusted by the bridge",
            )
        log.info("Sharing session %s of %s with %s", request.session_id, request.room_id, who)
        return True


def _refused(message: str, *, code: RoomKeyWithheldCode, reason: str) -> RejectKeyShare:
    log.info("%s (%s)", message, code)
    return RejectKeyShare(message, code=code, reason=reason)
