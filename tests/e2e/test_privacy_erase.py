"""``privacy erase`` end to end through a real Synapse, on SQLite and on PostgreSQL (one stack
per backend, the homeserver admin's token configured as ``homeserver.admin_token``): bad input
gets a clear answer and changes nothing; a customer of the webhook channel with a consent
record, messages both ways and a file is erased, and afterwards a full dump of the bridge's
database holds none of their identifiers, names or texts, the staff client sees only redacted
events of theirs in a renamed room the ghost left, and the file is gone from the media
repository."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from ruamel.yaml import YAML

from tests.conftest import SERVER_NAME, Stack, build_stack
from tests.e2e.helpers import body_is, customer_msg, join_invite_named
from tests.e2e.test_commands import _ask, _room_with_bot
from tests.infra.postgres import PostgresServer
from tests.infra.staff import StaffClient

FEATURES: dict[str, Any] = {
    "privacy": {},
    "consent": {
        "lists": {
            "newsletter": {
                "title": "Newsletter", "version": "2026-01", "text": "News, yes.",
                "accounts": ["hooks"],
            }
        }
    },
}  # fmt: skip
BOSS = f"@boss:{SERVER_NAME}"
ERASED_NOTICE = "🗑 This conversation was erased at the person's request."
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def dump_database(workdir: Path, postgres: PostgresServer | None, db_name: str) -> str:
    """Every row of the bridge's database as SQL: ``iterdump`` of the SQLite file in
    ``workdir``, else ``pg_dump`` of ``db_name``."""
    if postgres is None:
        with sqlite3.connect(workdir / "bridge.db") as conn:
            return "\n".join(conn.iterdump())
    env = {"PGSSLMODE": "disable", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [str(postgres.bin_dir / "pg_dump"), "-h", postgres.host, "-p", str(postgres.port),
         "-U", postgres.superuser, "--inserts", db_name],
        capture_output=True, text=True, check=True, env=env, timeout=60,
    ).stdout  # fmt: skip


class Erasable:
    """A stack with the homeserver admin's token in the bridge's config, and how to dump its
    database."""

    def __init__(self, stack: Stack, staff: StaffClient, dump: Any) -> None:
        self.stack = stack
        self.staff = staff
        self.dump = dump


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=["sqlite", "postgres"])
async def erasable(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Erasable]:
    workdir = tmp_path_factory.mktemp("erase")
    db_url = None
    postgres: PostgresServer | None = None
    db_name = f"erase_{uuid.uuid4().hex}"
    if request.param == "postgres":
        postgres = request.getfixturevalue("postgres")
        db_url = postgres.create_database(db_name)

    def dump() -> str:
        return dump_database(workdir, postgres, db_name)

    async with build_stack(workdir, features=FEATURES, db_url=db_url) as stack:
        staff = await StaffClient.login(
            stack.synapse.base_url, stack.staff_id, stack.staff_password
        )
        try:
            yaml = YAML()
            data = yaml.load(stack.config_path.read_text())
            data["homeserver"]["admin_token"] = staff.access_token  # a Synapse admin's
            data["permissions"][BOSS] = "admin"  # a second admin
            with stack.config_path.open("w") as f:
                yaml.dump(data, f)
            stack.bridge.stop()
            await stack.bridge.astart()
            yield Erasable(stack, staff, dump)
        finally:
            await staff.close()


async def _admin_room(er: Erasable) -> str:
    return await _room_with_bot(er.stack, er.staff, is_direct=True)


async def test_bad_input_changes_nothing(erasable: Erasable) -> None:
    stack, staff = erasable.stack, erasable.staff
    room = await _admin_room(erasable)
    # Known on two accounts: ambiguous.
    for account in ("hooks", "dead-end"):
        payload = customer_msg("amb-1", "hello", f"amb-{account}")
        payload["sender"]["id"] = "twice-known"
        assert (await stack.peer.send(account, payload))[0] == 200
    before = _privacy_rows(erasable.dump())
    answer = await _ask(staff, room, "privacy erase nobody-we-know")
    assert answer == "The bridge holds nothing of 'nobody-we-know'.", answer
    for _ in range(100):  # the second account's message is bridged too
        answer = await _ask(staff, room, "privacy erase twice-known")
        if "several" in answer:
            break
        await asyncio.sleep(0.1)
    assert answer == (
        "'twice-known' is known on several channel accounts; name one of: "
        "dead-end:twice-known, hooks:twice-known"
    ), answer
    assert (await _ask(staff, room, "privacy erase confirm 999")) == "There is no erasure #999."
    # Someone who is no admin.
    await stack.synapse.aregister_user("clerk", "pw-clerk-secret")
    async with await StaffClient.login(
        stack.synapse.base_url, f"@clerk:{SERVER_NAME}", "pw-clerk-secret"
    ) as clerk:
        clerk_room = await _room_with_bot(stack, clerk, is_direct=True)
        answer = await _ask(clerk, clerk_room, "privacy erase hooks:twice-known")
        assert "You need the admin permission" in answer, answer
    assert _privacy_rows(erasable.dump()) == before
    # Another admin cannot confirm what one asked for; the one who asked cancels.
    plan = await _ask(staff, room, "privacy erase hooks:twice-known")
    job = plan.split("#", 1)[1].split(" ", 1)[0]
    await stack.synapse.aregister_user("boss", "pw-boss-secret")
    async with await StaffClient.login(stack.synapse.base_url, BOSS, "pw-boss-secret") as boss:
        boss_room = await _room_with_bot(stack, boss, is_direct=True)
        answer = await _ask(boss, boss_room, f"privacy erase confirm {job}")
        assert answer == f"Only {stack.staff_id}, who asked for erasure #{job}, may confirm it."
    answer = await _ask(staff, room, f"privacy erase cancel {job}")
    assert answer == f"Erasure #{job} cancelled; nothing was erased."


def _privacy_rows(dump: str) -> list[str]:
    """The rows of the privacy tables in a dump (the rest changes with every event)."""
    return [line for line in dump.splitlines() if "INSERT INTO" in line and "privacy_" in line]


async def _download_status(er: Erasable, mxc: str) -> int:
    server, media = mxc.removeprefix("mxc://").split("/", 1)
    url = f"{er.stack.synapse.base_url}/_matrix/client/v1/media/download/{server}/{quote(media)}"
    headers = {"Authorization": f"Bearer {er.staff.access_token}"}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status


async def test_erase_a_customer(erasable: Erasable) -> None:
    stack, staff = erasable.stack, erasable.staff
    chat, sender, name = "erika-4711", "user-erika-4711", "Erika Mustermann"
    texts = ["Meine Adresse ist Hauptstraße 5", "Hier das Foto vom Schaden", "Danke Frau M."]

    def message(mid: str, text: str) -> dict[str, Any]:
        payload = customer_msg(chat, text, mid)
        payload["chat"]["name"] = name
        payload["sender"] = {"id": sender, "name": name}
        return payload

    consent = {
        "type": "consent", "id": f"step-{chat}", "chat": {"id": chat},
        "sender": {"id": sender, "name": name}, "list": "newsletter", "step": "confirmed",
        "proof": {"at": int(time.time() * 1000) - 60_000, "source": "crm form 12",
                  "text_version": "2026-01"},
    }  # fmt: skip
    assert (await stack.peer.send("hooks", consent))[0] == 200
    assert (await stack.peer.send("hooks", message(f"{chat}-m1", texts[0])))[0] == 200
    room = await join_invite_named(staff, name)
    first = await staff.wait_for_event(body_is(texts[0]), room_id=room)
    ghost = first["sender"]
    stack.peer.files["schaden.png"] = (PNG, "image/png")
    photo = message(f"{chat}-m2", texts[1])
    photo["attachments"] = [{"url": stack.peer.file_url("schaden.png"), "filename": "s.png"}]
    assert (await stack.peer.send("hooks", photo))[0] == 200
    image = await staff.wait_for_event(
        lambda e: e.get("content", {}).get("msgtype") == "m.image", room_id=room
    )
    mxc = image["content"]["url"]
    assert await _download_status(erasable, mxc) == 200
    reply = await staff.send_text(room, texts[2])
    await stack.peer.wait_for(lambda p: p.get("id") == reply)
    # She writes in a group too, with Otto: her message goes, his and the group stay.
    group = {"id": "grp-erase-1", "name": "Projektgruppe", "is_group": True}
    hers = {**message("grp-erase-1-m1", "Ich bin Erika aus der Gruppe"), "chat": group}
    his = {**customer_msg("grp", "Otto hier", "grp-erase-1-m2"), "chat": group}
    for payload in (hers, his):
        assert (await stack.peer.send("hooks", payload))[0] == 200
    group_room = await join_invite_named(staff, "Projektgruppe")
    otto = await staff.wait_for_event(body_is("Otto hier"), room_id=group_room)
    texts.append("Ich bin Erika aus der Gruppe")
    secrets = [chat, sender, name, ghost, *texts]
    assert all(s in erasable.dump() for s in (chat, sender, ghost))

    admin = await _admin_room(erasable)
    plan = await _ask(staff, admin, f"privacy erase hooks:{sender}")
    assert plan.startswith("Erasure #") and f"hooks:{sender}" in plan, plan
    assert "1 conversations of theirs (1 with a room)" in plan and "1 consent contacts" in plan
    assert "their messages in 1 group rooms" in plan, plan
    job = plan.split("#", 1)[1].split(" ", 1)[0]
    answer = await _ask(staff, admin, f"privacy erase confirm {job}")
    assert answer.startswith(f"Erasure #{job} confirmed"), answer
    done = await staff.wait_for_event(
        lambda e: str(e.get("content", {}).get("body", "")).startswith(f"🗑 Erasure #{job} done"),
        room_id=admin, timeout=120,
    )  # fmt: skip
    body = done["content"]["body"]
    assert "1 conversations, 1 identities, 1 consent contacts" in body, body
    assert "1 files deleted" in body and "stay in the media" not in body, body
    assert "(in 1 group rooms too)" in body, body

    # (a) The database holds nothing of theirs.
    dump = erasable.dump()
    leaked = [s for s in secrets if s in dump]
    lines = [line[:300] for line in dump.splitlines() if any(s in line for s in leaked)]
    assert not leaked, f"{leaked} still in the database: {lines[:10]}"
    # (b) The staff client sees none of their content; the ghost left.
    events = await staff.room_messages(room)
    theirs = [e for e in events if e["sender"] == ghost and "state_key" not in e]
    assert len(theirs) >= 2 and all(e["content"] == {} for e in theirs), theirs

    def shown(data: Any) -> str:
        """What a client shows, but the ghost's user id: it stays in the room's member list
        and power levels (the README says so)."""
        return json.dumps(data, ensure_ascii=False).replace(ghost, "")

    for event in events:
        content = event["content"]
        if "state_key" in event:  # their membership, the room's earlier names: redacted
            assert not [s for s in (chat, name) if s in shown(content)], event
        elif event["type"] != "m.room.redaction":
            assert content == {} or content.get("body") == ERASED_NOTICE, event
    current = await staff.get_state(room)
    assert not [s for s in (chat, name) if s in shown(current)], current
    state = {(e["type"], e["state_key"]): e["content"] for e in current}
    assert state[("m.room.name", "")] == {"name": "Erased conversation"}
    assert not state.get(("m.room.topic", ""), {}).get("topic")
    assert not state.get(("m.room.canonical_alias", ""), {}).get("alias")
    assert ghost not in await staff.joined_members(room)
    assert state[("m.room.member", ghost)]["membership"] == "leave"
    # In the group, only her events are gone; she left it.
    in_group = [e for e in await staff.room_messages(group_room) if "state_key" not in e]
    assert [e["content"] for e in in_group if e["sender"] == ghost] == [{}]
    assert [e["content"].get("body") for e in in_group if e["sender"] == otto["sender"]] == [
        "Otto hier"
    ]
    assert ghost not in await staff.joined_members(group_room)
    # (c) The file is gone.
    assert await _download_status(erasable, mxc) == 404
    # The audit log names the person by references only.
    log = await _ask(staff, admin, f"privacy audit hooks:{sender}")
    for action in ("erase requested", "erase confirmed", "erase done"):
        assert f"{action} (about a person)" in log, log
    assert (await _ask(staff, admin, f"privacy erase hooks:{sender}")).startswith(
        "The bridge holds nothing of"
    )
    # Never contacted again: the in-house system's consent of theirs is not recorded. They
    # write again (after it, in the same order): a new conversation in a new room (the old
    # room's alias is gone), but no consent contact.
    assert (await stack.peer.send("hooks", {**consent, "id": f"again-{chat}"}))[0] == 200
    assert (await stack.peer.send("hooks", message(f"{chat}-m9", "Ich nochmal")))[0] == 200
    again = await join_invite_named(staff, name)
    assert again != room
    await staff.wait_for_event(body_is("Ich nochmal"), room_id=again)
    barrier = await staff.send_text(again, "Hallo")  # delivered after theirs was recorded
    await stack.peer.wait_for(lambda p: p.get("id") == barrier)
    plan = await _ask(staff, admin, f"privacy erase hooks:{sender}")
    assert "• 0 consent contacts" in plan and "1 conversations of theirs" in plan, plan
    job = plan.split("#", 1)[1].split(" ", 1)[0]
    cancel = await _ask(staff, admin, f"privacy erase cancel {job}")
    assert cancel == f"Erasure #{job} cancelled; nothing was erased."
