"""Staff replies built from the portal's metadata, which comes from remote mail: no value a
sender chose can break the reply's headers or add headers of its own."""

from __future__ import annotations

import email
import email.policy

import pytest

from bridge.connector import PermanentDeliveryError
from bridge.connectors.email.config import parse_config
from bridge.connectors.email.parse import parse_mail
from bridge.connectors.email.smtp import build_reply

CONFIG = parse_config(
    {
        "imap": {"host": "imap.test", "user": "u", "password": "p"},
        "smtp": {"host": "smtp.test"},
        "from_address": "support@company.test",
    },
    "channels.mail",
)


def reply(meta: dict[str, object], sender_name: str = "Alice") -> email.message.EmailMessage:
    msg = build_reply(CONFIG, sender_name=sender_name, meta=meta, text="Hi", html=None)
    parsed = email.message_from_bytes(bytes(msg), policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def test_line_breaks_in_remote_values_do_not_reach_the_headers() -> None:
    out = reply(
        {
            "contact": "anna@customer.test",
            "contact_name": "Anna\r\nBcc: thief@evil.test",
            "subject": "Order\r\nBcc: thief@evil.test\n\tX-Evil: 1",
            "last_message_id": "a@x>\r\nBcc: <thief@evil.test",
            "references": ["r1@x", "r2@x>\r\nX-Evil: <1", "r3@x"],
        },
        sender_name="Eve\nBcc: thief@evil.test",
    )
    assert out["Bcc"] is None and out["X-Evil"] is None
    assert out["Subject"] == "Re: Order Bcc: thief@evil.test X-Evil: 1"
    assert out["References"].split() == ["<r1@x>", "<r3@x>"]
    assert out["In-Reply-To"] is None
    assert out["To"].addresses[0].addr_spec == "anna@customer.test"
    assert "\n" not in out["To"].addresses[0].display_name


@pytest.mark.parametrize("contact", ["a@b.test\r\nBcc: c@d.test", "a@b.test, c@d.test", "x"])
def test_a_contact_that_is_no_single_address_is_refused(contact: str) -> None:
    with pytest.raises(PermanentDeliveryError):
        reply({"contact": contact, "subject": "x"})


def test_encoded_line_breaks_in_a_subject_are_spaces() -> None:
    raw = b"From: a@b.test\nSubject: =?utf-8?q?Hello=0D=0ABcc=3A_x=40y=2Etest?=\n\nbody\n"
    assert parse_mail(raw).subject == "Hello  Bcc: x@y.test"
    named = b"From: =?utf-8?q?Anna=0D=0ABcc=3A?= <a@b.test>\n\nbody\n"
    assert parse_mail(named).from_name == "Anna Bcc:"
