"""What happens to an encrypted room's events before they are routed: the crypto events of a
transaction (to-device messages, device list changes) go to the bot's device; an encrypted event
is decrypted into the plaintext event the router then handles like any other; membership and
encryption state keep the device's view of its rooms current.

Nothing is dropped without a word. An event whose key has not arrived waits for it
(``crypto_waiting``) with a notice in the room; once the key is stored, the event is queued
again (idempotently, by a transaction id of its own) and the notice is edited to say so. An
event that can never be read gets a notice saying why. With ``encryption.require``, a staff
message sent in the clear is refused with a notice."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..config import EncryptionConfig
from ..db import QueueItem, WaitingEvent
from .crypto.marks import DEVICE_LISTS, TO_DEVICE, Undecryptable
from .notices import Notices
from .sender import MatrixSender

if TYPE_CHECKING:
    from .crypto.machine import Encryption

log = logging.getLogger("bridge.crypto")

ENCRYPTED = "m.room.encrypted"
STAFF_TYPES = ("m.room.message", "m.reaction", "m.sticker")
"""Event types ``encryption.require`` refuses in the clear."""

QueueKey = Callable[[dict[str, Any]], Awaitable[str]]
Submit = Callable[[QueueItem], None]


class CryptoFlow:
    def __init__(
        self,
        settings: EncryptionConfig,
        encryption: Encryption,
        sender: MatrixSender,
        notices: Notices,
        is_own: Callable[[str], bool],
        queue_key: QueueKey,
        submit: Submit,
    ) -> None:
        self.settings = settings
        self.encryption = encryption
        self.sender = sender
        self.notices = notices
        self.is_own = is_own
        self.queue_key = queue_key
        self.submit = submit
        self._waiting: set[str] | None = None
        """The events waiting for their key (read once, then kept): most decryptions need
        not look in the table."""
        encryption.on_key(self.key_arrived)

    async def handle(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The event to route in place of ``payload`` (decrypted, or itself), or None when it
        was taken care of here."""
        etype = payload.get("type")
        if payload.get(TO_DEVICE):
            await self.encryption.to_device(payload)
            return None
        if etype == DEVICE_LISTS:
            changed, left = payload.get("changed"), payload.get("left")
            await self.encryption.device_lists(_ids(changed), _ids(left))
            return None
        room_id, sender = payload.get("room_id"), payload.get("sender")
        if not isinstance(room_id, str) or not isinstance(sender, str):
            return payload
        if "state_key" in payload:
            await self._state(room_id, payload)
            return payload
        if etype == ENCRYPTED:
            return await self._decrypt(room_id, payload)
        if self.settings.require and etype in STAFF_TYPES and not self.is_own(sender):
            await self.notices.failure(
                room_id,
                _str(payload.get("event_id")),
                "this bridge takes only encrypted messages; turn on encryption in the room's"
                " settings (or ask an admin to)",
                txn=f"plaintext:{payload.get('event_id')}",
            )
            return None
        return payload

    async def _state(self, room_id: str, payload: dict[str, Any]) -> None:
        content = payload.get("content")
        content = content if isinstance(content, dict) else {}
        etype, target = payload.get("type"), payload.get("state_key")
        if etype == "m.room.encryption" and target == "":
            self.encryption.encryption_state(room_id, content)
        elif etype == "m.room.member" and isinstance(target, str):
            unsigned = payload.get("unsigned")
            prev = unsigned.get("prev_content") if isinstance(unsigned, dict) else None
            before = prev.get("membership") if isinstance(prev, dict) else None
            membership = content.get("membership")
            if isinstance(membership, str):
                await self.encryption.member(room_id, target, membership, _str(before))

    # ------------------------------------------------------------------ decrypting

    async def _decrypt(self, room_id: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        event_id = _str(payload.get("event_id")) or ""
        try:
            plain = await self.sender.decrypt(payload)
        except Undecryptable as e:
            if e.session_id is not None and event_id:
                await self._wait(room_id, event_id, e.session_id, payload)
            else:
                await self.notices.failure(
                    room_id, event_id or None,
                    f"the bridge cannot read this encrypted message: {e.reason}",
                    txn=f"undecryptable:{event_id}",
                )  # fmt: skip
            return None
        if event_id in await self._waiting_ids():
            waiting = await WaitingEvent.get(event_id)
            if waiting is not None and waiting.notice_id:
                await self._update_notice(room_id, waiting.notice_id, event_id)
            if waiting is not None:
                await waiting.delete()
            (await self._waiting_ids()).discard(event_id)
        return plain

    async def _waiting_ids(self) -> set[str]:
        if self._waiting is None:
            self._waiting = await WaitingEvent.all_ids()
        return self._waiting

    async def _wait(
        self, room_id: str, event_id: str, session_id: str, payload: dict[str, Any]
    ) -> None:
        waiting = await WaitingEvent.get(event_id)
        if waiting is None:
            waiting = WaitingEvent(event_id, room_id, session_id, payload)
            await waiting.insert()
            (await self._waiting_ids()).add(event_id)
            log.info("Event %s waits for its key (session %s)", event_id, session_id)
            if await self.encryption.has_key(room_id, session_id):
                await self._requeue(waiting)  # the key came in between
                return
            content = payload.get("content")
            sender = payload.get("sender")
            if isinstance(content, dict) and isinstance(sender, str):
                await self.encryption.request_key(room_id, sender, content)
        if waiting.notice_id is None:
            notice = await self.notices.send(
                room_id,
                "🔒 The bridge cannot decrypt this message yet: its key has not reached the"
                " bridge's device (it asked the sending device for it). It will be bridged as"
                " soon as the key arrives.",
                reply_to=event_id,
                txn=f"undecryptable:{event_id}",
            )
            if notice is not None:
                await waiting.set_notice(notice)

    async def _update_notice(self, room_id: str, notice_id: str, event_id: str) -> None:
        text = "🔓 The key arrived: this message was decrypted and goes on as usual."
        content = {
            "msgtype": "m.notice",
            "body": f"* {text}",
            "m.new_content": {"msgtype": "m.notice", "body": text},
            "m.relates_to": {"rel_type": "m.replace", "event_id": notice_id},
        }
        await self.sender.send(room_id, content, txn=f"decrypted:{event_id}")

    async def key_arrived(self, room_id: str, session_id: str) -> None:
        for waiting in await WaitingEvent.for_session(room_id, session_id):
            await self._requeue(waiting)

    async def _requeue(self, waiting: WaitingEvent) -> None:
        key = await self.queue_key(waiting.payload)
        items = await QueueItem.record_transaction(
            f"crypto-retry:{waiting.event_id}", [(key, "matrix", waiting.payload)],
            once_per_event=False,  # recorded when it was pushed; queued again on purpose
        )  # fmt: skip
        for item in items or ():
            self.submit(item)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _ids(value: object) -> list[str]:
    return [u for u in value if isinstance(u, str)] if isinstance(value, list) else []
