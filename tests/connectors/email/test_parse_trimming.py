"""Quoted history and signatures trimmed from replies, as Gmail, Outlook, Thunderbird and others
quote them, in text and in HTML."""

from __future__ import annotations

import pytest

from bridge.connectors.email.parse import parse_mail, to_remote_event, trim_html, trim_text
from bridge.connectors.sanitize import html_to_text
from bridge.events import RemoteMessage

from .parse_support import (
    FRENCH_TEXT,
    GERMAN_TEXT,
    GMAIL_HTML,
    GMAIL_TEXT,
    GMAIL_WRAPPED_TEXT,
    ORIGINAL_MESSAGE_TEXT,
    OUTLOOK_DESKTOP_HTML,
    OUTLOOK_HTML,
    OUTLOOK_TEXT,
    SIGNATURE_TEXT,
    THUNDERBIRD_HTML,
    URSPRUENGLICH_TEXT,
    mail,
)

# --------------------------------------------------------------------------- trimming


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
