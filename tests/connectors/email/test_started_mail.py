"""Mail the bridge starts (a broadcast, a confirmation mail) to an address it never wrote to:
the chat is the address, the mail is new (no reply), its list headers arrive as given, and
hostile or unknown headers refuse the message before anything is sent. Against the real
Dovecot and the SMTP capture, as the other connector tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.connector import PermanentDeliveryError
from bridge.connectors.email import EmailConnector
from bridge.events import MatrixMessage
from bridge.types import PortalKey, RemoteChatID
from tests.contract.fake_host import FakeHost

from ..conftest import running
from .harness import FROM_ADDRESS, EmailHarness, build_mail

UNSUBSCRIBE = (  # under 998 characters, but the header's line would be longer: folded
    "<https://bridge.company.test/features/consent/unsubscribe?t=" + "A1b2" * 218 + ">, "
    "<mailto:support@company.test?subject=unsubscribe>"
)
LIST_HEADERS = (
    ("List-Unsubscribe", UNSUBSCRIBE),
    ("list-unsubscribe-post", "List-Unsubscribe=One-Click"),
    ("List-Id", "Newsletter <newsletter.company.test>"),
    ("Precedence", "bulk"),
)


@pytest.fixture(params=["contact", "thread"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[EmailHarness]:
    async for instance in running(EmailHarness(threading=request.param)):
        yield instance


def started(chat: str, text: str, headers: tuple[tuple[str, str], ...]) -> MatrixMessage:
    """What ``Services.send_direct`` hands the connector."""
    return MatrixMessage(
        portal=PortalKey(EmailHarness.account_id, RemoteChatID(chat)),
        event_id=f"broadcast:7:{chat}",
        sender="@bridge:example.com",
        sender_name="",
        msgtype="m.text",
        text=text,
        automatic=True,
        headers=headers,
    )


async def test_a_new_address_gets_a_new_mail_with_the_list_headers(
    harness: EmailHarness, connector: EmailConnector, host: FakeHost
) -> None:
    assert isinstance(connector, EmailConnector)
    assert connector.public_address == FROM_ADDRESS
    chat = connector.chat_for_address("  Neu.Kunde@Customer.TEST ")
    assert chat == "neu.kunde@customer.test"
    subject = ("Subject", "Bitte bestätigen Sie Ihre Anmeldung")
    sent = await connector.send_message(
        started(chat, "Hello!\nNews inside.", (*LIST_HEADERS, subject))
    )

    captured = await harness.smtp.wait_for()
    assert captured.rcpt_tos == ["neu.kunde@customer.test"]
    out = captured.message
    assert out["Message-ID"] == f"<{sent.message_id}>"
    assert [a.addr_spec for a in out["To"].addresses] == ["neu.kunde@customer.test"]
    assert out["Subject"] == "Bitte bestätigen Sie Ihre Anmeldung"
    assert out["In-Reply-To"] is None and out["References"] is None
    assert out["Auto-Submitted"] == "auto-generated"
    for name, value in LIST_HEADERS:
        assert " ".join(str(out[name]).split()) == value
    # Written as given (folded after a comma at most): no encoded words that would hide the
    # URL from mail clients.
    head = captured.data.decode("ascii").split("\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in head.split("\r\n"))
    lines = head.replace("\r\n ", " ").split("\r\n")
    written = [line for line in lines if line.startswith(("List-", "Precedence:"))]
    assert written == [f"{name.title()}: {value}" for name, value in LIST_HEADERS]


@pytest.mark.parametrize("harness", ["contact"], indirect=True)
async def test_list_mail_to_a_customer_who_wrote_is_no_reply(
    harness: EmailHarness, connector: EmailConnector, host: FakeHost
) -> None:
    assert isinstance(connector, EmailConnector)
    anna = harness.address("anna")
    raw = build_mail(anna, "Order 4711", "Where is it?", message_id="o1@customer.test")
    await harness.deliver(raw, "o1@customer.test")
    chat = connector.chat_for_address(anna)
    assert [e.chat.id for e in host.events] == [chat]
    await connector.send_message(started(chat, "Please confirm.", ()))
    await connector.send_message(started(chat, "Spring news", LIST_HEADERS[:1]))
    await harness.smtp.wait_for(lambda m: m.message["Subject"] == "Spring news")
    confirmation, news = (m.message for m in harness.smtp.messages)
    assert confirmation["Subject"] == "Re: Order 4711"
    assert confirmation["In-Reply-To"] == "<o1@customer.test>"
    assert confirmation["Auto-Submitted"] == "auto-replied"
    assert news["Subject"] == "Spring news"
    assert news["In-Reply-To"] is None and news["References"] is None
    assert news["Auto-Submitted"] == "auto-generated"


async def test_without_a_subject_the_first_line_is_it(
    harness: EmailHarness, connector: EmailConnector, host: FakeHost
) -> None:
    assert isinstance(connector, EmailConnector)
    chat = connector.chat_for_address("ohne@customer.test")
    await connector.send_message(started(chat, "Our spring news\n\nMore below.", ()))
    out = (await harness.smtp.wait_for()).message
    assert out["Subject"] == "Our spring news"
    assert out["List-Unsubscribe"] is None


HOSTILE = {
    "crlf": (("List-Unsubscribe", "<https://x.test/u>\r\nBcc: thief@evil.test"),),
    "lf": (("List-Id", "news\n<news.company.test>"),),
    "cr-in-subject": (("Subject", "Hello\rBcc: thief@evil.test"),),
    "over-998": (("List-Unsubscribe", "<https://x.test/u?t=" + "a" * 990 + ">"),),
    "bcc": (("Bcc", "thief@evil.test"),),
    "to": (("To", "thief@evil.test"),),
    "twice": (("List-Id", "News <news.company.test>"), ("list-id", "<other.test>")),
    "non-ascii-list-id": (("List-Id", "Grüße <news.company.test>"),),
    "blank": (("Precedence", "  "),),
    "nul": (("Precedence", "bulk\x00"),),
}


@pytest.mark.parametrize("harness", ["contact"], indirect=True)
async def test_hostile_or_unknown_headers_refuse_the_mail(
    harness: EmailHarness, connector: EmailConnector, host: FakeHost
) -> None:
    assert isinstance(connector, EmailConnector)
    chat = connector.chat_for_address("victim@customer.test")
    for case, headers in HOSTILE.items():
        with pytest.raises(PermanentDeliveryError):
            await connector.send_message(started(chat, case, headers))
    await connector.send_message(started(chat, "Control", ()))
    await harness.smtp.wait_for()
    assert [m.message["Subject"] for m in harness.smtp.messages] == ["Control"]
    for address in ("no-address", "a@b.test, c@d.test", "a@b.test\r\nBcc: c@d.test", "a@b/c"):
        with pytest.raises(ValueError, match="not an e-mail address"):
            connector.chat_for_address(address)
