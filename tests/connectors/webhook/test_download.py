"""``download_attachment``: size limits, mimetypes and error mapping. The harness config sets
``max_file_size`` to 256 KiB."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from bridge.connector import PermanentDeliveryError, TemporaryDeliveryError
from bridge.connectors.http import (
    MAX_REDIRECTS,
    AddressPolicy,
    BlockedAddress,
    GuardedResolver,
    guarded_session,
)
from bridge.connectors.webhook import WebhookConnector
from bridge.events import RemoteAttachment
from tests.connectors.media_support import downloaded
from tests.contract.harness import FakeHost

from .factories import closed_port_url
from .harness import ServedFile, WebhookHarness

LIMIT = 256 * 1024


async def test_download(harness: WebhookHarness, connector: WebhookConnector) -> None:
    url = harness.receiver.serve("a.png", ServedFile(b"png-bytes", "image/png"))
    assert await downloaded(connector, RemoteAttachment(url)) == (
        b"png-bytes",
        "image/png",
    )


async def test_declared_mimetype_wins(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    url = harness.receiver.serve("a", ServedFile(b"%PDF", "application/octet-stream"))
    attachment = RemoteAttachment(url, mimetype="application/pdf")
    assert await downloaded(connector, attachment) == (b"%PDF", "application/pdf")


@pytest.mark.parametrize("chunked", [False, True])
async def test_file_at_the_limit(
    harness: WebhookHarness, connector: WebhookConnector, chunked: bool
) -> None:
    data = b"y" * LIMIT
    url = harness.receiver.serve("max", ServedFile(data, chunked=chunked))
    assert (await downloaded(connector, RemoteAttachment(url)))[0] == data


async def test_declared_size_over_the_limit_is_not_fetched(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    url = harness.receiver.serve("big", ServedFile(b"small really"))
    with pytest.raises(PermanentDeliveryError) as caught:
        await downloaded(connector, RemoteAttachment(url, "big.mov", size=LIMIT + 1))
    assert "too large" in caught.value.reason and "big.mov" in caught.value.reason
    assert harness.receiver.file_requests == []


@pytest.mark.parametrize("chunked", [False, True])
async def test_file_over_the_limit(
    harness: WebhookHarness, connector: WebhookConnector, chunked: bool
) -> None:
    url = harness.receiver.serve("big", ServedFile(b"z" * (4 * LIMIT), chunked=chunked))
    # The declared size lies: only the Content-Length check or counting can catch it.
    attachment = RemoteAttachment(url, "big.bin", size=10)
    with pytest.raises(PermanentDeliveryError) as caught:
        await downloaded(connector, attachment)
    assert "too large" in caught.value.reason and str(LIMIT) in caught.value.reason


@pytest.mark.parametrize("status", [404, 410])
async def test_gone_is_permanent(
    harness: WebhookHarness, connector: WebhookConnector, status: int
) -> None:
    url = harness.receiver.serve("gone", ServedFile(b"", status=status))
    with pytest.raises(PermanentDeliveryError) as caught:
        await downloaded(connector, RemoteAttachment(url, "gone.txt"))
    assert not isinstance(caught.value, TemporaryDeliveryError)
    assert f"HTTP {status}" in caught.value.reason and "no longer available" in caught.value.reason


async def test_forbidden_is_permanent(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    url = harness.receiver.serve("secret", ServedFile(b"", status=403))
    with pytest.raises(PermanentDeliveryError):
        await downloaded(connector, RemoteAttachment(url))


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_server_errors_are_temporary(
    harness: WebhookHarness, connector: WebhookConnector, status: int
) -> None:
    url = harness.receiver.serve("flaky", ServedFile(b"", status=status))
    with pytest.raises(TemporaryDeliveryError):
        await downloaded(connector, RemoteAttachment(url))


async def test_unreachable_is_temporary(harness: WebhookHarness, host: FakeHost) -> None:
    connector = harness.make_connector(host)
    try:
        with pytest.raises(TemporaryDeliveryError):
            await downloaded(connector, RemoteAttachment(closed_port_url()))
    finally:
        await connector.stop()


# ---------------------------------------------------------------------------- address guard

INTERNAL_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/a.png",
    "http://192.168.1.1/a.png",
    "http://172.16.0.1/a.png",
    "http://100.100.100.200/latest/meta-data/",
    "http://0.0.0.0/a.png",
    "http://[::1]/a.png",
    "http://[::ffff:127.0.0.1]/a.png",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[fe80::1]/a.png",
    "http://224.0.0.1/a.png",
]


@pytest.mark.parametrize("url", INTERNAL_URLS)
async def test_internal_addresses_are_refused(connector: WebhookConnector, url: str) -> None:
    """Refused before any connection (a connection to these would hang or be refused)."""
    with pytest.raises(PermanentDeliveryError) as caught:
        await downloaded(connector, RemoteAttachment(url, "a.png"))
    assert "not a public address" in caught.value.reason
    assert "fetch_allow_hosts" in caught.value.reason


@pytest.fixture
async def unlisted(harness: WebhookHarness, host: FakeHost) -> AsyncIterator[WebhookConnector]:
    """A connector with no allow-list: only public addresses."""
    connector = harness.make_connector(host, fetch_allow_hosts=[])
    await connector.start()
    try:
        yield connector
    finally:
        await connector.stop()


async def test_loopback_is_refused_without_allow_list(
    harness: WebhookHarness, unlisted: WebhookConnector
) -> None:
    url = harness.receiver.serve("a.png", ServedFile(b"secret", "image/png"))
    with pytest.raises(PermanentDeliveryError) as caught:
        await unlisted.download_attachment(RemoteAttachment(url))
    assert "127.0.0.1 is not a public address" in caught.value.reason
    assert harness.receiver.file_requests == []


async def test_name_resolving_to_loopback_is_refused(
    harness: WebhookHarness, unlisted: WebhookConnector
) -> None:
    harness.receiver.serve("a.png", ServedFile(b"secret", "image/png"))
    url = harness.receiver.base_url.replace("127.0.0.1", "localhost") + "/files/a.png"
    with pytest.raises(PermanentDeliveryError) as caught:
        await unlisted.download_attachment(RemoteAttachment(url))
    assert "localhost (" in caught.value.reason and "not a public address" in caught.value.reason
    assert harness.receiver.file_requests == []


async def test_allow_listed_name_is_fetched(harness: WebhookHarness, host: FakeHost) -> None:
    connector = harness.make_connector(host, fetch_allow_hosts=["LocalHost"])
    try:
        harness.receiver.serve("a.png", ServedFile(b"png", "image/png"))
        url = harness.receiver.base_url.replace("127.0.0.1", "localhost") + "/files/a.png"
        assert await downloaded(connector, RemoteAttachment(url)) == (b"png", "image/png")
    finally:
        await connector.stop()


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://[::1]/"])
async def test_redirect_to_an_internal_address_is_refused(
    harness: WebhookHarness, connector: WebhookConnector, target: str
) -> None:
    url = harness.receiver.serve("hop", ServedFile(b"", redirect=target))
    with pytest.raises(PermanentDeliveryError) as caught:
        await downloaded(connector, RemoteAttachment(url, "a.png"))
    assert "not a public address" in caught.value.reason
    assert harness.receiver.file_requests == ["hop"]


async def test_redirect_to_an_allowed_host_is_followed(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    final = harness.receiver.serve("final.png", ServedFile(b"png", "image/png"))
    url = harness.receiver.serve("hop", ServedFile(b"", redirect=final))
    assert await downloaded(connector, RemoteAttachment(url)) == (b"png", "image/png")
    assert harness.receiver.file_requests == ["hop", "final.png"]


async def test_redirect_loop_is_permanent(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    url = harness.receiver.serve("loop", ServedFile(b""))
    harness.receiver.files["loop"].redirect = url
    with pytest.raises(PermanentDeliveryError) as caught:
        await downloaded(connector, RemoteAttachment(url))
    assert "redirects" in caught.value.reason
    assert len(harness.receiver.file_requests) == MAX_REDIRECTS + 1


class StubResolver(AbstractResolver):
    """DNS as an attacker controls it: ``answers`` per name."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)
            for address in self.answers[host]
        ]

    async def close(self) -> None:
        pass


async def test_any_private_answer_refuses_the_name() -> None:
    resolver = GuardedResolver(
        AddressPolicy(), StubResolver({"mixed.test": ["93.184.216.34", "10.1.2.3"]})
    )
    with pytest.raises(BlockedAddress, match=r"mixed\.test \(10\.1\.2\.3\)"):
        await resolver.resolve("mixed.test", 80)


async def test_connection_goes_to_the_checked_address(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    """The name is resolved once, by the guard, and the connection is made to exactly that
    answer: there is no second lookup an attacker's DNS could answer differently."""
    harness.receiver.serve("a.png", ServedFile(b"png", "image/png"))
    port = harness.receiver.base_url.rsplit(":", 1)[1]
    stub = StubResolver({"files.test": ["127.0.0.1"]})
    connector.client._session = guarded_session(connector.client.policy, stub)
    url = f"http://files.test:{port}/files/a.png"
    assert await downloaded(connector, RemoteAttachment(url)) == (b"png", "image/png")
    stub.answers["files.test"] = ["10.9.9.9"]  # the rebinding answer, for any later lookup
    await connector.client.close()
    connector.client._session = guarded_session(connector.client.policy, stub)
    with pytest.raises(PermanentDeliveryError, match="10.9.9.9"):
        await downloaded(connector, RemoteAttachment(url))
