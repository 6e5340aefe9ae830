"""Hostile mail against the parser's limits: whatever the mail, the work is bounded and the
room learns what was left out; a mail over the limits becomes a notice with the original."""

from __future__ import annotations

from bridge.connectors.email.parse import (
    MAX_PARTS,
    MAX_TEXT_BYTES,
    mail_attachments,
    parse_mail,
    to_remote_event,
    unreadable_mail,
)
from bridge.connectors.sanitize import MAX_NESTING
from bridge.events import RemoteMessage

HEAD = (
    "From: Anna <anna@customer.test>\nTo: support@company.test\nSubject: Hi\n"
    "Message-ID: <limits@customer.test>\nMIME-Version: 1.0\n"
)


def _original(event: RemoteMessage) -> bool:
    return any(a.filename == "original.eml" and a.extra.get("original") for a in event.attachments)


def test_deeply_nested_html_is_a_notice_with_the_original() -> None:
    depth = 100_000
    html = "<div>" * depth + "Hello there" + "</div>" * depth
    raw = (HEAD + "Content-Type: text/html; charset=utf-8\n\n" + html).encode()
    parsed = parse_mail(raw)
    assert parsed.unreadable and "nested too deeply" in parsed.unreadable
    assert "Hello there" in parsed.text
    assert parsed.html is None or parsed.html.count("<div>") <= MAX_NESTING
    event = to_remote_event(parsed, chat_id="c", chat_name="n")
    assert isinstance(event, RemoteMessage) and event.notice and _original(event)
    assert event.text.startswith("⚠️ This mail could not be shown in full")
    assert "Hello there" in event.text


def test_deeply_nested_multiparts_are_a_notice_with_the_original() -> None:
    depth = 5000
    body = "".join(
        f'--b{i}\nContent-Type: multipart/mixed; boundary="b{i + 1}"\n\n' for i in range(depth)
    )
    body += "--b5000\nContent-Type: text/plain\n\nDeep inside\n"
    body += "".join(f"--b{i}--\n" for i in range(depth, -1, -1))
    raw = (HEAD + 'Content-Type: multipart/mixed; boundary="b0"\n\n' + body).encode()
    parsed = parse_mail(raw)
    assert parsed.unreadable or parsed.notes
    event = to_remote_event(parsed, chat_id="c", chat_name="n")
    assert isinstance(event, RemoteMessage) and _original(event)
    assert "⚠️" in event.text
    assert len(event.text.encode()) <= MAX_TEXT_BYTES + 1000
    assert event.sender.id == "anna@customer.test"


def test_parts_beyond_the_limit_are_named_in_the_room() -> None:
    count = MAX_PARTS + 100
    parts = "".join(
        f"--p\nContent-Type: application/octet-stream\nContent-Disposition: attachment; "
        f'filename="f{i}.bin"\n\nx{i}\n'
        for i in range(count)
    )
    raw = (
        HEAD + 'Content-Type: multipart/mixed; boundary="p"\n\n--p\nContent-Type: text/plain'
        "\n\nSee the files.\n" + parts + "--p--\n"
    ).encode()
    parsed = parse_mail(raw)
    assert len(parsed.attachments) == MAX_PARTS - 2  # the root and the text are parts too
    assert parsed.notes
    event = to_remote_event(parsed, chat_id="c", chat_name="n")
    assert isinstance(event, RemoteMessage) and not event.notice
    assert event.text.startswith("See the files.")
    assert f"{count - MAX_PARTS + 2} more parts" in event.text and "original" in event.text
    assert mail_attachments(raw) == parsed.attachments


def test_a_long_text_is_cut_and_the_room_told() -> None:
    raw = (HEAD + "Content-Type: text/plain; charset=utf-8\n\n" + "Zeile äöü\n" * 40_000).encode()
    parsed = parse_mail(raw)
    assert len(parsed.text.encode()) <= MAX_TEXT_BYTES + 3
    event = to_remote_event(parsed, chat_id="c", chat_name="n")
    assert isinstance(event, RemoteMessage)
    assert "longer than shown" in event.text and _original(event)


def test_unreadable_mail_keeps_its_headers() -> None:
    raw = (HEAD + "Content-Type: text/plain\n\nbody\n").encode()
    parsed = unreadable_mail(raw, "reading it took too long")
    assert parsed.from_address == "anna@customer.test"
    assert parsed.message_id == "limits@customer.test" and parsed.subject == "Hi"
    event = to_remote_event(parsed, chat_id="c", chat_name="n")
    assert isinstance(event, RemoteMessage) and event.notice and _original(event)
    assert "reading it took too long" in event.text
    assert [a.filename for a in event.attachments] == ["original.eml"]
