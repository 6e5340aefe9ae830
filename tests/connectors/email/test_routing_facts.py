"""The routing fact a mail gives the team inbox: ``metadata["routing"]["to"]``, the address of
the account's mailbox the customer wrote to (``sales@`` or ``support@`` on one mailbox)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.connectors.email import EmailConnector
from bridge.connectors.email.parse import parse_mail, to_remote_event
from bridge.events import RemoteMessage
from tests.contract.fake_host import FakeHost

from ..conftest import running
from .harness import EmailLmtpHarness
from .parse_support import BASIC, mail

OWN = ("support@company.example", "sales@company.example")


def routing(raw: bytes, own: tuple[str, ...] = OWN) -> dict[str, object] | None:
    event = to_remote_event(parse_mail(raw), chat_id="c", chat_name="C", own_addresses=own)
    assert isinstance(event, RemoteMessage)
    assert event.metadata["portal"]["subject"]  # the rest of the metadata stays as it is
    return event.metadata.get("routing")


def headers(*lines: str) -> str:
    return "From: pat@customer.example\nSubject: Hello\nMessage-ID: <r@customer.example>\n" + (
        "\n".join(lines)
    )


@pytest.mark.parametrize(
    ("lines", "own", "expected"),
    [
        # The first To address that is the account's, lower-cased.
        (
            ["To: Pat <Sales@Company.Example>, support@company.example"],
            OWN,
            "sales@company.example",
        ),
        (["To: friend@other.example, SUPPORT@company.example"], OWN, "support@company.example"),
        # Cc, then the addresses the MTA delivered to.
        (["To: friend@other.example", "Cc: sales@company.example"], OWN, "sales@company.example"),
        (
            ["To: list@lists.example", "Delivered-To: support@company.example"],
            OWN,
            "support@company.example",
        ),
        (
            ["To: undisclosed-recipients:;", "X-Original-To: sales@company.example"],
            OWN,
            "sales@company.example",
        ),
        # None of the account's: the first To address.
        (["To: a@other.example, b@other.example"], OWN, "a@other.example"),
        (["To: Info <INFO@company.example>"], (), "info@company.example"),
    ],
)
def test_the_address_written_to(lines: list[str], own: tuple[str, ...], expected: str) -> None:
    assert routing(mail(headers(*lines), "Hi")) == {"to": expected}


def test_to_comes_before_the_delivery_headers() -> None:
    raw = mail(headers("Delivered-To: support@company.example", "To: sales@company.example"), "Hi")
    assert routing(raw) == {"to": "sales@company.example"}


def test_no_address_no_routing_fact() -> None:
    assert routing(mail(headers(), "Hi")) is None


def test_every_recipient_once_in_order() -> None:
    parsed = parse_mail(
        mail(
            headers(
                "To: A@x.example, b@x.example",
                "Cc: a@x.example, c@x.example",
                "Delivered-To: d@x.example",
                "Delivered-To: e@x.example",
            ),
            "Hi",
        )
    )
    assert parsed.recipients == (
        "a@x.example",
        "b@x.example",
        "c@x.example",
        "d@x.example",
        "e@x.example",
    )


def test_the_basic_mail_names_its_first_own_address() -> None:
    assert routing(mail(BASIC, "Hi"), ("sales@company.example",)) == {
        "to": "sales@company.example"
    }


@pytest.fixture
async def harness() -> AsyncIterator[EmailLmtpHarness]:
    async for instance in running(EmailLmtpHarness()):
        yield instance


async def test_a_pushed_mail_names_the_alias_it_was_written_to(
    harness: EmailLmtpHarness, connector: EmailConnector, host: FakeHost
) -> None:
    # The LMTP recipients are the mailbox's addresses beside its from_address.
    raw = mail(
        """\
        From: Pat <pat@customer.test>
        To: Friend <friend@elsewhere.test>, ACME Sales <Sales@Company.test>
        Subject: A quote
        Message-ID: <quote@customer.test>
        """,
        "How much for 10?",
    )
    await harness.push(raw)
    (event,) = host.events
    assert isinstance(event, RemoteMessage)
    assert event.metadata["routing"] == {"to": "sales@company.test"}
    assert event.metadata["portal"]["contact"] == "pat@customer.test"
