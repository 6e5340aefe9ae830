"""``parse_mail`` on the parts of a mail: attachments and inline images, broken structure, and
machine mail (auto replies, delivery status notifications)."""

from __future__ import annotations

import pytest

from bridge.connectors.email.parse import (
    AUTO_REPLY_PREFIX,
    MailAttachment,
    attachment_bytes,
    parse_mail,
    to_remote_event,
)
from bridge.events import RemoteDeliveryFailure, RemoteMessage

from .parse_support import DSN, MIXED, mail

# --------------------------------------------------------------------------- attachments


def test_attachments_inline_rfc2231_and_forwarded() -> None:
    parsed = parse_mail(MIXED.encode())
    assert parsed.text == "See the logo and the document."
    assert parsed.html == "<p>See the logo  and the document.</p>"
    logo, pdf, note, passwd, forwarded = parsed.attachments
    assert logo == MailAttachment(
        "logo.png", "image/png", b"\x89PNG\r\n\x1a\n", "logo@x", True, "1.2", "base64"
    )
    assert pdf == MailAttachment(
        "док.pdf", "application/pdf", b"%PDF-1.4\n", None, False, "2", "base64"
    )
    assert note.filename == "Notiz für dich.txt" and note.data == b"note"
    assert passwd.filename == "passwd"
    assert forwarded.filename == "Forwarded one.eml"
    assert forwarded.mimetype == "message/rfc822"
    assert b"Message-ID: <inner@example.com>" in forwarded.data
    assert parsed.message_id == "mixed@example.com"  # not the forwarded one's
    assert parsed.hidden_attachments == frozenset()


def test_attachment_bytes_numbering_matches() -> None:
    raw = MIXED.encode()
    parsed = parse_mail(raw)
    for index, part in enumerate(parsed.attachments):
        assert attachment_bytes(raw, index) == (part.data, part.mimetype, part.filename)
    assert attachment_bytes(raw, len(parsed.attachments)) == (
        raw,
        "message/rfc822",
        "original.eml",
    )
    with pytest.raises(IndexError):
        attachment_bytes(raw, len(parsed.attachments) + 1)
    with pytest.raises(IndexError):
        attachment_bytes(raw, -1)


def test_inline_image_without_disposition_and_unnamed_parts() -> None:
    raw = mail(
        'Content-Type: multipart/related; boundary="b"',
        '--b\nContent-Type: text/html\n\n<p>x<img src="cid:a"></p>\n'
        "--b\nContent-Type: image/gif\nContent-ID: <a>\n\nGIF\n"
        "--b\nContent-Type: text/calendar\n\nBEGIN:VCALENDAR\n--b--\n",
    )
    parsed = parse_mail(raw)
    gif, calendar = parsed.attachments
    assert (gif.filename, gif.content_id, gif.inline) == ("attachment.gif", "a", True)
    assert (calendar.filename, calendar.inline) == ("attachment.ics", False)


def test_inline_images_of_the_quoted_history_are_hidden() -> None:
    raw = mail(
        'Content-Type: multipart/related; boundary="b"',
        '--b\nContent-Type: text/html\n\n<p>Answer <img src="cid:new"></p>'
        '<div id="divRplyFwdMsg">From: x</div><p>old <img src="cid:old"></p>\n'
        "--b\nContent-Type: image/png\nContent-ID: <new>\n\nN\n"
        "--b\nContent-Type: image/png\nContent-ID: <old>\n\nO\n--b--\n",
    )
    parsed = parse_mail(raw)
    assert parsed.hidden_attachments == frozenset({1})
    event = to_remote_event(parsed, chat_id="c", chat_name="n")
    assert isinstance(event, RemoteMessage)
    assert [a.url for a in event.attachments] == ["mail-part:0", "mail-part:2"]


# --------------------------------------------------------------------------- broken mail


def test_missing_closing_boundary() -> None:
    raw = mail(
        'Content-Type: multipart/mixed; boundary="b"',
        "--b\nContent-Type: text/plain\n\nfirst part\n--b\nContent-Type: application/pdf\n"
        'Content-Disposition: attachment; filename="a.pdf"\n\n%PDF',
    )
    parsed = parse_mail(raw)
    assert parsed.text == "first part"
    assert parsed.attachments[0].filename == "a.pdf"


def test_missing_boundary_parameter_shows_the_body() -> None:
    raw = mail("Content-Type: multipart/mixed", "just some text\n")
    assert parse_mail(raw).text == "just some text"


def test_garbage_headers() -> None:
    raw = (
        b"From: \x00\xff<<<>>>@@@\n"
        b"Subject: =?utf-8?q?unterminated\n"
        b"Date: not a date at all\n"
        b'Content-Type: text/plain; charset="; boundary=\n'
        b"Message-ID: <<<>>>\n"
        b"References: <a@b> garbage <\n"
        b": no name\n"
        b"Date2 no colon here, so the body starts here\n"
        b"\nbody text\n"
    )
    parsed = parse_mail(raw)
    assert parsed.date is None
    assert parsed.references == ["a@b"]
    assert parsed.message_id.startswith("sha256-")
    assert parsed.text == "Date2 no colon here, so the body starts here\n\nbody text"


def test_empty_and_headerless_input() -> None:
    assert parse_mail(b"").text == ""
    assert parse_mail(b"").from_address == ""
    assert parse_mail(b"\xff\xfe\x00garbage").message_id.startswith("sha256-")
    assert parse_mail(b"no headers here at all").text == "no headers here at all"


def test_huge_headers_and_deep_nesting() -> None:
    huge = "References: " + " ".join(f"<{i}@x>" for i in range(5000))
    parsed = parse_mail(mail(f"{huge}\nSubject: {'x' * 100_000}", "body"))
    assert len(parsed.references) == 100
    assert parsed.references[0] == "0@x" and parsed.references[-1] == "4999@x"
    assert len(parsed.subject) == 1000
    nested = b"".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n'.encode() for i in range(300)
    )
    assert isinstance(parse_mail(nested + b"text").text, str)


# --------------------------------------------------------------------------- machine mail


@pytest.mark.parametrize(
    ("header", "auto"),
    [
        ("Auto-Submitted: auto-replied", True),
        ("Auto-Submitted: auto-generated; owner-email=x@y", True),
        ("Auto-Submitted: no", False),
        ("Auto-Submitted: No ", False),
        ("Precedence: bulk", True),
        ("Precedence: junk", True),
        ("Precedence: list", True),
        ("Precedence: auto_reply", True),
        ("Precedence: first-class", False),
        ("X-Autoreply: yes", True),
        ("X-Autorespond: whatever", True),
        ("X-Mailer: Outlook", False),
    ],
)
def test_auto_submitted(header: str, auto: bool) -> None:
    parsed = parse_mail(mail(f"From: a@example.com\n{header}", "I am out of office."))
    assert parsed.auto_submitted is auto
    event = to_remote_event(parsed, chat_id="c", chat_name="n")
    assert isinstance(event, RemoteMessage)
    assert event.notice is auto
    assert event.text == (AUTO_REPLY_PREFIX if auto else "") + "I am out of office."


def test_envelope_empty() -> None:
    assert parse_mail(mail("Return-Path: <>", "x")).envelope_empty
    assert parse_mail(mail("Return-Path: < >", "x")).envelope_empty
    assert not parse_mail(mail("Return-Path: <a@b.example>", "x")).envelope_empty
    assert not parse_mail(mail("Subject: x", "x")).envelope_empty
    event = to_remote_event(parse_mail(mail("Return-Path: <>", "x")), chat_id="c", chat_name="n")
    assert isinstance(event, RemoteMessage)
    assert event.notice and event.text == AUTO_REPLY_PREFIX + "x"
    assert event.metadata["portal"]["last_automatic"] is True


def test_auto_reply_html_is_prefixed() -> None:
    parsed = parse_mail(
        mail("Auto-Submitted: auto-replied\nContent-Type: text/html", "<p>Away</p>")
    )
    event = to_remote_event(parsed, chat_id="c", chat_name="n")
    assert isinstance(event, RemoteMessage)
    assert event.html == AUTO_REPLY_PREFIX + "<p>Away</p>"


@pytest.mark.parametrize(
    ("original_type", "original_body"),
    [("text/rfc822-headers", ""), ("message/rfc822", "\nThe text we sent.\n")],
)
def test_delivery_status_notification(original_type: str, original_body: str) -> None:
    raw = DSN.format(original_type=original_type, original_body=original_body).encode()
    parsed = parse_mail(raw)
    assert parsed.is_bounce
    assert parsed.bounce_original_message_id == "sent-by-bridge-1@company.example"
    assert parsed.bounce_reason == "550 5.1.1 user unknown (customer@example.com)"
    assert parsed.auto_submitted and parsed.envelope_empty
    event = to_remote_event(parsed, chat_id="customer@example.com", chat_name="Customer")
    assert isinstance(event, RemoteDeliveryFailure)
    assert event.message_id == "sent-by-bridge-1@company.example"
    assert event.reason == "550 5.1.1 user unknown (customer@example.com)"
    assert event.chat.id == "customer@example.com"
    assert event.sender.id == "mailer-daemon@mx.company.example"


def test_dsn_status_only_and_several_recipients() -> None:
    raw = DSN.format(original_type="text/rfc822-headers", original_body="").replace(
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\n",
        "\nFinal-Recipient: rfc822; other@example.com\nAction: failed\nStatus: 5.2.2\n"
        "\nFinal-Recipient: rfc822; fine@example.com\nAction: delivered\nStatus: 2.0.0\n",
    )
    parsed = parse_mail(raw.encode())
    assert parsed.is_bounce
    assert parsed.bounce_reason == (
        "5.1.1 bad destination mailbox address (customer@example.com); "
        "5.2.2 mailbox full (other@example.com)"
    )


def test_delay_notification_is_not_a_bounce() -> None:
    raw = DSN.format(original_type="text/rfc822-headers", original_body="")
    raw = raw.replace("Action: failed", "Action: delayed").replace(
        "Status: 5.1.1", "Status: 4.4.1"
    )
    parsed = parse_mail(raw.encode())
    assert not parsed.is_bounce and parsed.bounce_original_message_id is None
    assert parsed.auto_submitted
    event = to_remote_event(parsed, chat_id="c", chat_name="n")
    assert isinstance(event, RemoteMessage) and event.notice


def test_bounce_without_original_falls_back_to_in_reply_to_then_notice() -> None:
    raw = DSN.format(original_type="text/rfc822-headers", original_body="")
    raw = raw.replace("Message-ID: <sent-by-bridge-1@company.example>\n", "")
    with_reply = raw.replace(
        "Auto-Submitted:", "In-Reply-To: <orig@company.example>\nAuto-Submitted:"
    )
    assert parse_mail(with_reply.encode()).bounce_original_message_id == "orig@company.example"
    parsed = parse_mail(raw.encode())
    assert parsed.is_bounce and parsed.bounce_original_message_id is None
    event = to_remote_event(parsed, chat_id="c", chat_name="n")
    assert isinstance(event, RemoteMessage) and event.notice
    assert (
        event.text
        == "⚠️ A message could not be delivered: 550 5.1.1 user unknown (customer@example.com)"
    )


def test_report_of_another_type_is_not_a_bounce() -> None:
    raw = mail(
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="r"',
        "--r\nContent-Type: text/plain\n\nYour message was read.\n"
        "--r\nContent-Type: message/disposition-notification\n\nFinal-Recipient: rfc822; a@b\n"
        "--r--\n",
    )
    parsed = parse_mail(raw)
    assert not parsed.is_bounce
    assert parsed.text == "Your message was read."
