"""Broadcasts end to end through a real Synapse, the webhook peer and the Telegram and
WhatsApp simulators, on SQLite and PostgreSQL: subscribers imported with their proof, the
broadcast room made by the bridge, a draft answered with its recipients per channel, ``send``,
every subscriber gets it exactly once (with the stop hint; on WhatsApp, outside the 24-hour
window, the configured template), one who withdrew gets nothing, the progress notice is edited
in place and the final report is right; ``recipients`` lists them, and WhatsApp's read receipt
reaches its recipient; the email subscriber gets a new mail with the one-click unsubscribe
headers (RFC 8058), whose POST withdraws the consent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from mautrix.util.async_db import Database

import bridge.db
from bridge.config import load
from bridge.features.consent.module import CONSENT
from bridge.features.consent.registry import ImportProof, Registry
from tests.conftest import SERVER_NAME, Stack, backend_database, build_stack
from tests.e2e.helpers import join_invite_named
from tests.infra.staff import StaffClient

NEWS_TEXT = "Yes, send me the monthly newsletter here."
FEATURES: dict[str, Any] = {
    "consent": {
        "lists": {"newsletter": {"title": "Newsletter", "version": "2026-01", "text": NEWS_TEXT}}
    },
    "broadcast": {
        "staff": [f"@staff:{SERVER_NAME}"],
        "lists": {
            "newsletter": {
                "accounts": ["hooks", "tg", "wa", "mail"],
                "whatsapp_template": {"name": "news_update", "language": "en_US"},
            }
        },
        "rates": {"hooks": 50, "tg": 20},
    },
}
HOOK_CHATS = ("b-ann", "b-bob", "b-cyd")
TG_CHATS = (7001, 7002)
WA_NUMBER = "4915111122233"
"""Never wrote: outside the 24-hour window, so the template."""
PROOF = ImportProof(1_700_000_000_000, "2026-01", "the old CRM", "test")
MAIL = "reader@example.org"
"""Imported from a sign-up list; never mailed by the bridge before."""
GONE = "b-dan"
"""Confirmed, then withdrew: gets nothing."""


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=["sqlite", "postgres"])
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    db_url = backend_database(request, "broadcast")
    workdir = tmp_path_factory.mktemp("broadcast")
    async with build_stack(workdir, features=FEATURES, db_url=db_url) as st:
        st.whatsapp.add_template("news_update", "en_US", "News from ACME: {{1}}")
        yield st


@asynccontextmanager
async def registry_of(stack: Stack) -> AsyncIterator[Registry]:
    """The consent registry on the bridge's database, opened by the test."""
    config = load(str(stack.config_path))
    options = CONSENT.parse_config(config.features["consent"], config)
    assert options is not None
    db = Database.create(config.db_url, upgrade_table=bridge.db.upgrade_table)
    bridge.db.init(db)
    await db.start()
    try:
        yield Registry(options)
    finally:
        await db.stop()


async def _subscribe(stack: Stack) -> None:
    """Import the subscribers with their proof (the bridge is stopped meanwhile, so that two
    processes never write its SQLite database at once)."""
    stack.bridge.stop()
    async with registry_of(stack) as registry:
        for chat in (*HOOK_CHATS, GONE):
            await registry.import_identity("hooks", f"user-{chat}", "newsletter", PROOF, chat)
        for user in TG_CHATS:
            stack.telegram.add_user(user, f"Reader {user}")
            await registry.import_identity("tg", str(user), "newsletter", PROOF, str(user))
        await registry.import_identity("wa", WA_NUMBER, "newsletter", PROOF, WA_NUMBER)
        await registry.import_identity("mail", MAIL, "newsletter", PROOF, MAIL)
        gone = await registry.contact_for("hooks", f"user-{GONE}")
        assert gone is not None
        await registry.withdraw(gone, "newsletter", "hooks", {"message_id": "stop"}, "STOP")
    await stack.bridge.astart()


def notice_starting(text: str) -> Any:
    def match(event: dict[str, Any]) -> bool:
        content = event.get("content", {})
        return content.get("msgtype") == "m.notice" and str(content.get("body")).startswith(text)

    return match


async def test_a_broadcast_reaches_every_subscriber_once(stack: Stack) -> None:
    await _subscribe(stack)
    staff = await StaffClient.login(stack.synapse.base_url, stack.staff_id, stack.staff_password)
    try:
        room = await join_invite_named(staff, "Broadcast: Newsletter")
        await staff.send_text(room, "Spring news: 20% off", "<p>Spring news: <b>20% off</b></p>")
        draft = await staff.wait_for_event(notice_starting("Draft "), room_id=room)
        body = draft["content"]["body"]
        assert "it would go to 7 recipients (3 on " in body and "2 on Telegram (tg)" in body
        assert "1 on WhatsApp (wa)" in body
        id_ = body.split(" ")[1].rstrip(":")
        await staff.send_text(room, "send")
        await staff.wait_for_event(notice_starting(f"Broadcast {id_} is starting."), room_id=room)
        report = await staff.wait_for_event(
            notice_starting(f"📣 Broadcast {id_} (Newsletter) finished:"),
            room_id=room,
            timeout=60,
        )
        assert report["content"]["body"] == (
            f"📣 Broadcast {id_} (Newsletter) finished: 7 sent, 0 failed, 0 skipped of 7."
        )
        # the progress notice, edited in place to the end state
        edit = await staff.wait_for_event(
            lambda e: (
                e.get("content", {}).get("m.relates_to", {}).get("rel_type") == "m.replace"
                and "done: 7 sent" in e["content"].get("m.new_content", {}).get("body", "")
            ),
            room_id=room,
        )
        assert edit["sender"] == stack.bot_id
        await staff.send_text(room, "recipients")
        answer = await staff.wait_for_event(
            notice_starting(f"Broadcast {id_} (Newsletter):"), room_id=room
        )
        assert "sent: 3 on " in answer["content"]["body"]
        # WhatsApp outside the window: the template, with the text as its parameter
        (template,) = [m for m in stack.whatsapp.sent if m.wa_id == WA_NUMBER]
        assert template.type == "template"
        assert template.rendered == "News from ACME: Spring news: 20% off"
        # its receipts reach the recipient's row (the chat has no room)
        await stack.whatsapp.emit_statuses(template.wamid, ["delivered", "read"])
        listed = f"on WhatsApp ({WA_NUMBER})"
        for _ in range(30):
            await staff.send_text(room, "recipients read")
            answer = await staff.wait_for_event(
                notice_starting(f"Broadcast {id_} (Newsletter)"), room_id=room, include_seen=False
            )
            if listed in answer["content"]["body"]:
                break
            await asyncio.sleep(0.5)  # the receipt is still on its way through the bridge
        assert answer["content"]["body"].endswith(listed), answer["content"]["body"]
    finally:
        await staff.close()

    got = [p for p in stack.peer.deliveries if p.get("type") == "message"]
    assert sorted(p["chat_id"] for p in got) == sorted(HOOK_CHATS)
    for payload in got:
        assert payload["text"].startswith("Spring news: 20% off")
        assert payload["text"].endswith("Reply STOP to unsubscribe.")
        assert payload["id"].startswith(f"broadcast:{id_}:")
    telegram = [m for m in stack.telegram.sent if m.chat_id in TG_CHATS]
    assert sorted(m.chat_id for m in telegram) == sorted(TG_CHATS)
    assert all("Reply STOP to unsubscribe." in (m.rendered or "") for m in telegram)

    # The mail: a new one to an address the bridge never mailed, with the unsubscribe headers
    # and link; the one-click POST (what a mail client sends) withdraws the consent.
    (mail,) = [m for m in stack.smtp.messages if m.rcpt_tos == [MAIL]]
    header = mail.message["List-Unsubscribe"]
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert header.startswith("<http") and header.endswith(">")
    url = header[1:-1]
    assert url in mail.message.get_body(("plain",)).get_content()
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data="List-Unsubscribe=One-Click", headers={
            "Content-Type": "application/x-www-form-urlencoded"}) as resp:  # fmt: skip
            assert resp.status == 200
    async with registry_of(stack) as registry:
        reader = await registry.contact_for("mail", MAIL)
        assert reader is not None
        assert (await registry.state(reader, "newsletter", "mail")).step == "withdrawn"
