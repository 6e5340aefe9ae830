"""``parse_mail`` and ``to_remote_event`` on concrete mails, built here as raw bytes."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.connectors.email.parse import (
    AUTO_REPLY_PREFIX,
    MailAttachment,
    ParsedMail,
    attachment_bytes,
    decode_header,
    normalize_subject,
    parse_mail,
    to_remote_event,
    trim_html,
    trim_text,
)
from bridge.connectors.sanitize import html_to_text
from bridge.events import RemoteDeliveryFailure, RemoteEvent, RemoteMessage


def mail(headers: str, body: str | bytes = "", *, crlf: bool = False) -> bytes:
    """A raw mail from dedented header lines and a body."""
    head = textwrap.dedent(headers).strip("\n") + "\n\n"
    raw = head.encode() + (body.encode() if isinstance(body, str) else body)
    return raw.replace(b"\n", b"\r\n") if crlf else raw


BASIC = """\
    From: Jane Customer <Jane.Customer@Example.COM>
    To: Support <support@company.example>, sales@company.example
    Subject: Order 1234
    Date: Mon, 05 Feb 2024 10:30:00 +0100
    Message-ID: <abc123@mail.example.com>
    """


def test_plain_mail() -> None:
    raw = mail(BASIC, "Hello,\n\nwhere is my order?\n\nJane\n", crlf=True)
    parsed = parse_mail(raw)
    assert parsed.message_id == "abc123@mail.example.com"
    assert parsed.from_address == "jane.customer@example.com"
    assert parsed.from_name == "Jane Customer"
    assert parsed.to == ["support@company.example", "sales@company.example"]
    assert parsed.subject == "Order 1234"
    assert parsed.normalized_subject == "Order 1234"
    assert parsed.date == 1707125400.0
    assert parsed.text == "Hello,\n\nwhere is my order?\n\nJane"
    assert parsed.html is None
    assert parsed.attachments == []
    assert parsed.in_reply_to == [] and parsed.references == []
    assert not parsed.auto_submitted and not parsed.envelope_empty and not parsed.is_bounce
    assert parsed.raw == raw


def test_threading_headers() -> None:
    raw = mail(
        """\
        From: a@example.com
        Message-ID: <3@x.example>
        In-Reply-To: <2@x.example>
        References: <1@x.example>
          <2@x.example> <1@x.example>
        Subject: Re: AW: WG: Sv: Fwd:   Order   1234
        """,
        "hi",
    )
    parsed = parse_mail(raw)
    assert parsed.in_reply_to == ["2@x.example"]
    assert parsed.references == ["1@x.example", "2@x.example"]
    assert parsed.subject == "Re: AW: WG: Sv: Fwd:   Order   1234"
    assert parsed.normalized_subject == "Order 1234"


@pytest.mark.parametrize(
    ("subject", "normalized"),
    [
        ("RE: RE: hello", "hello"),
        ("Fw: hello", "hello"),
        ("Re[2]: hello", "hello"),
        ("AW: Antw: hello  world", "hello world"),
        ("Réunion: demain", "Réunion: demain"),
        ("Re:", ""),
    ],
)
def test_normalize_subject(subject: str, normalized: str) -> None:
    assert normalize_subject(subject) == normalized


def test_missing_message_id_is_synthetic_and_stable() -> None:
    raw = mail("From: a@example.com\nSubject: x", "body")
    parsed = parse_mail(raw)
    assert parsed.message_id == f"sha256-{hashlib.sha256(raw).hexdigest()}@bridge"
    assert parse_mail(raw).message_id == parsed.message_id


def test_message_id_without_brackets() -> None:
    assert parse_mail(mail("Message-ID: bare@id.example", "x")).message_id == "bare@id.example"


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("=?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=", "Grüße aus Köln"),
        ("=?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=", "Grüße aus Köln"),
        ("=?KOI8-R?B?8NLJ18XU?=", "Привет"),
        ("=?iso-2022-jp?B?GyRCJDMkcyRLJEEkTxsoQg==?=", "こんにちは"),
        ("=?Shift_JIS?B?grGC8YLJgr+CzQ==?=", "こんにちは"),
        ("=?utf-8?q?caf=C3=A9?= =?utf-8?q?_au_lait?=", "café au lait"),
        # a UTF-8 character split across two encoded words
        ("=?UTF-8?B?w6k=?= =?UTF-8?B?w6g=?=", "éè"),
        ("=?utf-8*en?q?hello?=", "hello"),
        ("plain =?utf-8?q?and?= encoded", "plain and encoded"),
        ("=?x-no-such-charset?q?abc=FF?=", "abc\ufffd"),
        ("=?utf-8?b?not base64 at all?=", "=?utf-8?b?not base64 at all?="),
        ("=?utf-8?b?!!!?=", ""),
    ],
)
def test_encoded_word_subjects(encoded: str, decoded: str) -> None:
    assert decode_header(encoded) == decoded
    assert parse_mail(mail(f"Subject: {encoded}", "x")).subject == decoded


def test_raw_utf8_and_latin1_headers() -> None:
    raw = "From: Jörg Müller <jörg@example.de>\nSubject: Grüße\n\nx".encode()
    parsed = parse_mail(raw)
    assert parsed.subject == "Grüße"
    assert parsed.from_name == "Jörg Müller"
    assert parsed.from_address == "jörg@example.de"
    latin = "Subject: Grüße\n\nx".encode("latin-1")
    assert parse_mail(latin).subject == "Grüße"


def test_encoded_display_name() -> None:
    raw = mail("From: =?utf-8?q?M=C3=BCller=2C_J=C3=B6rg?= <J@EXAMPLE.de>", "x")
    parsed = parse_mail(raw)
    assert parsed.from_name == "Müller, Jörg"
    assert parsed.from_address == "j@example.de"


@pytest.mark.parametrize(
    ("charset", "body", "text"),
    [
        (
            "windows-1252",
            "\x93Quoted\x94 \x96 it\x92s 5\x80".encode("latin-1"),
            "“Quoted” – it’s 5€",
        ),
        ("iso-8859-1", "Gr\xfc\xdfe".encode("latin-1"), "Grüße"),
        ("iso-8859-1", b"smart \x93quotes\x94", "smart “quotes”"),  # mislabelled cp1252
        ("koi8-r", "Привет".encode("koi8-r"), "Привет"),
        ("shift_jis", "こんにちは".encode("shift_jis"), "こんにちは"),
        ("utf-8", "żółć".encode(), "żółć"),
        ("utf-8", b"bad \xff byte", "bad \ufffd byte"),
        ("x-unknown-charset", b"abc \xe4 def", "abc \ufffd def"),
        ("base64", b"not a text codec", "not a text codec"),
        ("us-ascii", "undeclared ümlaut".encode(), "undeclared ümlaut"),
    ],
)
def test_body_charsets(charset: str, body: bytes, text: str) -> None:
    raw = mail(
        f"Content-Type: text/plain; charset={charset}\nContent-Transfer-Encoding: 8bit", body
    )
    assert parse_mail(raw).text == text


def test_no_content_type_raw_8bit_body() -> None:
    assert parse_mail(mail("Subject: x", "na\xefve".encode("latin-1"))).text == "naïve"
    assert parse_mail(mail("Subject: x", "naïve".encode())).text == "naïve"


def test_quoted_printable_and_base64_bodies() -> None:
    qp = mail(
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable",
        "Gr=C3=BC=C3=9Fe, a long line that is so=\n ft-wrapped\n",
    )
    assert parse_mail(qp).text == "Grüße, a long line that is so ft-wrapped"
    b64 = mail(
        "Content-Type: text/plain; charset=koi8-r\nContent-Transfer-Encoding: base64",
        base64.encodebytes("Привет, мир".encode("koi8-r")).decode(),
    )
    assert parse_mail(b64).text == "Привет, мир"


def test_format_flowed() -> None:
    raw = mail(
        "Content-Type: text/plain; charset=utf-8; format=flowed; delsp=no",
        "This is a long \nparagraph that flows.\nNew line.\n",
    )
    assert parse_mail(raw).text == "This is a long paragraph that flows.\nNew line."


# --------------------------------------------------------------------------- HTML


def test_html_only_is_sanitized_and_rendered_as_text() -> None:
    html = """<html><head><title>News</title>
    <link rel="stylesheet" href="https://evil.example/remote.css">
    <style>@import url(https://evil.example/x.css); p { color: red }</style>
    <script>alert('xss')</script></head>
    <body onload="steal()">
    <p>Hello <b>Jane</b>,</p>
    <p>Your <a href="https://shop.example/order/1">order</a> has shipped.
    <a href="javascript:alert(1)">Click</a></p>
    <img src="x" onerror="alert(1)">
    <img src="https://t.example/p.gif" width="1" height="1">
    <div style="background:url(https://evil.example/bg.png)">Thanks</div>
    </body></html>"""
    raw = mail("Content-Type: text/html; charset=utf-8\nMessage-ID: <h@x>", html)
    parsed = parse_mail(raw)
    assert parsed.html is not None
    for bad in ("<script", "alert", "onload", "onerror", "javascript:", "t.example", "style",
                "evil.example", "<img", "<title", "News"):  # fmt: skip
        assert bad not in parsed.html, bad
    assert '<a href="https://shop.example/order/1" rel="noopener">order</a>' in parsed.html
    assert "<b>Jane</b>" in parsed.html
    assert parsed.text == (
        "Hello Jane,\n\nYour order (https://shop.example/order/1) has shipped. Click\n\nThanks"
    )


def test_multipart_alternative_prefers_plain_for_text_and_html_for_html() -> None:
    raw = mail(
        """\
        From: a@example.com
        MIME-Version: 1.0
        Content-Type: multipart/alternative; boundary="alt"
        """,
        """\
--alt
Content-Type: text/plain; charset=utf-8

Plain version
--alt
Content-Type: text/html; charset=utf-8

<p>HTML <i>version</i></p>
--alt--
""",
    )
    parsed = parse_mail(raw)
    assert parsed.text == "Plain version"
    assert parsed.html == "<p>HTML <i>version</i></p>"
    assert parsed.attachments == []


def test_html_charset_from_meta() -> None:
    body = '<meta charset="windows-1252"><p>\x93hi\x94</p>'.encode("latin-1")
    parsed = parse_mail(mail("Content-Type: text/html", body))
    assert parsed.html == "<p>“hi”</p>"


# --------------------------------------------------------------------------- attachments

MIXED = """\
From: a@example.com
Message-ID: <mixed@example.com>
Content-Type: multipart/mixed; boundary="mix"

--mix
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8

See the logo and the document.
--alt
Content-Type: text/html; charset=utf-8

<p>See the logo <img src="cid:logo@x"> and the document.</p>
--alt--
--rel
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-ID: <logo@x>
Content-Disposition: inline; filename="logo.png"

iVBORw0KGgo=
--rel--
--mix
Content-Type: application/pdf
Content-Disposition: attachment; filename*=UTF-8''%D0%B4%D0%BE%D0%BA.pdf
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--mix
Content-Type: text/plain; name="=?utf-8?q?Notiz_f=C3=BCr_dich.txt?="
Content-Disposition: attachment

note
--mix
Content-Type: application/octet-stream
Content-Disposition: attachment; filename="../../etc/passwd"

x
--mix
Content-Type: message/rfc822

From: b@example.com
Subject: Forwarded one
Message-ID: <inner@example.com>

inner body
--mix--
"""
MIXED_SECTIONS = ["1.2", "2", "3", "4", "5"]
"""The IMAP body sections of MIXED's attachments."""


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


DSN = """\
Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.company.example>
To: support@company.example
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
Message-ID: <dsn-1@mx.company.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
    boundary="dsn"

--dsn
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--dsn
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.company.example
X-Postfix-Queue-ID: 4F1E2A
Arrival-Date: Mon,  5 Feb 2024 10:30:00 +0100 (CET)

Final-Recipient: rfc822; customer@example.com
Original-Recipient: rfc822;customer@example.com
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.com
Diagnostic-Code: smtp; 550 5.1.1 user unknown

--dsn
Content-Description: Undelivered Message Headers
Content-Type: {original_type}

From: support@company.example
To: customer@example.com
Subject: Re: Order 1234
Message-ID: <sent-by-bridge-1@company.example>
{original_body}
--dsn--
"""


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


# --------------------------------------------------------------------------- trimming

GMAIL_TEXT = """\
Thanks, that works for me.

On Mon, Feb 5, 2024 at 10:30 AM Support Team <support@company.example>
wrote:

> Hello Jane,
>
> your order has shipped.
>
"""

GMAIL_HTML = """\
<div dir="ltr">Thanks, that works for me.<div><br></div></div><br>
<div class="gmail_quote gmail_quote_container"><div dir="ltr" class="gmail_attr">On Mon, Feb 5,
2024 at 10:30 AM Support Team
&lt;<a href="mailto:support@company.example">support@company.example</a>&gt; wrote:<br></div>
<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex">
Hello Jane,<br>your order has shipped.</blockquote></div>
"""

GMAIL_WRAPPED_TEXT = """\
Sure.

On Mon, Feb 5, 2024 at 10:30 AM Support Team of a Company With a Long Name <
support@company.example> wrote:

> Hello
"""

OUTLOOK_TEXT = """\
Please cancel it.

Best regards
Max

________________________________
From: Support Team <support@company.example>
Sent: Monday, February 5, 2024 10:30 AM
To: Max <max@example.com>
Subject: Order 1234

Hello Max, your order has shipped.
"""

OUTLOOK_HTML = """\
<html><head><style>p.MsoNormal{margin:0}</style></head><body>
<div dir="ltr"><p>Please cancel it.</p></div>
<div id="appendonsend"></div>
<hr style="display:inline-block;width:98%" tabindex="-1">
<div id="divRplyFwdMsg" dir="ltr"><b>From:</b> Support Team<br><b>Sent:</b> Monday</div>
<div>Hello Max, your order has shipped.</div>
</body></html>
"""

OUTLOOK_DESKTOP_HTML = """\
<div class=WordSection1><p class=MsoNormal>Bitte stornieren.<o:p></o:p></p>
<div><div style='border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm'>
<p class=MsoNormal><b>Von:</b> Support Team &lt;support@company.example&gt;<br>
<b>Gesendet:</b> Montag, 5. Februar 2024 10:30<br><b>An:</b> Max</p></div></div>
<p class=MsoNormal>Hallo Max, Ihre Bestellung ist unterwegs.</p></div>
"""

THUNDERBIRD_HTML = """\
<p>Sounds good.</p>
<div class="moz-signature">-- <br>Jane Customer<br>ACME Inc.</div>
<div class="moz-cite-prefix">On 05.02.24 10:30, Support Team wrote:<br></div>
<blockquote type="cite" cite="mid:1@x">Hello Jane</blockquote>
"""

GERMAN_TEXT = """\
Vielen Dank!

Am 05.02.2024 um 10:30 schrieb Support Team <support@company.example>:
> Hallo Max,
> Ihre Bestellung ist unterwegs.
"""

FRENCH_TEXT = """\
Merci beaucoup.

Le lun. 5 févr. 2024 à 10:30, Support <support@company.example> a écrit :
> Bonjour
"""

ORIGINAL_MESSAGE_TEXT = """\
See below.

-----Original Message-----
From: Support
Subject: x

old text
"""

URSPRUENGLICH_TEXT = """\
Siehe unten.

-------- Ursprüngliche Nachricht --------
Von: Support
"""

SIGNATURE_TEXT = """\
Here is my answer.

-- \nJane Customer
ACME Inc. | +1 555 0100
"""


@pytest.mark.parametrize(
    ("text", "trimmed"),
    [
        (GMAIL_TEXT, "Thanks, that works for me."),
        (OUTLOOK_TEXT, "Please cancel it.\n\nBest regards\nMax"),
        (GERMAN_TEXT, "Vielen Dank!"),
        (GMAIL_WRAPPED_TEXT, "Sure."),
        (FRENCH_TEXT, "Merci beaucoup."),
        (ORIGINAL_MESSAGE_TEXT, "See below."),
        (URSPRUENGLICH_TEXT, "Siehe unten."),
        (SIGNATURE_TEXT, "Here is my answer."),
        ("Answer\n--\nsig", "Answer"),
        ("Inline answer\n\n> quoted\n> more\n\n", "Inline answer"),
        ("Jane wrote:\n> a\nmy reply below\n> b\n", "Jane wrote:\n> a\nmy reply below"),
        ("My reply\n\nJane wrote:\n> a\n> b", "My reply"),
        # never empty: all of it looks like history, so all of it is shown
        ("> only a quote", "> only a quote"),
        ("-- \nonly a signature", "--\nonly a signature"),
        ("On Monday I wrote: nothing", "On Monday I wrote: nothing"),
        (
            "Text ending in\nOn the list, people wrote:\nmore",
            "Text ending in\nOn the list, people wrote:\nmore",
        ),
    ],
)
def test_trim_text(text: str, trimmed: str) -> None:
    assert trim_text(text) == trimmed


@pytest.mark.parametrize(
    ("html", "text"),
    [
        (GMAIL_HTML, "Thanks, that works for me."),
        (OUTLOOK_HTML, "Please cancel it."),
        (OUTLOOK_DESKTOP_HTML, "Bitte stornieren."),
        (THUNDERBIRD_HTML, "Sounds good."),
        ('<p>Answer</p><blockquote type="cite"><p>On x wrote</p></blockquote>', "Answer"),
        ("<p>Kept</p><p>-----Original Message-----</p><p>old</p>", "Kept"),
        (
            "<p>Kept</p><p>On Mon, 5 Feb 2024, Bob &lt;<a href='mailto:b@x'>b@x</a>&gt; wrote:</p>"
            "<p>old</p>",
            "Kept",
        ),  # fmt: skip
        ('<span style="display:none">preheader</span><p>Visible</p>', "Visible"),
        # only history: shown whole rather than nothing
        ('<blockquote type="cite"><p>All quoted</p></blockquote>', "> All quoted"),
    ],
)
def test_trim_html(html: str, text: str) -> None:
    raw = mail("Content-Type: text/html; charset=utf-8", html)
    parsed = parse_mail(raw)
    assert parsed.text == text
    assert parsed.html is not None
    assert html_to_text(parsed.html) == text


def test_trim_html_keeps_structure() -> None:
    assert (
        trim_html('<div><p>a</p><div class="gmail_quote">b</div></div>') == "<div><p>a</p></div>"
    )
    assert trim_html("<p>a<br><br></p><hr>") == "<p>a</p>"


def test_gmail_reply_multipart() -> None:
    raw = mail(
        """\
        From: Jane <jane@example.com>
        Subject: Re: Order 1234
        Message-ID: <reply@mail.gmail.com>
        In-Reply-To: <sent-1@company.example>
        References: <first@example.com> <sent-1@company.example>
        Content-Type: multipart/alternative; boundary="000"
        """,
        f"--000\nContent-Type: text/plain; charset=UTF-8\n\n{GMAIL_TEXT}\n"
        f"--000\nContent-Type: text/html; charset=UTF-8\n\n{GMAIL_HTML}\n--000--\n",
    )
    parsed = parse_mail(raw)
    assert parsed.text == "Thanks, that works for me."
    assert parsed.html == "<div>Thanks, that works for me.</div>"
    event = to_remote_event(parsed, chat_id="jane@example.com", chat_name="Jane")
    assert isinstance(event, RemoteMessage)
    assert event.metadata["portal"]["references"] == [
        "first@example.com",
        "sent-1@company.example",
        "reply@mail.gmail.com",
    ]


def test_forwards_are_not_trimmed() -> None:
    body = "FYI, see below.\n\n-----Original Message-----\nFrom: Bob\n\nThe actual content.\n"
    for subject, text in [
        ("Fwd: Invoice", body.strip()),
        ("WG: Rechnung", body.strip()),
        ("Re: Fwd: Invoice", "FYI, see below."),
    ]:
        assert parse_mail(mail(f"Subject: {subject}", body)).text == text
    html = f"<p>FYI</p>{OUTLOOK_HTML}"
    parsed = parse_mail(mail("Subject: FW: Order\nContent-Type: text/html", html))
    assert "Hello Max, your order has shipped." in parsed.text
    assert parsed.html is not None and "Hello Max" in parsed.html


# --------------------------------------------------------------------------- events


def test_to_remote_event_message() -> None:
    raw = MIXED.encode()
    parsed = parse_mail(raw)
    event = to_remote_event(parsed, chat_id="a@example.com", chat_name="A")
    assert isinstance(event, RemoteMessage)
    assert event.message_id == "mixed@example.com"
    assert event.chat.id == "a@example.com" and event.chat.name == "A"
    assert event.sender.id == "a@example.com"
    assert event.reply_to is None and not event.notice
    assert event.text == parsed.text and event.html == parsed.html
    urls = [a.url for a in event.attachments]
    assert urls == [f"mail-part:{i}" for i in range(6)]
    assert [a.extra["index"] for a in event.attachments] == list(range(6))
    assert event.attachments[-1].extra["original"] is True
    assert [a.extra["section"] for a in event.attachments] == [*MIXED_SECTIONS, ""]
    assert [a.extra["sha256"] for a in event.attachments] == [
        hashlib.sha256(data).hexdigest() for data in [*(p.data for p in parsed.attachments), raw]
    ]
    eml = event.attachments[-1]
    assert (eml.filename, eml.mimetype, eml.size) == ("original.eml", "message/rfc822", len(raw))
    assert event.attachments[1].filename == "док.pdf"
    assert event.attachments[1].size == 9
    assert event.metadata == {
        "portal": {
            "subject": "",
            "contact": "a@example.com",
            "contact_name": None,
            "last_message_id": "mixed@example.com",
            "references": ["mixed@example.com"],
            "last_automatic": False,
        }
    }
    # the event survives the core's JSON round trip
    assert RemoteEvent.from_json(json.loads(json.dumps(event.to_json()))) == event
    without = to_remote_event(parsed, chat_id="c", chat_name="n", eml_attachment=False)
    assert isinstance(without, RemoteMessage) and len(without.attachments) == 5


def test_references_in_metadata_are_capped() -> None:
    refs = " ".join(f"<{i}@x>" for i in range(30))
    parsed = parse_mail(mail(f"References: {refs}\nMessage-ID: <new@x>\nFrom: a@b.example", "x"))
    event = to_remote_event(parsed, chat_id="c", chat_name="n")
    references = event.metadata["portal"]["references"]
    assert len(references) == 20 and references[-1] == "new@x" and references[0] == "11@x"


def test_sender_fallbacks() -> None:
    assert parse_mail(mail("Sender: S <s@x.example>", "x")).from_address == "s@x.example"
    assert parse_mail(mail("Return-Path: <r@x.example>", "x")).from_address == "r@x.example"
    parsed = parse_mail(mail("Subject: nobody", "x"))
    assert parsed.from_address == "" and parsed.from_name is None
    assert to_remote_event(parsed, chat_id="c", chat_name="n").sender.id == "unknown@invalid"


def test_nul_and_surrogates_never_reach_events() -> None:
    raw = mail(
        "Subject: a\x00b\nContent-Type: text/plain; charset=unicode_escape", b"x\\ud800y\x00z"
    )
    parsed = parse_mail(raw)
    event = to_remote_event(parsed, chat_id="c", chat_name="n")
    json.dumps(event.to_json()).encode("utf-8")
    assert "\x00" not in parsed.text and "\x00" not in parsed.subject


# --------------------------------------------------------------------------- properties

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SAMPLES = [
    MIXED.encode(),
    DSN.format(original_type="message/rfc822", original_body="\nbody\n").encode(),
    mail(BASIC, "Hello\n\n" + GERMAN_TEXT),
    mail("Content-Type: text/html; charset=utf-8", OUTLOOK_HTML + THUNDERBIRD_HTML),
    mail(
        'Content-Type: multipart/alternative; boundary="a"\nSubject: =?koi8-r?b?8NLJ18XU?=',
        f"--a\nContent-Type: text/plain\n\n{OUTLOOK_TEXT}\n--a\nContent-Type: text/html\n\n"
        f"{GMAIL_HTML}\n--a--\n",
    ),
]


def check_consistent(parsed: ParsedMail, raw: bytes) -> None:
    assert parsed.raw == raw
    assert isinstance(parsed.message_id, str) and parsed.message_id
    assert all(isinstance(i, str) and i for i in parsed.in_reply_to + parsed.references)
    assert isinstance(parsed.subject, str) and isinstance(parsed.normalized_subject, str)
    assert (
        isinstance(parsed.from_address, str) and parsed.from_address == parsed.from_address.lower()
    )
    assert parsed.from_name is None or isinstance(parsed.from_name, str)
    assert all(isinstance(a, str) for a in parsed.to)
    assert parsed.date is None or isinstance(parsed.date, float)
    assert isinstance(parsed.text, str) and (parsed.html is None or isinstance(parsed.html, str))
    for part in parsed.attachments:
        assert isinstance(part.filename, str) and part.filename
        assert re.fullmatch(r"[^/\s]+/[^/\s]+", part.mimetype)
        assert isinstance(part.data, bytes) and isinstance(part.inline, bool)
    assert parsed.hidden_attachments <= set(range(len(parsed.attachments)))
    if parsed.html is not None:
        assert "<script" not in parsed.html.lower()
    for value in (parsed.text, parsed.subject, parsed.html or "", parsed.from_name or ""):
        value.encode("utf-8")
        assert "\x00" not in value
    event = to_remote_event(parsed, chat_id="chat", chat_name="Chat")
    assert isinstance(event, RemoteMessage | RemoteDeliveryFailure)
    json.dumps(event.to_json()).encode("utf-8")
    if parsed.attachments:
        last = len(parsed.attachments) - 1
        part = parsed.attachments[last]
        assert attachment_bytes(raw, last) == (part.data, part.mimetype, part.filename)


@SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    check_consistent(parse_mail(raw), raw)


@st.composite
def mutated_mails(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(raw)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        chunk = draw(
            st.one_of(
                st.binary(max_size=20),
                st.sampled_from(
                    [b"\n", b"\r\n", b"--", b"=?", b"?=", b"=?utf-8?b?", b"boundary=", b"<", b">",
                     b"Content-Type: multipart/mixed\n", b"charset=koi8-r", b"\xff\xfe", b"\x00",
                     b"Content-Transfer-Encoding: base64\n", b"<blockquote type=cite>", b"<!--",
                     b"<![", b"filename*=utf-8''%FF", b";", b"\n\n", b"\t", b"-- \n"]
                ),
            )
        )  # fmt: skip
        if action == "insert":
            raw[position:position] = chunk
        elif action == "delete":
            del raw[position : position + len(chunk) + 1]
        elif action == "replace":
            raw[position : position + len(chunk)] = chunk
        else:
            del raw[position:]
    return bytes(raw)


@SETTINGS
@given(mutated_mails())
def test_mutated_mails_never_raise(raw: bytes) -> None:
    check_consistent(parse_mail(raw), raw)


@SETTINGS
@given(st.text(max_size=300))
def test_header_text_never_raises(value: str) -> None:
    header = f"Subject: {value}\nFrom: {value}\nMessage-ID: {value}\nDate: {value}\n\nx"
    raw = header.encode("utf-8", "surrogatepass")
    check_consistent(parse_mail(raw), raw)
    assert isinstance(decode_header(value), str)
