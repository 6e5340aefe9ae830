"""Smoke test for the encrypted staff client on a Synapse that encrypts every new room."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from nio import SyncResponse

from tests.infra.staff import EventPredicate, StaffClient, StaffError, match
from tests.infra.synapse import E2EE_SETTINGS, SynapseServer, synapse_server


@pytest.fixture(scope="module")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    with synapse_server(tmp_path_factory.mktemp("synapse-e2ee"), extra_config=E2EE_SETTINGS) as hs:
        yield hs


def _joined(room_id: str, user_id: str) -> EventPredicate:
    return match(
        room_id=room_id, type="m.room.member", state_key=user_id, content={"membership": "join"}
    )


def by_id(event_id: str) -> EventPredicate:
    return lambda e: e.get("event_id") == event_id


async def test_encrypted_round_trip(synapse: SynapseServer) -> None:
    alice_id, alice_token = await synapse.aregister_user("alice", "pw-a")
    bob_id, _ = await synapse.aregister_user("bob", "pw-b")
    alice = await StaffClient.login(synapse.base_url, alice_id, "pw-a", encrypted=True)
    bob = await StaffClient.login(synapse.base_url, bob_id, "pw-b", encrypted=True)
    async with alice, bob:
        room_id = await alice.create_room(name="secret", invite=[bob_id])
        state = await alice.get_state(room_id)
        assert [e["content"]["algorithm"] for e in state if e["type"] == "m.room.encryption"] == [
            "m.megolm.v1.aes-sha2"
        ]
        assert await bob.wait_for_invite() == room_id
        await bob.join(room_id)
        await alice.wait_for_event(
            match(
                room_id=room_id,
                type="m.room.member",
                state_key=bob_id,
                content={"membership": "join"},
            )
        )

        text_id = await alice.send_text(room_id, "the secret plan", html="<b>the secret</b> plan")
        reply_id = await alice.send_text(room_id, "a secret reply", reply_to=text_id)
        edit_id = await alice.edit(room_id, text_id, "the edited plan")
        reaction_id = await alice.react(room_id, text_id, "🔒")
        data = b"%PDF-1.4 secret attachment \x00\xff" * 50
        file_id = await alice.send_file(room_id, data, "plan.pdf", "application/pdf")

        text = await bob.wait_for_event(by_id(text_id), room_id=room_id)
        assert text["encrypted"] is True and text["type"] == "m.room.message"
        assert text["sender"] == alice_id and text["room_id"] == room_id
        assert text["content"]["body"] == "the secret plan"
        assert text["content"]["formatted_body"] == "<b>the secret</b> plan"
        assert text["origin_server_ts"] > 0
        reply = await bob.wait_for_event(by_id(reply_id))
        assert reply["encrypted"] and reply["content"]["body"] == "a secret reply"
        assert reply["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": text_id}}
        edit = await bob.wait_for_event(by_id(edit_id))
        assert edit["encrypted"] and edit["content"]["m.new_content"]["body"] == "the edited plan"
        assert match(rel_type="m.replace", relates_to=text_id)(edit)
        reaction = await bob.wait_for_event(by_id(reaction_id))
        assert reaction["encrypted"] and reaction["type"] == "m.reaction"
        assert reaction["content"]["m.relates_to"]["key"] == "🔒"
        file = await bob.wait_for_event(by_id(file_id))
        assert file["encrypted"] and file["content"]["msgtype"] == "m.file"
        assert "url" not in file["content"]
        assert set(file["content"]["file"]) >= {"url", "key", "iv", "hashes", "v"}
        assert await bob.download(file["content"]) == data
        tampered = dict(file["content"]["file"], hashes={"sha256": "A" * 43})
        with pytest.raises(StaffError, match="SHA-256"):
            await bob.download({"file": tampered})
        # the uploaded media is ciphertext
        raw_media = await bob.download({"url": file["content"]["file"]["url"]})
        assert raw_media != data and b"secret attachment" not in raw_media

        # the sender reads its own messages decrypted, in the timeline and in /messages
        mine = await alice.wait_for_event(by_id(text_id))
        assert mine["encrypted"] and mine["content"]["body"] == "the secret plan"
        history = {e["event_id"]: e for e in await bob.room_messages(room_id)}
        assert history[edit_id]["content"]["body"] == "* the edited plan"
        assert history[edit_id]["encrypted"] is True

        # the homeserver holds only ciphertext
        for event_id, secret in [
            (text_id, "secret plan"),
            (reply_id, "secret reply"),
            (edit_id, "edited plan"),
            (reaction_id, "m.reaction"),  # its m.relates_to (with the key) is cleartext
            (file_id, "plan.pdf"),
        ]:
            path = f"/_matrix/client/v3/rooms/{quote(room_id)}/event/{quote(event_id)}"
            stored = await asyncio.to_thread(synapse.api, "GET", path, token=alice_token)
            assert stored["type"] == "m.room.encrypted"
            assert secret not in json.dumps(stored, ensure_ascii=False)


async def test_event_decrypted_once_its_key_arrives(
    synapse: SynapseServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    carol_id, _ = await synapse.aregister_user("carol", "pw-c")
    dave_id, dave_token = await synapse.aregister_user("dave", "pw-d")
    carol = await StaffClient.login(synapse.base_url, carol_id, "pw-c", encrypted=True)
    dave = await StaffClient.from_token(synapse.base_url, dave_token, encrypted=True)
    async with carol, dave:
        room_id = await carol.create_room(invite=[dave_id])
        await dave.join(await dave.wait_for_invite())
        await carol.wait_for_event(_joined(room_id, dave_id))

        # Dave's /sync hands over to-device messages (the room key) one sync late.
        held: list[object] = []
        deliver = False
        handle_to_device = dave.nio._handle_to_device

        async def late_to_device(response: SyncResponse) -> None:
            if deliver:
                response.to_device_events[:0] = held  # type: ignore[list-item]
                held.clear()
            else:
                held.extend(response.to_device_events)
                response.to_device_events.clear()
            await handle_to_device(response)

        monkeypatch.setattr(dave.nio, "_handle_to_device", late_to_device)
        late_id = await carol.send_text(room_id, "delayed secret")
        raw = await dave.wait_for_event(by_id(late_id))
        assert raw["type"] == "m.room.encrypted" and raw["encrypted"] is True
        assert "body" not in raw["content"] and held

        deliver = True
        waiter = asyncio.create_task(
            dave.wait_for_event(match(body="delayed secret"), include_seen=False)
        )
        await carol.send_text(room_id, "wake up")  # ends Dave's long-poll with the held key
        decrypted = await waiter
        assert decrypted["event_id"] == late_id and decrypted["encrypted"] is True
        assert [e["type"] for e in dave.find_events(by_id(late_id))] == ["m.room.message"]
