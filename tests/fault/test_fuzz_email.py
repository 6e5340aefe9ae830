"""Property test of the email connector's mailbox loop against a real Dovecot, and of its LMTP
listener: a mail of arbitrary bytes, or a valid mail with hostile headers, lands in the mailbox
or is pushed; the connector must survive it (no exception logged) and the next good mail must
still be bridged. Parsing itself
is fuzzed much faster in ``tests/connectors/email``; each example here costs real IMAP time,
so there are few of them."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.connectors.email import EmailConnector
from bridge.events import RemoteMessage
from tests.connectors.email.harness import EmailHarness, EmailLmtpHarness, build_mail
from tests.contract.fake_host import FakeHost
from tests.infra.lmtp_client import push_mail

from .fuzz_support import ExceptionLog, fuzz_settings

_numbers = itertools.count(1)


@pytest.fixture(params=[EmailHarness, EmailLmtpHarness], ids=["imap", "lmtp"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[EmailHarness]:
    instance: EmailHarness = request.param()
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.fixture
async def host(harness: EmailHarness) -> AsyncIterator[FakeHost]:
    async with FakeHost(harness.account_id) as fake:
        yield fake


@pytest.fixture
def errors() -> Iterator[ExceptionLog]:
    with ExceptionLog() as log:
        yield log


@pytest.fixture
async def connector(
    harness: EmailHarness, host: FakeHost, errors: ExceptionLog
) -> AsyncIterator[EmailConnector]:
    instance = harness.make_connector(host)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


HEADERS = (
    b"From To Subject Message-ID In-Reply-To References Date Content-Type "
    b"Content-Transfer-Encoding Auto-Submitted Return-Path"
).split()

hostile_mail = st.one_of(
    st.binary(min_size=1, max_size=2048),
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
    connector: EmailConnector,
    errors: ExceptionLog,
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
