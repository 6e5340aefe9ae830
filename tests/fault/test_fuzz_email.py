"""Property test of the email connector's mailbox loop against a real Dovecot, and of its LMTP
listener: a mail of arbitrary bytes, or a valid mail with hostile headers, lands in the mailbox
or is pushed; the connector must survive it (no exception logged) and the next good mail must
still be bridged. Parsing itself
is fuzzed much faster in ``tests/connectors/email``; each example here costs real IMAP time,
so there are few of them."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.connectors.email import EmailConnector
from bridge.connectors.email.parse import (
    MAX_HTML_BYTES,
    MAX_REFERENCES,
    MAX_TEXT_BYTES,
    parse_mail,
    to_remote_event,
)
from bridge.connectors.sanitize import MAX_NESTING
from bridge.events import RemoteEvent, RemoteMessage
from tests.connectors.email.harness import EmailHarness, EmailLmtpHarness, build_mail
from tests.contract import fixtures
from tests.contract.fake_host import FakeHost
from tests.infra.lmtp_client import push_mail

from .fuzz_support import ExceptionLog, fuzz_settings

_numbers = itertools.count(1)


host, connector = fixtures.host, fixtures.connector  # the shared ones, on this harness


@pytest.fixture(params=[EmailHarness, EmailLmtpHarness], ids=["imap", "lmtp"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[EmailHarness]:
    async for instance in fixtures.running(request.param()):
        yield instance


@pytest.fixture
def errors() -> Iterator[ExceptionLog]:
    with ExceptionLog() as log:
        yield log


HEADERS = (
    b"From To Subject Message-ID In-Reply-To References Date Content-Type "
    b"Content-Transfer-Encoding Auto-Submitted Return-Path"
).split()

# Message-IDs: very long, non-ASCII (raw UTF-8 or in encoded words), with odd characters.
message_ids = st.one_of(
    st.text(alphabet="abcxyz0123456789.-_@", min_size=900, max_size=5000),
    st.text(min_size=1, max_size=300).map(lambda t: t + "@例え.テスト"),
    st.builds(lambda a, b: f"{a}@{b}", st.text(max_size=100), st.text(max_size=100)),
)


def id_header(mid: str, raw_utf8: bool) -> bytes:
    value = mid.encode("utf-8", "surrogatepass")
    if raw_utf8:
        return b"<" + value.replace(b"\r", b"").replace(b"\n", b"") + b">"
    return b"=?utf-8?b?" + base64.b64encode(value)[:3000] + b"?="


TAGS = ["div", "blockquote", "table", "tr", "td", "b", "li", "ul", "p", "span", "font", "a"]


@st.composite
def deeply_nested_mail(draw: st.DrawFn) -> bytes:
    """A mail nested thousands deep: HTML elements, multiparts or attached messages."""
    depth = draw(st.integers(min_value=MAX_NESTING, max_value=6000))
    kind = draw(st.sampled_from(["html", "multipart", "rfc822"]))
    mid = draw(message_ids)
    head = (
        b"From: Anna <anna@customer.test>\r\nSubject: deep\r\nMessage-ID: "
        + id_header(mid, draw(st.booleans()))
        + b"\r\nReferences: "
        + b" ".join(id_header(m, True) for m in draw(st.lists(message_ids, max_size=3)))
        + b"\r\nMIME-Version: 1.0\r\n"
    )
    if kind == "html":
        tags = draw(st.lists(st.sampled_from(TAGS), min_size=1, max_size=4))
        opening = "".join(f"<{tags[i % len(tags)]}>" for i in range(depth))
        closing = "".join(f"</{tags[i % len(tags)]}>" for i in reversed(range(depth)))
        closed = draw(st.booleans())
        html = opening + "deep text" + (closing if closed else "")
        return head + b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html.encode()
    if kind == "multipart":
        body = "".join(
            f'--b{i}\r\nContent-Type: multipart/mixed; boundary="b{i + 1}"\r\n\r\n'
            for i in range(depth)
        )
        body += f"--b{depth}\r\nContent-Type: text/plain\r\n\r\ndeep text\r\n"
        body += "".join(f"--b{i}--\r\n" for i in range(depth, -1, -1))
        return head + b'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n' + body.encode()
    inner = b"Content-Type: text/plain\r\n\r\ndeep text\r\n"
    wrap = b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n"
    return head + wrap * min(depth, 2000) + inner


hostile_mail = st.one_of(
    st.binary(min_size=1, max_size=2048),
    deeply_nested_mail(),
    st.builds(
        lambda headers, body: (
            b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n" + body
        ),
        st.lists(
            st.tuples(
                st.sampled_from(HEADERS),
                st.binary(max_size=120).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
            ),
            max_size=8,
        ),
        st.binary(max_size=512),
    ),
)


@fuzz_settings(40)
@given(raw=deeply_nested_mail())
def test_parser_bounds_deep_nesting_and_odd_ids(raw: bytes) -> None:
    """Whatever the nesting and the ids, parsing ends, what is shown fits one Matrix event, the
    ids stay bounded, and the mail becomes an event (a notice with the original attached when
    it could not be read in full) that survives the core's JSON round trip."""
    parsed = parse_mail(raw)
    assert 0 < len(parsed.message_id) <= 998
    assert all(0 < len(r) <= 998 for r in parsed.references)
    assert len(parsed.references) <= MAX_REFERENCES
    assert len(parsed.text.encode()) <= MAX_TEXT_BYTES + 3
    assert parsed.html is None or len(parsed.html.encode()) <= MAX_HTML_BYTES + 2000
    assert parsed.from_address == "anna@customer.test"
    event = to_remote_event(parsed, chat_id="c", chat_name="n")
    assert isinstance(event, RemoteMessage)
    assert event.attachments and event.attachments[-1].extra.get("original")
    if parsed.unreadable:
        assert event.notice and "⚠️" in event.text
    assert event.text or len(event.attachments) > 1  # more than the original is shown
    assert RemoteEvent.from_json(json.loads(json.dumps(event.to_json()))) == event


async def good_mail_is_bridged(harness: EmailHarness, host: FakeHost) -> None:
    n = next(_numbers)
    message_id = f"good-{n}.{harness._run}@customer.example"
    sender = harness.address(f"good{n}")
    await harness.deliver(
        build_mail(sender, f"Question {n}", f"still bridged {n}", message_id=message_id),
        message_id,
    )
    assert any(
        isinstance(e, RemoteMessage) and f"still bridged {n}" in e.text for e in host.events
    )


@fuzz_settings(15)
@given(raw=hostile_mail)
async def test_mailbox_loop_survives_any_mail(
    harness: EmailHarness,
    host: FakeHost,
    errors: ExceptionLog,  # before the connector starts, to see what it logs
    connector: EmailConnector,
    raw: bytes,
) -> None:
    if isinstance(harness, EmailLmtpHarness):
        # The MTA gets 250, or a protocol error for what SMTP forbids (a line over 1,000
        # bytes): then it bounces the mail. Either way a clean answer, and the listener lives.
        replies = await push_mail("127.0.0.1", harness.lmtp_port, raw)
        assert all(code == 250 or "Line too long" in text for code, text in replies), replies
    else:
        await harness.push(raw)
    await good_mail_is_bridged(harness, host)
    logged = errors.take()
    assert not logged, "exceptions were logged:\n" + "\n".join(logged)
