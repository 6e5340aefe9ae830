"""Retention end to end through a real Synapse, on SQLite and on PostgreSQL (one stack each):
a webhook customer's messages at times the test chooses (the remote timestamps: the test's
clock) and a mail with an old ``Date``, then ``privacy retention run``: the old messages are
redacted in the room as staff see it, the new ones kept, their mappings gone from the bridge's
database, the room has its ``m.room.retention`` state, and the old mail's ``original.eml`` is
redacted with its file deleted from the media repository (``homeserver.admin_token``: the staff
user is a homeserver admin) while its text stays.

A newer mail's ``original.eml`` kept is checked by the unit tests: a second mail read within
30 s of the first gets no ``original.eml`` here (the email connector's download session does
not see it, a problem of its own). Staff replies (the other direction) are covered by the unit
tests too: their timestamps are the homeserver's, which a test cannot move back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from mautrix.util.async_db import Database
from ruamel.yaml import YAML

from bridge.config import load
from bridge.core.ghosts import GhostManager
from bridge.core.services import Services
from tests.conftest import MAIL_USER, Stack, backend_database, build_stack
from tests.e2e.helpers import body_is, customer_msg, join_invite_named
from tests.e2e.test_commands import _ask, _room_with_bot
from tests.e2e.test_email import mail
from tests.e2e.test_inbox_transcript import services
from tests.infra.staff import StaffClient

__all__ = ["services"]  # the core's services in this process, on this module's stack

DAY = 86_400
FEATURES: dict[str, Any] = {
    "privacy": {
        "retention": {
            "interval": 3600,
            "accounts": {"hooks": {"messages_days": 30}, "mail": {"raw_mail_days": 30}},
        }
    }
}


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=["sqlite", "postgres"])
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    db_url = backend_database(request, "retention")
    async with build_stack(
        tmp_path_factory.mktemp("retention"), features=FEATURES, db_url=db_url
    ) as st:
        yield st


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def staff(stack: Stack) -> AsyncIterator[StaffClient]:
    client = await StaffClient.login(stack.synapse.base_url, stack.staff_id, stack.staff_password)
    try:
        # The staff user is a homeserver admin: its token lets the bridge delete media.
        yaml = YAML()
        data = yaml.load(stack.config_path.read_text())
        data["homeserver"]["admin_token"] = client.access_token
        with stack.config_path.open("w") as f:
            yaml.dump(data, f)
        stack.bridge.stop()
        await stack.bridge.astart()
        yield client
    finally:
        await client.close()


async def mapped(stack: Stack, event_ids: list[str]) -> set[str]:
    """Which of ``event_ids`` still have a message mapping in the bridge's database."""
    db = Database.create(load(str(stack.config_path)).db_url)
    await db.start()
    try:
        marks = ", ".join(f"${n + 1}" for n in range(len(event_ids)))
        rows = await db.fetch(
            f"SELECT event_id FROM message WHERE event_id IN ({marks})", *event_ids
        )
        return {row["event_id"] for row in rows}
    finally:
        await db.stop()


def _eml() -> Any:
    return lambda e: (
        e.get("type") == "m.room.message" and e["content"].get("body") == "original.eml"
    )


async def media_status(stack: Stack, staff: StaffClient, mxc: str) -> int:
    server, media = mxc.removeprefix("mxc://").split("/", 1)
    url = f"{stack.synapse.base_url}/_matrix/client/v1/media/download/{server}/{quote(media)}"
    headers = {"Authorization": f"Bearer {staff.access_token}"}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status


async def test_a_retention_pass_redacts_old_messages_and_raw_mails(
    stack: Stack, staff: StaffClient
) -> None:
    now = time.time()
    chat = "ret-1"
    texts = {"old-1": 40, "old-2": 31, "new-1": 29, "new-2": 0}  # days before now
    for n, (text, days) in enumerate(texts.items()):
        msg = customer_msg(chat, text, f"{chat}-{n}", timestamp=now - days * DAY - 60 + n)
        status, body = await stack.peer.send(stack.account, msg)
        assert status == 200, body
    room = await join_invite_named(staff, f"Customer {chat}")
    events = {
        text: (await staff.wait_for_event(body_is(text), room_id=room))["event_id"]
        for text in texts
    }

    customer = "olga@customer.test"
    old_date = format_datetime(datetime.now(UTC) - timedelta(days=45))
    raw, _ = mail(customer, "Alte Frage", "Damals", name="Olga Kunde",
                         headers={"Date": old_date})  # fmt: skip
    await stack.dovecot.adeliver(MAIL_USER, raw)
    mail_room = await join_invite_named(staff, "Olga Kunde")
    old_eml = await staff.wait_for_event(_eml(), room_id=mail_room, timeout=60)

    commands = await _room_with_bot(stack, staff, is_direct=True)
    answer = await _ask(staff, commands, "privacy retention run")
    assert answer.startswith("Retention pass #"), answer
    assert "redacted 2," in answer and "mappings dropped 3," in answer
    assert "raw mails 1," in answer and "media deleted 1," in answer
    assert "failures 0" in answer and "rooms marked 1," in answer  # the mail rule keeps texts

    seen = {e["event_id"]: e for e in await staff.room_messages(room)}
    for text in ("old-1", "old-2"):
        assert seen[events[text]]["content"] == {}
        assert "redacted_because" in seen[events[text]]["unsigned"]
    for text in ("new-1", "new-2"):
        assert seen[events[text]]["content"]["body"] == text
    assert await mapped(stack, list(events.values())) == {events["new-1"], events["new-2"]}
    state = {e["type"]: e for e in await staff.get_state(room)}
    assert state["m.room.retention"]["content"] == {"max_lifetime": 30 * DAY * 1000}

    mail_seen = {e["event_id"]: e for e in await staff.room_messages(mail_room)}
    assert mail_seen[old_eml["event_id"]]["content"] == {}
    texts_kept = [e["content"].get("body", "") for e in mail_seen.values()]
    assert any("Damals" in t for t in texts_kept)  # the mail's text stays: only its original
    assert await media_status(stack, staff, old_eml["content"]["url"]) == 404

    # The next pass finds nothing more; the command shows the rules and the last pass.
    again = await _ask(staff, commands, "privacy retention run")
    assert "redacted 0," in again and "raw mails 0," in again and "rooms marked 0," in again
    shown = await _ask(staff, commands, "privacy retention")
    assert "hooks: messages_days 30" in shown and "mail: messages_days forever" in shown
    assert "Last pass #" in shown
    audit = await _ask(staff, commands, "privacy audit")
    assert audit.count("retention run") >= 2


async def test_ghosts_leave_a_closed_conversations_room(
    stack: Stack, staff: StaffClient, services: Services
) -> None:
    """The service a closing uses, against Synapse: the bridge's ghosts leave, everyone else
    stays; a repeat does nothing."""
    chat = "ret-close"
    status, body = await stack.peer.send(stack.account, customer_msg(chat, "bye", f"{chat}-1"))
    assert status == 200, body
    room = await join_invite_named(staff, f"Customer {chat}")
    await staff.wait_for_event(body_is("bye"), room_id=room)
    services.ghosts = GhostManager(services.config, services.sender)
    ghosts = [m for m in await staff.joined_members(room) if services.ghosts.is_ghost(m)]
    assert len(ghosts) == 1
    assert await services.ghosts_leave(room) == 1
    assert sorted(await staff.joined_members(room)) == sorted([stack.bot_id, stack.staff_id])
    assert await services.ghosts_leave(room) == 0
