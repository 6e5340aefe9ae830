"""The bot device's rules that do not need a homeserver: whom it answers key requests for
(members only, trusted enough, never a blacklisted device: each refusal with its withheld
code), which decryption failures mean "wait for the key", and what an encrypted event shows of
its transaction id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mautrix.crypto import RejectKeyShare
from mautrix.errors import DecryptionError, GroupSessionWithheldError, SessionNotFound
from mautrix.types import (
    DeviceIdentity,
    RequestedKeyInfo,
    RoomKeyWithheldCode,
    TrustState,
)
from mautrix.util.async_db import Database

from bridge.config import EncryptionConfig, parse
from bridge.core.crypto.machine import Encryption
from bridge.core.crypto.marks import Undecryptable, txn_mark
from tests.test_config import example

ROOM = "!portal:example.com"
MEMBER, OUTSIDER = "@staff:example.com", "@other:example.com"


@pytest.fixture
async def device(tmp_path: Path) -> AsyncIterator[Encryption]:
    def mutate(data: dict[str, Any]) -> None:
        data["database"]["url"] = f"sqlite:{tmp_path / 'bridge.db'}"
        data["encryption"] = {"allow": True}

    config = parse(example(mutate))
    db = Database.create(config.db_url)
    await db.start()
    async with aiohttp.ClientSession() as session:
        encryption = Encryption(config, db, session, lambda user: user.startswith("@bridge_"))
        encryption.ready.set()

        async def joined(room_id: str) -> dict[str, Any]:
            return {MEMBER: {}} if room_id == ROOM else {}

        encryption.client.get_joined_members = joined  # type: ignore[assignment,method-assign]
        yield encryption
    await db.stop()


def identity(user: str, trust: TrustState = TrustState.UNVERIFIED) -> DeviceIdentity:
    return DeviceIdentity(user, "DEV", "ik", "sk", trust, False, "phone")  # type: ignore[arg-type]


def request(room: str = ROOM) -> RequestedKeyInfo:
    return RequestedKeyInfo.deserialize(
        {
            "algorithm": "m.megolm.v1.aes-sha2",
            "room_id": room,
            "sender_key": "k",
            "session_id": "S",
        }  # fmt: skip
    )


async def trust_is(device: Encryption, level: TrustState) -> None:
    async def resolve(_: DeviceIdentity, allow_fetch: bool = True) -> TrustState:
        return level

    device.machine.resolve_trust = resolve  # type: ignore[method-assign]


async def refusal(device: Encryption, who: DeviceIdentity, room: str = ROOM) -> Any:
    with pytest.raises(RejectKeyShare) as refused:
        await device._allow_key_share(who, request(room))
    return refused.value.code


async def test_key_requests(device: Encryption) -> None:
    await trust_is(device, TrustState.CROSS_SIGNED_TOFU)  # the default share level
    assert await device._allow_key_share(identity(MEMBER), request()) is True
    assert await refusal(device, identity(OUTSIDER)) == RoomKeyWithheldCode.UNAUTHORIZED
    assert await refusal(device, identity(MEMBER), "!other:x") == RoomKeyWithheldCode.UNAUTHORIZED
    blacklisted = identity(MEMBER, TrustState.BLACKLISTED)
    assert await refusal(device, blacklisted) == RoomKeyWithheldCode.BLACKLISTED
    await trust_is(device, TrustState.UNVERIFIED)
    assert await refusal(device, identity(MEMBER)) == RoomKeyWithheldCode.UNVERIFIED
    # An outsider learns nothing about trust: not a member comes first.
    assert await refusal(device, identity(OUTSIDER)) == RoomKeyWithheldCode.UNAUTHORIZED


async def test_key_sharing_switched_off(device: Encryption) -> None:
    device.settings = EncryptionConfig(allow=True, allow_key_sharing=False)
    await trust_is(device, TrustState.VERIFIED)
    assert await refusal(device, identity(MEMBER)) == RoomKeyWithheldCode.UNAVAILABLE


def sealed() -> dict[str, Any]:
    return {
        "type": "m.room.encrypted", "room_id": ROOM, "sender": MEMBER, "event_id": "$e",
        "origin_server_ts": 1,
        "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "c", "session_id": "S",
                    "sender_key": "k", "device_id": "DEV"},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("error", "waits", "says"),
    [
        (SessionNotFound("S"), True, "its key has not reached the bridge"),
        (GroupSessionWithheldError("S", "m.unverified"), False, "withheld its key (m.unverified)"),
        (DecryptionError("bad MAC"), False, "could not be decrypted (bad MAC)"),
    ],
)
async def test_decryption_failures(
    device: Encryption, error: Exception, waits: bool, says: str
) -> None:
    async def fail(_: Any) -> Any:
        raise error

    device.machine.decrypt_megolm_event = fail  # type: ignore[method-assign]
    with pytest.raises(Undecryptable) as e:
        await device.decrypt(sealed(), wait=0)
    assert (e.value.session_id == "S") is waits
    assert says in e.value.reason


async def test_a_device_below_the_send_level_is_not_taken(device: Encryption) -> None:
    device.min_send_trust = TrustState.CROSS_SIGNED_TOFU

    async def decrypted(_: Any) -> Any:
        class Result(dict[str, Any]):
            content = None

        return Result(mautrix={"trust_state": TrustState.UNVERIFIED})

    device.machine.decrypt_megolm_event = decrypted  # type: ignore[method-assign]
    with pytest.raises(Undecryptable, match="the sending device is unverified"):
        await device.decrypt(sealed(), wait=0)
    malformed = {**sealed(), "content": "not an object"}
    with pytest.raises(Undecryptable, match="not a valid encrypted event"):
        await device.decrypt(malformed, wait=0)


def test_the_transaction_id_is_not_in_the_clear() -> None:
    mark = txn_mark("remote:hooks:+491701234567:42")
    assert "+49" not in mark and len(mark) == 32
    assert mark == txn_mark("remote:hooks:+491701234567:42")


async def test_a_missing_key_is_asked_of_the_sending_device(device: Encryption) -> None:
    asked: list[tuple[Any, ...]] = []

    async def request(*args: Any, **kwargs: Any) -> bool:
        asked.append((*args, kwargs))
        return False

    device.machine.request_room_key = request  # type: ignore[method-assign]
    await device.request_key(ROOM, MEMBER, sealed()["content"])
    assert asked == [(ROOM, "k", "S", {MEMBER: ["DEV"]}, {"timeout": 0})]
    await device.request_key(ROOM, MEMBER, {"session_id": "S"})  # no device named: no request
    assert len(asked) == 1


async def test_one_time_keys_are_saved_before_they_are_uploaded(device: Encryption) -> None:
    """A kill between the upload and the save must not leave keys on the homeserver whose
    private halves are gone."""
    await device.crypto_db.start()  # mautrix's crypto tables
    await device.store.open()
    await device.machine.load()
    steps: list[str] = []
    store_put = device.store.put_account

    async def put_account(account: Any) -> None:
        steps.append("save" if not account.shared else "save shared")
        await store_put(account)

    async def upload_keys(**kwargs: Any) -> dict[Any, int]:
        if kwargs.get("one_time_keys"):
            steps.append(f"upload {len(kwargs['one_time_keys'])}")
        return {}

    device.store.put_account = put_account  # type: ignore[method-assign]
    device.client.upload_keys = upload_keys  # type: ignore[assignment,method-assign]
    device.client.device_id = "BOTDEVICE"  # type: ignore[assignment]
    await device.machine.share_keys(0)
    assert steps[0] == "save" and steps[1].startswith("upload ") and steps[2] == "save shared"
    saved = await device.store.get_account()
    assert saved is not None and not saved.one_time_keys.get("curve25519")
