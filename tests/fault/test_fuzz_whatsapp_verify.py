"""Property test of the WhatsApp webhook verification (``GET /connectors/<account>/webhook``
with ``hub.mode``, ``hub.verify_token`` and ``hub.challenge``): any query, also bytes that are
not UTF-8, gets the challenge back (right token, mode ``subscribe``) or a 403, never a 5xx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote_from_bytes

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from bridge.connectors.whatsapp import WhatsAppConnector
from tests.connectors.whatsapp.harness import VERIFY_TOKEN, WhatsAppHarness
from tests.contract import fixtures
from tests.contract.fake_host import FakeHost

from .fuzz_support import REQUEST_TIMEOUT, ExceptionLog, fuzz_settings

host, connector = fixtures.host, fixtures.connector  # the shared ones, on this harness


@pytest.fixture
async def harness() -> AsyncIterator[WhatsAppHarness]:
    async for instance in fixtures.running(WhatsAppHarness(earlier_conversations=False)):
        yield instance


@pytest.fixture
def errors() -> Iterator[ExceptionLog]:
    with ExceptionLog() as log:
        yield log


values = st.one_of(
    st.none(),
    st.binary(max_size=40),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([VERIFY_TOKEN.encode(), b"subscribe", b"1158201444", b""]),
)


@fuzz_settings(120)
@given(
    mode=values | st.just(b"subscribe"),
    token=values | st.just(VERIFY_TOKEN.encode()),
    challenge=values,
    repeat=st.booleans(),
)
async def test_verification_query(
    host: FakeHost,
    connector: WhatsAppConnector,
    errors: ExceptionLog,
    mode: bytes | None,
    token: bytes | None,
    challenge: bytes | None,
    repeat: bool,
) -> None:
    parts = [
        f"{name}={quote_from_bytes(value, safe='')}"
        for name, value in (("hub.mode", mode), ("hub.verify_token", token),
                            ("hub.challenge", challenge))
        if value is not None
    ]  # fmt: skip
    if repeat and parts:
        parts.append(parts[0])  # a parameter given twice
    url = host.route_url("/webhook", "GET") + "?" + "&".join(parts)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with host.http.get(URL(url, encoded=True), timeout=timeout) as resp:
        status, body = resp.status, await resp.read()
    assert status in (200, 403), (status, body[:200])
    if status == 200:
        assert mode == b"subscribe" and token == VERIFY_TOKEN.encode()
        if challenge is not None and _utf8(challenge):
            assert body == challenge  # echoed exactly
    else:
        assert not (mode == b"subscribe" and token == VERIFY_TOKEN.encode())
    logged = errors.take()
    assert not logged, "exceptions were logged:\n" + "\n".join(logged)


def _utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
