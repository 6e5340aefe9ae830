"""Email end to end: a real Dovecot (IMAP) and SMTP server <-> the bridge <-> a staff client."""

from __future__ import annotations

import asyncio
import itertools
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from tests.conftest import MAIL_USER, Stack
from tests.e2e.helpers import join_invite_named
from tests.infra.staff import StaffClient

_n = itertools.count(1)


def mail(
    sender: str,
    subject: str,
    text: str,
    *,
    name: str = "Kunde",
    html: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    headers: dict[str, str] | None = None,
    attachment: tuple[bytes, str, str] | None = None,
) -> tuple[bytes, str]:
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = "ACME Support <support@company.test>"
    msg["Subject"] = subject
    message_id = make_msgid(domain="customer.test")
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    if attachment:
        data, mimetype, filename = attachment
        main, _, sub = mimetype.partition("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=filename)
    return bytes(msg), message_id


def _replying_to(event_id: str) -> Any:
    return lambda e: (
        e.get("content", {}).get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
        == event_id
    )


def _body_has(text: str) -> Any:
    return lambda e: e.get("type") == "m.room.message" and text in e["content"].get("body", "")


async def _deliver(stack: Stack, raw: bytes) -> None:
    await stack.dovecot.adeliver(MAIL_USER, raw)


async def test_threading_across_replies(stack: Stack, staff: StaffClient) -> None:
    customer = f"anna{next(_n)}@customer.test"
    raw, first_id = mail(
        customer, "Lieferung 4711", "Wo bleibt meine Lieferung?", name="Anna Kunde"
    )
    await _deliver(stack, raw)
    room_id = await join_invite_named(staff, "Anna Kunde")
    event = await staff.wait_for_event(
        _body_has("Wo bleibt meine Lieferung?"), room_id=room_id, timeout=60
    )
    state = {e["type"]: e for e in await staff.get_state(room_id)}
    assert state["m.room.topic"]["content"]["topic"] == "Lieferung 4711"

    await staff.send_text(room_id, "Sie kommt morgen.", reply_to=event["event_id"])
    sent = await stack.smtp.wait_for(lambda m: m.rcpt_tos == [customer], timeout=30)
    out = sent.message
    assert out["Subject"] == "Re: Lieferung 4711"
    assert out["In-Reply-To"] == first_id
    assert first_id in out["References"]
    assert out["From"].addresses[0].display_name == "staff (ACME Support)"
    assert out["From"].addresses[0].addr_spec == "support@company.test"
    assert out.get_body(("plain",)).get_content().strip() == "Sie kommt morgen."
    assert out.get_body(("html",)) is None or "morgen" in out.get_body(("html",)).get_content()

    raw, second_id = mail(
        customer, "Re: Lieferung 4711", "Danke!\n\nAm Montag schrieb ACME:\n> Sie kommt morgen.",
        name="Anna Kunde", in_reply_to=out["Message-ID"], references=[first_id, out["Message-ID"]],
    )  # fmt: skip
    await _deliver(stack, raw)
    thanks = await staff.wait_for_event(_body_has("Danke!"), room_id=room_id, timeout=60)
    assert "Sie kommt morgen" not in thanks["content"]["body"]  # quoted history trimmed
    assert any(
        e["content"].get("body") == "original.eml"
        for e in await staff.room_messages(room_id) if e["type"] == "m.room.message"
    )  # fmt: skip

    raw, _ = mail(customer, "Neue Frage", "Ganz anderes Thema", name="Anna Kunde")
    await _deliver(stack, raw)
    other_room = None
    # A new subject without references is a new conversation: a second room, same name.
    for _ in range(120):
        await staff.sync_once(0.5)
        new = [r for r in staff.pending_invites if r != room_id]
        if new:
            other_room = new[0]
            break
    assert other_room is not None and other_room != room_id


async def test_hostile_html_charsets_and_attachments(stack: Stack, staff: StaffClient) -> None:
    customer = f"boris{next(_n)}@customer.test"
    html = (
        "<p>Hallo <b>Team</b></p><script>alert(1)</script>"
        '<img src="https://tracker.test/p.gif" width="1" height="1">'
        '<a href="javascript:alert(1)">klick</a>'
    )
    raw, _ = mail(
        customer, "HTML", "Hallo Team", name="Boris", html=html,
        attachment=(b"%PDF-1.4 angebot", "application/pdf", "Angebot.pdf"),
    )  # fmt: skip
    await _deliver(stack, raw)
    room_id = await join_invite_named(staff, "Boris")
    event = await staff.wait_for_event(_body_has("Hallo"), room_id=room_id, timeout=60)
    formatted = event["content"].get("formatted_body", "")
    assert "<b>Team</b>" in formatted or "<strong>Team</strong>" in formatted
    for bad in ("<script", "tracker.test", "javascript:"):
        assert bad not in formatted
    pdf = await staff.wait_for_event(
        lambda e: e.get("content", {}).get("body") == "Angebot.pdf", room_id=room_id, timeout=60
    )
    server, media_id = pdf["content"]["url"][len("mxc://") :].split("/", 1)
    assert (
        await staff.nio.download(server_name=server, media_id=media_id)
    ).body == b"%PDF-1.4 angebot"

    koi8 = (
        b"From: =?koi8-r?b?8MXU0s/X?= <petrov@customer.test>\r\nTo: support@company.test\r\n"
        b"Subject: =?koi8-r?b?98/Q0s/T?=\r\nMessage-ID: <koi8-1@customer.test>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=koi8-r\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    ) + "Здравствуйте!".encode("koi8-r")
    await _deliver(stack, koi8)
    ru_room = await join_invite_named(staff, "Петров")
    await staff.wait_for_event(_body_has("Здравствуйте!"), room_id=ru_room, timeout=60)

    upload, _ = await staff.nio.upload(
        lambda *_: b"contract text", content_type="text/plain", filename="vertrag.txt", filesize=13
    )
    await staff.send_event(room_id, "m.room.message", {
        "msgtype": "m.file", "body": "vertrag.txt", "url": upload.content_uri,
        "info": {"mimetype": "text/plain", "size": 13},
    })  # fmt: skip
    sent = await stack.smtp.wait_for(lambda m: m.rcpt_tos == [customer], timeout=30)
    parts = [p for p in sent.message.iter_attachments()]
    assert [p.get_filename() for p in parts] == ["vertrag.txt"]
    assert parts[0].get_content() == "contract text"


async def test_bounce_and_auto_reply(stack: Stack, staff: StaffClient) -> None:
    customer = f"carla{next(_n)}@customer.test"
    raw, _ = mail(customer, "Frage", "Eine Frage", name="Carla")
    await _deliver(stack, raw)
    room_id = await join_invite_named(staff, "Carla")
    await staff.wait_for_event(_body_has("Eine Frage"), room_id=room_id, timeout=60)
    answer = await staff.send_text(room_id, "Die Antwort")
    sent = await stack.smtp.wait_for(lambda m: m.rcpt_tos == [customer], timeout=30)
    our_id = sent.message["Message-ID"]

    dsn = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.test>\r\n"
        "To: support@company.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <bounce-{next(_n)}@mx.customer.test>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.customer.test\r\n\r\n"
        f"Final-Recipient: rfc822; {customer}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {our_id}\r\nSubject: Re: Frage\r\n--B--\r\n"
    ).encode()
    await _deliver(stack, dsn)
    notice = await staff.wait_for_event(_replying_to(answer), room_id=room_id, timeout=60)
    assert "550" in notice["content"]["body"] and "Not delivered" in notice["content"]["body"]

    before = len(stack.smtp.messages)
    raw, _ = mail(customer, "Abwesend", "Ich bin im Urlaub.", name="Carla",
                  headers={"Auto-Submitted": "auto-replied"})  # fmt: skip
    await _deliver(stack, raw)
    auto_room = await join_invite_named(staff, "Carla")  # a new subject: a new conversation
    auto = await staff.wait_for_event(
        _body_has("Ich bin im Urlaub."), room_id=auto_room, timeout=60
    )
    assert (
        auto["content"]["msgtype"] == "m.notice" and "Automatic reply" in auto["content"]["body"]
    )
    await asyncio.sleep(2)
    assert len(stack.smtp.messages) == before  # nothing answers an automatic mail


async def test_smtp_failures(stack: Stack, staff: StaffClient) -> None:
    customer = f"dora{next(_n)}@customer.test"
    raw, _ = mail(customer, "Hallo", "Hallo", name="Dora")
    await _deliver(stack, raw)
    room_id = await join_invite_named(staff, "Dora")
    await staff.wait_for_event(_body_has("Hallo"), room_id=room_id, timeout=60)
    stack.smtp.fail_next(2, 451)
    await staff.send_text(room_id, "nach Greylisting")
    sent = await stack.smtp.wait_for(lambda m: m.rcpt_tos == [customer], timeout=60)
    assert "nach Greylisting" in sent.message.get_body(("plain",)).get_content()
    stack.smtp.fail_next(1, 550)
    refused = await staff.send_text(room_id, "wird abgelehnt")
    notice = await staff.wait_for_event(_replying_to(refused), room_id=room_id, timeout=60)
    assert "550" in notice["content"]["body"]


async def test_restart_and_uidvalidity_change_lose_and_repeat_nothing(
    stack: Stack, staff: StaffClient
) -> None:
    customer = f"emil{next(_n)}@customer.test"
    raw, first_id = mail(customer, "Serie", "Mail 0", name="Emil")
    await _deliver(stack, raw)
    room_id = await join_invite_named(staff, "Emil")
    await staff.wait_for_event(_body_has("Mail 0"), room_id=room_id, timeout=60)
    stack.bridge.kill()
    for i in (1, 2, 3):
        raw, _ = mail(customer, "Re: Serie", f"Mail {i}", name="Emil", in_reply_to=first_id,
                      references=[first_id])  # fmt: skip
        await _deliver(stack, raw)
    await stack.dovecot.aset_uidvalidity(MAIL_USER)  # renumbered while the bridge was away
    await stack.bridge.astart()
    await staff.wait_for_event(_body_has("Mail 3"), room_id=room_id, timeout=90)
    await asyncio.sleep(2)
    bodies = [
        e["content"]["body"] for e in await staff.room_messages(room_id)
        if e["type"] == "m.room.message" and e["content"]["body"].startswith("Mail ")
    ]  # fmt: skip
    assert bodies == ["Mail 0", "Mail 1", "Mail 2", "Mail 3"]
