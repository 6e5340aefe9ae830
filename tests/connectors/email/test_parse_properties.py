"""``parse_mail`` never raises, on arbitrary bytes, on mutated real mails and on header text, and
what it returns is consistent."""

from __future__ import annotations

import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.connectors.email.parse import (
    ParsedMail,
    attachment_bytes,
    decode_header,
    parse_mail,
    to_remote_event,
)
from bridge.events import RemoteDeliveryFailure, RemoteMessage

from .parse_support import (
    BASIC,
    DSN,
    GERMAN_TEXT,
    GMAIL_HTML,
    MIXED,
    OUTLOOK_HTML,
    OUTLOOK_TEXT,
    THUNDERBIRD_HTML,
    mail,
)

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
