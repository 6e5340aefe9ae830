"""``privacy export`` and ``privacy report`` end to end through a real Synapse, on SQLite and
PostgreSQL (one stack per backend): a webhook customer with a consent step from the in-house
system and a second identity on another account merged into their contact, messages both ways
(a file, an edit on each side, an internal note); an admin's export lands in their direct room
with the bot and not in the portal, and the archive is checked field by field; bad input
(an unknown identity, an ambiguous one, a non-admin) is answered and changes nothing; the
report's counts are those of what the test made. The tests of this module run in order."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import SERVER_NAME, Stack, backend_database, build_stack
from tests.e2e.helpers import body_is, customer_msg, join_invite_named
from tests.e2e.test_commands import _ask, _room_with_bot
from tests.e2e.test_inbox_transcript import _download, staff
from tests.infra.staff import StaffClient

__all__ = ["staff"]  # the staff client fixture, on this module's stack

HOSTILE = '<img src=x onerror=alert(1)> & "Jane"'
CONSENT_TEXT = "Yes, send me <news> & offers."
FEATURES = {
    "inbox": {
        "teams": {"support": {"members": [f"@staff:{SERVER_NAME}"]}},
        "accounts": {"hooks": "support", "dead-end": "support"},
    },
    "consent": {
        "lists": {
            "newsletter": {"title": "Newsletter", "version": "1", "text": CONSENT_TEXT,
                           "accounts": ["hooks", "dead-end"]},
        }
    },
    "privacy": {"export_notes": False},
}  # fmt: skip
CHAT, OTHER = "exp-1", "exp-1b"
NOTE = "// internal: VIP"


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=["sqlite", "postgres"])
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    db_url = backend_database(request, "privacy_export")
    workdir = tmp_path_factory.mktemp("privacy-export")
    async with build_stack(workdir, features=FEATURES, db_url=db_url) as st:
        yield st


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def admin_room(stack: Stack, staff: StaffClient) -> str:
    """The staff member's (an admin's) direct chat with the bot, for commands."""
    return await _room_with_bot(stack, staff, is_direct=True)


def consent_step(chat: str, mid: str) -> dict[str, Any]:
    """A confirmation the in-house system reports through the webhook protocol."""
    return {
        "type": "consent", "id": mid, "chat": {"id": chat},
        "sender": {"id": f"user-{chat}", "name": "Jane"}, "list": "newsletter",
        "step": "confirmed",
        "proof": {"at": int(time.time() * 1000) - 60_000, "source": "crm form",
                  "text_version": "1"},
    }  # fmt: skip


def jane(text: str, mid: str) -> dict[str, Any]:
    """A message of the customer, whose name is hostile HTML."""
    message = customer_msg(CHAT, text, mid)
    message["sender"]["name"] = f"Jane {HOSTILE}"
    return message


def _is_bot_file(stack: Stack) -> Any:
    return lambda e: e.get("sender") == stack.bot_id and e["content"].get("msgtype") == "m.file"


async def test_export_goes_to_the_admin_only(
    stack: Stack, staff: StaffClient, admin_room: str
) -> None:
    peer = stack.peer
    for account, chat in (("hooks", CHAT), ("dead-end", OTHER)):
        status, answer = await peer.send(account, consent_step(chat, f"step-{chat}"))
        assert status == 200, answer
    merged = await _ask(staff, admin_room, f"!bridge contact merge hooks:user-{CHAT} "
                        f"dead-end:user-{OTHER}")  # fmt: skip
    assert merged.startswith("🔗 Contact ") and f"dead-end:user-{OTHER}" in merged, merged

    assert (await peer.send("hooks", jane(f"Hello {HOSTILE}", "exp-1-1")))[0] == 200
    room = await join_invite_named(staff, f"Customer {CHAT}")
    hello = await staff.wait_for_event(body_is(f"Hello {HOSTILE}"), room_id=room)
    reply = await staff.send_text(room, "We check <that>.")
    await peer.wait_for(lambda p: p.get("id") == reply)
    fix = await staff.edit(room, reply, "We check it now.")
    await peer.wait_for(lambda p: p.get("id") == fix)
    peer.files["bill.txt"] = (b"invoice 42\n", "text/plain")
    attached = jane("", "exp-1-2")
    attached["attachments"] = [{"url": peer.file_url("bill.txt"), "filename": "bill.txt"}]
    assert (await peer.send("hooks", attached))[0] == 200
    file_event = await staff.wait_for_event(body_is("bill.txt"), room_id=room)
    edit = {**jane("Thanks a lot", "exp-1-3"), "type": "edit"}
    assert (await peer.send("hooks", jane("Thanks", "exp-1-3")))[0] == 200
    thanks = await staff.wait_for_event(body_is("Thanks"), room_id=room)
    assert (await peer.send("hooks", edit))[0] == 200
    await staff.wait_for_event(
        lambda e: e["content"].get("m.new_content", {}).get("body") == "Thanks a lot",
        room_id=room,
    )
    await staff.send_text(room, NOTE)
    await staff.wait_for_event(body_is(NOTE), room_id=room)

    answer = await _ask(staff, admin_room, f"!bridge privacy export hooks:user-{CHAT}")
    assert answer.startswith("📦 Export privacy-export-"), answer
    assert "1 conversations, 4 messages, 1 files)" in answer
    dm = await join_invite_named(staff, "Data protection")
    assert dm in answer and dm not in (room, admin_room)
    posted = await staff.wait_for_event(_is_bot_file(stack), room_id=dm)
    assert posted["content"]["info"]["mimetype"] == "application/zip"
    # Nothing of it in the conversation's room.
    assert not [e for e in await staff.room_messages(room) if _is_bot_file(stack)(e)]

    zipped = zipfile.ZipFile(io.BytesIO(await _download(stack, staff, posted["content"]["url"])))
    document = json.loads(zipped.read("export.json"))
    assert document["schema_version"] == 1 and document["notes_included"] is False
    assert document["identities"] == [
        {"account": "dead-end", "channel": "Dead end", "remote_user": f"user-{OTHER}",
         "chat": OTHER},
        {"account": "hooks", "channel": "Webhook", "remote_user": f"user-{CHAT}", "chat": CHAT},
    ]  # fmt: skip
    (profile,) = document["profiles"]
    assert (profile["account"], profile["remote_user"]) == ("hooks", f"user-{CHAT}")
    assert profile["display_name"] == f"Jane {HOSTILE} (Webhook)"
    assert profile["matrix_user"] == hello["sender"]
    events = document["consent"]["events"]
    # The two accounts' steps are recorded in whichever order their conversations ran.
    assert sorted((e["account"], e["list"], e["step"]) for e in events) == [
        ("dead-end", "newsletter", "confirmed"), ("hooks", "newsletter", "confirmed")
    ]  # fmt: skip
    assert len(document["consent"]["contacts"]) == 2
    (text,) = document["consent"]["texts"].values()
    assert text["text"] == CONSENT_TEXT and events[0]["text_hash"] in document["consent"]["texts"]

    (conversation,) = document["conversations"]
    assert (conversation["account"], conversation["chat"], conversation["room_id"]) == (
        "hooks", CHAT, room,
    )  # fmt: skip
    assert conversation["inbox"]["team"] == "support" and conversation["history_complete"]
    assert conversation["internal_left_out"] >= 1  # the note, the inbox's notices
    messages = conversation["messages"]
    rows = [(m["event_id"], m["direction"], m["sender"], m["text"]) for m in messages]
    assert rows == [
        (hello["event_id"], "customer", hello["sender"], f"Hello {HOSTILE}"),
        (reply, "staff", staff.user_id, "We check it now."),
        (file_event["event_id"], "customer", hello["sender"], ""),
        (thanks["event_id"], "customer", hello["sender"], "Thanks a lot"),
    ]
    stamps = [m["time_ms"] for m in messages]
    assert stamps == sorted(stamps) and all(m["time"].endswith("+00:00") for m in messages)
    staff_msg = messages[1]
    assert staff_msg["staff"]["mxid"] == staff.user_id and staff_msg["staff"]["name"]
    assert staff_msg["original_text"] == "We check <that>."
    assert [e["event_id"] for e in staff_msg["edits"]] == [fix]
    assert staff_msg["delivery"]["status"] == "sent" and staff_msg["remote_message_id"]
    assert [m["delivery"]["status"] for m in messages] == ["received", "sent"] + ["received"] * 2
    assert messages[3]["original_text"] == "Thanks" and len(messages[3]["edits"]) == 1
    (file,) = messages[2]["files"]
    assert file == {"name": "bill.txt", "path": "media/1-bill.txt", "size": 11}
    assert zipped.read("media/1-bill.txt") == b"invoice 42\n"
    assert NOTE not in json.dumps(document)

    page = zipped.read("index.html").decode()
    assert "<img" not in page and "Hello &lt;img src=x onerror=alert(1)&gt; &amp; " in page
    assert "Jane &lt;img src=x onerror=alert(1)&gt; &amp; &quot;Jane&quot; (Webhook)" in page
    assert "We check it now." in page and "We check &lt;that&gt;." in page
    assert "Yes, send me &lt;news&gt; &amp; offers." in page and "VIP" not in page
    assert "README.txt" in zipped.namelist()

    audit = await _ask(staff, admin_room, "!bridge privacy audit")
    assert audit.count(": export (about a person)") == 1, audit
    # A repeat of the same command event would post nothing new (deterministic txn): a new
    # command makes a new export in the same room.
    again = await _ask(staff, admin_room, f"!bridge privacy export {OTHER}")
    assert dm in again


async def test_bad_input_changes_nothing(
    stack: Stack, staff: StaffClient, admin_room: str
) -> None:
    for account in ("hooks", "dead-end"):
        message = customer_msg(f"amb-{account}", "hi", f"amb-{account}-1")
        message["sender"]["id"] = "user-amb"
        assert (await stack.peer.send(account, message))[0] == 200
    await join_invite_named(staff, "Customer amb-dead-end")
    before = await _ask(staff, admin_room, "!bridge privacy audit")
    unknown = await _ask(staff, admin_room, "!bridge privacy export hooks:nobody-here")
    assert unknown == "The bridge holds nothing of 'hooks:nobody-here'."
    ambiguous = await _ask(staff, admin_room, "!bridge privacy export user-amb")
    assert "known on several channel accounts" in ambiguous
    assert "dead-end:user-amb" in ambiguous and "hooks:user-amb" in ambiguous

    await stack.synapse.aregister_user("clerk", "pw-clerk-secret")
    async with await StaffClient.login(
        stack.synapse.base_url, f"@clerk:{SERVER_NAME}", "pw-clerk-secret"
    ) as clerk:
        clerk_room = await _room_with_bot(stack, clerk, is_direct=True)
        refused = await _ask(clerk, clerk_room, f"!bridge privacy export hooks:user-{CHAT}")
        assert "admin" in refused.lower(), refused
        await clerk.sync_once(1)
        assert clerk.pending_invites == {}
    # Nothing recorded, nothing posted.
    assert await _ask(staff, admin_room, "!bridge privacy audit") == before


async def test_report_counts(stack: Stack, staff: StaffClient, admin_room: str) -> None:
    report = await _ask(staff, admin_room, "!bridge privacy report")
    lines = {line.split(" (")[0]: line for line in report.splitlines()}
    # hooks: Jane (contact, her conversation, her ghost) and the ambiguous customer;
    # messages: Jane's three (edits add none), the reply, and the ambiguous customer's one.
    assert lines["• hooks"].endswith(
        ": 1 contacts, 2 conversations, 2 ghosts, 5 messages (1 files), oldest item "
        + time.strftime("%Y-%m-%d", time.gmtime())
    ), report
    assert ": 1 contacts, 1 conversations, 1 ghosts, 1 messages (0 files)," in lines["• dead-end"]
    assert "• mail" in lines and "Suppression list (erased people, as keyed hashes): 0" in report
    assert "Unfinished privacy jobs: none" in report
    audit = await _ask(staff, admin_room, "!bridge privacy audit")
    assert ": report [" in audit and "messages=" in audit
