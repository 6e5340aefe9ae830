"""``parse_mail`` and ``to_remote_event`` on concrete mails: headers, threading, encodings, HTML,
and the remote events made of them."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from bridge.connectors.email.parse import (
    decode_header,
    normalize_subject,
    parse_mail,
    to_remote_event,
)
from bridge.events import RemoteEvent, RemoteMessage

from .parse_support import BASIC, MIXED, MIXED_SECTIONS, mail


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
