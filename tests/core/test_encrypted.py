"""What happens to an encrypted room's events before routing (``core/encrypted.py``), with
the bot's device and the sender replaced by recorders and the real queue and ``crypto_waiting``
tables on SQLite and PostgreSQL: crypto events go to the device, a message whose key is missing
waits with one notice (also when the same queue item runs again after a crash) and goes on when
the key comes, and ``require`` refuses plaintext."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config import EncryptionConfig
from bridge.core.crypto.marks import DEVICE_LISTS, TO_DEVICE, Undecryptable
from bridge.core.encrypted import CryptoFlow
from bridge.db import QueueItem, WaitingEvent
from bridge.seams import MediaRef

ROOM = "!portal:example.com"
STAFF = "@staff:example.com"
GHOST = "@bridge_hooks_c1:example.com"


class Device:
    """The bot's device as the flow sees it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.keys: set[tuple[str, str]] = set()
        self.on_key_callback: Any = None

    def on_key(self, callback: Any) -> None:
        self.on_key_callback = callback

    async def to_device(self, raw: dict[str, Any]) -> None:
        self.calls.append(("to_device", raw))

    async def device_lists(self, changed: list[str], left: list[str]) -> None:
        self.calls.append(("device_lists", (changed, left)))

    async def member(self, room: str, user: str, membership: str, prev: str | None) -> None:
        self.calls.append(("member", (room, user, membership, prev)))

    def encryption_state(self, room: str, content: dict[str, Any]) -> None:
        self.calls.append(("encryption", (room, content)))

    async def has_key(self, room: str, session: str) -> bool:
        return (room, session) in self.keys

    async def request_key(self, room: str, sender: str, content: dict[str, Any]) -> None:
        self.calls.append(("request_key", (room, sender, content["session_id"])))


class Sender:
    """Decrypts what it was told it can; records what is sent."""

    def __init__(self) -> None:
        self.readable: dict[str, dict[str, Any]] = {}
        self.missing: dict[str, str] = {}
        self.sent: list[tuple[str, dict[str, Any], str | None]] = []

    async def decrypt(self, event: dict[str, Any]) -> dict[str, Any]:
        event_id = event["event_id"]
        if event_id in self.readable:
            return self.readable[event_id]
        if event_id in self.missing:
            raise Undecryptable("its key has not reached the bridge", self.missing[event_id])
        raise Undecryptable("it could not be decrypted (bad MAC)")

    async def send(self, room: str, content: dict[str, Any], *, txn: str | None = None) -> str:
        self.sent.append((room, content, txn))
        return f"$sent{len(self.sent)}"


class Notices:
    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.texts: list[tuple[str | None, str, str | None]] = []

    async def send(self, room: str, text: str, *, reply_to: str | None = None,
                   txn: str | None = None) -> str:  # fmt: skip
        self.texts.append((reply_to, text, txn))
        return await self.sender.send(room, {"body": text}, txn=txn)

    async def failure(self, room: str, event_id: str | None, reason: str, *,
                      txn: str | None = None) -> str:  # fmt: skip
        return await self.send(room, f"⚠️ Not delivered: {reason}", reply_to=event_id, txn=txn)


class Flow:
    def __init__(self, require: bool = False) -> None:
        self.device = Device()
        self.sender = Sender()
        self.notices = Notices(self.sender)
        self.submitted: list[QueueItem] = []
        settings = EncryptionConfig(allow=True, default=True, require=require)

        async def queue_key(payload: dict[str, Any]) -> str:
            return f"mx:{payload['room_id']}"

        self.flow = CryptoFlow(
            settings, self.device, self.sender, self.notices,  # type: ignore[arg-type]
            lambda user: user == GHOST, queue_key, self.submitted.append,
        )  # fmt: skip


def encrypted(n: int, sender: str = STAFF) -> dict[str, Any]:
    return {
        "type": "m.room.encrypted", "room_id": ROOM, "sender": sender, "event_id": f"$enc{n}",
        "origin_server_ts": 1000 + n,
        "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "x", "session_id": "S"},
    }  # fmt: skip


def plain(n: int, sender: str = STAFF, **extra: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message", "room_id": ROOM, "sender": sender, "event_id": f"$plain{n}",
        "content": {"msgtype": "m.text", "body": f"text {n}"}, **extra,
    }  # fmt: skip


@pytest.fixture
async def flow(database: object) -> Flow:
    return Flow()


async def test_crypto_events_go_to_the_device(flow: Flow) -> None:
    raw = {"type": "m.room.encrypted", "sender": STAFF, "content": {}, TO_DEVICE: True}
    assert await flow.flow.handle(raw) is None
    lists = {"type": DEVICE_LISTS, "changed": [STAFF, 5], "left": "nonsense"}
    assert await flow.flow.handle(lists) is None
    assert flow.device.calls == [("to_device", raw), ("device_lists", ([STAFF], []))]


async def test_state_keeps_the_device_current_and_is_routed(flow: Flow) -> None:
    member = {
        "type": "m.room.member", "room_id": ROOM, "sender": STAFF, "event_id": "$m",
        "state_key": STAFF, "content": {"membership": "leave"},
        "unsigned": {"prev_content": {"membership": "join"}},
    }  # fmt: skip
    encryption = {
        "type": "m.room.encryption", "room_id": ROOM, "sender": STAFF, "event_id": "$e",
        "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"},
    }  # fmt: skip
    assert await flow.flow.handle(member) is member
    assert await flow.flow.handle(encryption) is encryption
    assert flow.device.calls == [
        ("member", (ROOM, STAFF, "leave", "join")),
        ("encryption", (ROOM, {"algorithm": "m.megolm.v1.aes-sha2"})),
    ]


async def test_a_decrypted_event_is_routed_in_its_place(flow: Flow) -> None:
    flow.sender.readable["$enc1"] = plain(1)
    assert await flow.flow.handle(encrypted(1)) == plain(1)
    assert flow.notices.texts == []


async def test_an_unreadable_event_gets_a_notice_with_the_reason(flow: Flow) -> None:
    assert await flow.flow.handle(encrypted(1)) is None
    assert flow.notices.texts == [
        ("$enc1", "⚠️ Not delivered: the bridge cannot read this encrypted message: it could "
         "not be decrypted (bad MAC)", "undecryptable:$enc1"),
    ]  # fmt: skip


async def test_a_missing_key_waits_with_one_notice_and_the_event_goes_on_with_it(
    flow: Flow,
) -> None:
    flow.sender.missing["$enc1"] = "S"
    assert await flow.flow.handle(encrypted(1)) is None
    # The same queue item again (the bridge was killed before it was finished): no second notice.
    assert await flow.flow.handle(encrypted(1)) is None
    assert [t[1][:40] for t in flow.notices.texts] == ["🔒 The bridge cannot decrypt this message"]
    waiting = await WaitingEvent.get("$enc1")
    assert waiting is not None and waiting.notice_id == "$sent1"
    # The sending device was asked for the key, once.
    assert flow.device.calls == [("request_key", (ROOM, STAFF, "S"))]

    await flow.device.on_key_callback(ROOM, "S")
    await flow.device.on_key_callback(ROOM, "S")  # a key stored twice: queued once
    assert [i.payload for i in flow.submitted] == [encrypted(1)]
    assert [(i.queue_key, i.kind) for i in flow.submitted] == [(f"mx:{ROOM}", "matrix")]

    flow.sender.readable["$enc1"] = plain(1)
    assert await flow.flow.handle(encrypted(1)) == plain(1)
    room, edit, txn = flow.sender.sent[-1]
    assert edit["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$sent1"}
    assert "The key arrived" in edit["m.new_content"]["body"] and txn == "decrypted:$enc1"
    assert await WaitingEvent.get("$enc1") is None


async def test_a_key_that_came_meanwhile_requeues_at_once(flow: Flow) -> None:
    flow.sender.missing["$enc1"] = "S"
    flow.device.keys.add((ROOM, "S"))
    assert await flow.flow.handle(encrypted(1)) is None
    assert flow.notices.texts == []
    assert [i.payload for i in flow.submitted] == [encrypted(1)]


async def test_require_refuses_plaintext_from_staff_only(database: object) -> None:
    strict = Flow(require=True)
    assert await strict.flow.handle(plain(1)) is None
    assert await strict.flow.handle(plain(2, sender=GHOST)) == plain(2, sender=GHOST)
    redaction = {"type": "m.room.redaction", "room_id": ROOM, "sender": STAFF,
                 "event_id": "$r", "redacts": "$plain1", "content": {}}  # fmt: skip
    assert await strict.flow.handle(redaction) is redaction
    assert [(t[0], t[2]) for t in strict.notices.texts] == [("$plain1", "plaintext:$plain1")]
    assert "takes only encrypted messages" in strict.notices.texts[0][1]


def test_a_file_of_an_encrypted_feature_room_keeps_its_keys() -> None:
    """A staff file sent in an encrypted room of a feature (a broadcast draft) reaches the
    feature as a file, with what the core needs to decrypt it, not as its name in text."""
    from bridge.core.incoming import Media, StaffMessage
    from bridge.core.routing import _room_message

    file = {"url": "mxc://example.com/abc", "v": "v2", "key": {}, "iv": "", "hashes": {}}
    media = Media(None, "offer.pdf", "application/pdf", 10, file)
    evt = StaffMessage(ROOM, STAFF, "$f", None, "m.file", "offer.pdf", None, None, media, False)
    message = _room_message(evt)
    assert message.media is not None
    assert (message.media.url, message.media.file) == ("mxc://example.com/abc", file)
    plain = StaffMessage(ROOM, STAFF, "$g", None, "m.file", "a.pdf", None, None,
                         Media("mxc://example.com/p", "a.pdf", None, 1), False)  # fmt: skip
    expected = MediaRef("mxc://example.com/p", "a.pdf", "application/octet-stream", 1)
    assert _room_message(plain).media == expected
