"""Transcripts end to end through a real Synapse: the core's room history and file posting
(the services the ``transcript`` command uses) against the homeserver, then ``transcript`` in
a webhook conversation (an HTML file in the room with the messages and the note) and
``transcript mail`` in an email conversation (a mail whose HTML has the reply and not the
note). The tests of this module run in order on one stack."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, cast
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from mautrix.appservice import AppServiceAPI
from mautrix.types import UserID

from bridge.config import load
from bridge.core.bridge import StateStore
from bridge.core.sender import MatrixSender
from bridge.core.services import Services
from bridge.core.services import history as history_module
from tests.conftest import MAIL_USER, SERVER_NAME, Stack, build_stack
from tests.e2e.helpers import customer_msg, join_invite_named
from tests.e2e.test_commands import _ask, _room_with_bot
from tests.e2e.test_email import _body_has, mail
from tests.infra.staff import StaffClient

FEATURES = {
    "inbox": {
        "teams": {"support": {"members": [f"@staff:{SERVER_NAME}"]}},
        "accounts": {"hooks": "support", "mail": "support"},
    }
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with build_stack(tmp_path_factory.mktemp("transcript"), features=FEATURES) as st:
        yield st


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def staff(stack: Stack) -> AsyncIterator[StaffClient]:
    client = await StaffClient.login(stack.synapse.base_url, stack.staff_id, stack.staff_password)
    try:
        yield client
    finally:
        await client.close()


@pytest_asyncio.fixture(loop_scope="session")
async def services(stack: Stack) -> AsyncIterator[Services]:
    """The core's services in this process, acting as the bridge bot on the stack's Synapse."""
    config = load(str(stack.config_path))
    async with aiohttp.ClientSession() as session:
        api = AppServiceAPI(
            base_url=stack.synapse.base_url,
            bot_mxid=UserID(stack.bot_id),
            token=config.as_token,
            client_session=session,
            state_store=StateStore(),
            log=cast(Any, logging.getLogger("test.services")),
        )
        sender = MatrixSender(api, UserID(stack.bot_id))
        none = cast(Any, None)
        yield Services(config, {}, sender, none, none, none, none)


async def _download(stack: Stack, staff: StaffClient, mxc: str) -> bytes:
    server, media = mxc.removeprefix("mxc://").split("/", 1)
    url = f"{stack.synapse.base_url}/_matrix/client/v1/media/download/{server}/{quote(media)}"
    headers = {"Authorization": f"Bearer {staff.access_token}"}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.read()


async def test_history_and_post_file(
    stack: Stack, staff: StaffClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_module, "PAGE", 2)  # several pages for a few messages
    room = await _room_with_bot(stack, staff)
    # A third member: the room is not one for commands with the bot (those have two).
    await stack.synapse.aregister_user("other", "pw-other-secret")
    await staff.invite(room, f"@other:{SERVER_NAME}")
    async with await StaffClient.login(
        stack.synapse.base_url, f"@other:{SERVER_NAME}", "pw-other-secret"
    ) as other:
        await other.join(room)
    member = f"/_matrix/client/v3/rooms/{quote(room)}/state/m.room.member/{quote(staff.user_id)}"
    await staff.api("PUT", member, {"membership": "join", "displayname": "Sam <b>"})
    await staff.send_text(room, "one")
    two = await staff.send_text(room, "two")
    await staff.edit(room, two, "zwei")
    await staff.send_event(
        room, "m.room.message", {"msgtype": "m.file", "body": "report.pdf", "url": "mxc://x/y"}
    )
    gone = await staff.send_text(room, "gone")
    await staff.redact(room, gone)
    await staff.send_text(room, "last")

    found = await services.history(room)
    assert found.complete
    mine = [e for e in found.entries if e.sender == staff.user_id]
    assert [(e.body, e.replaces, e.filename) for e in mine] == [
        ("one", None, None),
        ("two", None, None),
        ("zwei", two, None),
        ("report.pdf", None, "report.pdf"),
        ("last", None, None),
    ]
    assert {e.sender_name for e in mine} == {"Sam <b>"}
    stamps = [e.timestamp for e in found.entries]
    assert stamps == sorted(stamps) and stamps[0] > 0
    # A cap on the events looked at: the newest are kept, and the answer says it is cut.
    # The newest four: "last", the redaction, the redacted message (skipped), the file.
    capped = await services.history(room, limit=4)
    assert not capped.complete
    assert [e.body for e in capped.entries] == ["report.pdf", "last"]

    first = await services.post_file(room, b"<p>hi</p>", "t.html", "text/html", txn="t1")
    again = await services.post_file(room, b"<p>hi</p>", "t.html", "text/html", txn="t1")
    assert first is not None and again == first
    event = await staff.wait_for_event(lambda e: e.get("event_id") == first, room_id=room)
    assert event["sender"] == stack.bot_id
    assert event["content"]["msgtype"] == "m.file" and event["content"]["body"] == "t.html"
    assert event["content"]["info"] == {"mimetype": "text/html", "size": 9}
    assert await _download(stack, staff, event["content"]["url"]) == b"<p>hi</p>"


async def test_transcript_posts_the_staff_view(stack: Stack, staff: StaffClient) -> None:
    status, body = await stack.peer.send(
        "hooks", customer_msg("tr-1", "Where is my parcel?", "tr-1-1")
    )
    assert status == 200, body
    # Invited as staff of the account when the room was made, before the inbox named it.
    room = await join_invite_named(staff, "Customer tr-1")
    await staff.wait_for_event(_body_has("Where is my parcel?"), room_id=room)
    reply = await staff.send_text(room, "It ships tomorrow.")
    await stack.peer.wait_for(lambda p: p.get("id") == reply)
    await staff.send_text(room, "// customer is on the watch list")

    answer = await _ask(staff, room, "!bridge transcript")
    assert answer.startswith("📄 Transcript posted as transcript-Customer-tr-1-"), answer
    event = await staff.wait_for_event(
        lambda e: e.get("content", {}).get("msgtype") == "m.file", room_id=room
    )
    assert event["sender"] == stack.bot_id and answer.endswith("messages.")
    document = (await _download(stack, staff, event["content"]["url"])).decode()
    for text in ("Where is my parcel?", "It ships tomorrow.", "// customer is on the watch list"):
        assert text in document
    assert '<div class="msg note">' in document and "team support" in document
    assert (await _ask(staff, room, "!bridge transcript mail")).startswith(
        "Only conversations on an email account"
    )


async def test_transcript_mail_has_the_reply_and_not_the_note(
    stack: Stack, staff: StaffClient
) -> None:
    customer = "anna.transcript@customer.test"
    raw, _ = mail(customer, "Lieferung", "Wo bleibt meine Lieferung?", name="Anna Kunde")
    await stack.dovecot.adeliver(MAIL_USER, raw)
    room = await join_invite_named(staff, "Anna Kunde")
    await staff.wait_for_event(_body_has("Wo bleibt meine Lieferung?"), room_id=room, timeout=60)
    await staff.send_text(room, "Sie kommt morgen.")
    await stack.smtp.wait_for(lambda m: m.rcpt_tos == [customer], timeout=30)
    await staff.send_text(room, "note: VIP, nur intern")

    answer = await _ask(staff, room, "!bridge transcript mail")
    # The customer's mail (and its original.eml), the reply: not the note, not the notices.
    assert answer.startswith("📧 The transcript (3 messages the customer saw, no notes)"), answer
    sent = await stack.smtp.wait_for(
        lambda m: m.rcpt_tos == [customer] and "Transcript" in m.message.as_string(), timeout=30
    )
    html = sent.message.get_body(("html",)).get_content()
    plain = sent.message.get_body(("plain",)).get_content()
    for part in (html, plain):
        assert "Sie kommt morgen." in part and "Wo bleibt meine Lieferung?" in part
        assert "original.eml" in part
        assert "VIP" not in part and "support" not in part and "New conversation" not in part
    # The room shows what the customer got.
    await staff.wait_for_event(_body_has("🤖 Automatic message (transcript):"), room_id=room)
