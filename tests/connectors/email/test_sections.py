"""A body part found by its IMAP section while the raw mail streams by gives what the parser
gives for that part, whatever the chunking and line endings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.connectors.email.parse import parse_mail
from bridge.connectors.email.sections import section_body
from bridge.connectors.email.transfer import DECODED, decoded
from tests.fault.fuzz_support import fuzz_settings
from tests.fault.test_fuzz_email import hostile_mail

from .parse_support import MIXED, MIXED_SECTIONS

NESTED = b"""\
From: a@example.com
Content-Type: multipart/mixed; boundary="outer"

preamble
--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain

text
--inner
Content-Type: multipart/related; boundary="deep"

--deep
Content-Type: text/html

<p>x</p>
--deep
Content-Type: image/gif
Content-Transfer-Encoding: base64
Content-Disposition: inline; filename="a.gif"

R0lGODlhAQABAAAAACw=
--deep--
--inner--
epilogue of inner
--outer
Content-Type: application/octet-stream
Content-Transfer-Encoding: quoted-printable
Content-Disposition: attachment; filename="q.bin"

caf=C3=A9 =
soft
--outer--
"""


async def part(raw: bytes, section: str, encoding: str, size: int) -> bytes:
    async def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(raw), size):
            yield raw[i : i + size]

    return b"".join([c async for c in decoded(section_body(chunks(), section), encoding)])


@pytest.mark.parametrize("size", [1, 7, 100, 1 << 20])
@pytest.mark.parametrize("crlf", [False, True])
async def test_each_part_is_the_parsed_one(size: int, crlf: bool) -> None:
    for raw in (MIXED.encode(), NESTED):
        raw = raw.replace(b"\n", b"\r\n") if crlf else raw
        parsed = parse_mail(raw)
        assert parsed.attachments
        for attachment in parsed.attachments:
            if attachment.mimetype == "message/rfc822":
                continue  # the parser re-serialises a forwarded mail
            assert attachment.section is not None
            data = await part(raw, attachment.section, attachment.encoding, size)
            assert data == attachment.data, attachment.section
    assert [a.section for a in parse_mail(MIXED.encode()).attachments] == MIXED_SECTIONS
    assert [a.section for a in parse_mail(NESTED).attachments] == ["1.2.2", "2"]


async def test_a_single_part_mail_and_a_missing_section() -> None:
    raw = (
        b"From: a@b\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n"
        b"JVBERi0xLjQK\n"
    )
    (attachment,) = parse_mail(raw).attachments
    assert attachment.section == "1"
    assert await part(raw, "1", "base64", 5) == attachment.data == b"%PDF-1.4\n"
    assert await part(NESTED, "7", "", 5) == b""
    assert await part(NESTED, "", "", 5) == NESTED


@fuzz_settings(60)
@given(raw=hostile_mail, size=st.integers(1, 300))
async def test_any_mail_gives_the_parsed_part_or_nothing_else(raw: bytes, size: int) -> None:
    """Whatever the mail, looking for a part ends without an error and with no more than the
    mail (the connector checks the result by digest and parses again when it differs)."""
    for attachment in parse_mail(raw).attachments:
        if attachment.section is None or attachment.encoding not in DECODED:
            continue
        data = await part(raw, attachment.section, attachment.encoding, size)
        assert len(data) <= len(raw)
