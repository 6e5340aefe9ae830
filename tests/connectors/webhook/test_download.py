"""``download_attachment``: size limits, mimetypes and error mapping. The harness config sets
``max_file_size`` to 256 KiB."""

from __future__ import annotations

import pytest

from bridge.connector import PermanentDeliveryError, TemporaryDeliveryError
from bridge.connectors.webhook import WebhookConnector
from bridge.events import RemoteAttachment

from .factories import closed_port_url
from .harness import FakeHost, ServedFile, WebhookHarness

LIMIT = 256 * 1024


async def test_download(harness: WebhookHarness, connector: WebhookConnector) -> None:
    url = harness.receiver.serve("a.png", ServedFile(b"png-bytes", "image/png"))
    assert await connector.download_attachment(RemoteAttachment(url)) == (
        b"png-bytes",
        "image/png",
    )


async def test_declared_mimetype_wins(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    url = harness.receiver.serve("a", ServedFile(b"%PDF", "application/octet-stream"))
    attachment = RemoteAttachment(url, mimetype="application/pdf")
    assert await connector.download_attachment(attachment) == (b"%PDF", "application/pdf")


@pytest.mark.parametrize("chunked", [False, True])
async def test_file_at_the_limit(
    harness: WebhookHarness, connector: WebhookConnector, chunked: bool
) -> None:
    data = b"y" * LIMIT
    url = harness.receiver.serve("max", ServedFile(data, chunked=chunked))
    assert (await connector.download_attachment(RemoteAttachment(url)))[0] == data


async def test_declared_size_over_the_limit_is_not_fetched(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    url = harness.receiver.serve("big", ServedFile(b"small really"))
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.download_attachment(RemoteAttachment(url, "big.mov", size=LIMIT + 1))
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
        await connector.download_attachment(attachment)
    assert "too large" in caught.value.reason and str(LIMIT) in caught.value.reason


@pytest.mark.parametrize("status", [404, 410])
async def test_gone_is_permanent(
    harness: WebhookHarness, connector: WebhookConnector, status: int
) -> None:
    url = harness.receiver.serve("gone", ServedFile(b"", status=status))
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.download_attachment(RemoteAttachment(url, "gone.txt"))
    assert not isinstance(caught.value, TemporaryDeliveryError)
    assert f"HTTP {status}" in caught.value.reason and "no longer available" in caught.value.reason


async def test_forbidden_is_permanent(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    url = harness.receiver.serve("secret", ServedFile(b"", status=403))
    with pytest.raises(PermanentDeliveryError):
        await connector.download_attachment(RemoteAttachment(url))


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_server_errors_are_temporary(
    harness: WebhookHarness, connector: WebhookConnector, status: int
) -> None:
    url = harness.receiver.serve("flaky", ServedFile(b"", status=status))
    with pytest.raises(TemporaryDeliveryError):
        await connector.download_attachment(RemoteAttachment(url))


async def test_unreachable_is_temporary(harness: WebhookHarness, host: FakeHost) -> None:
    connector = harness.make_connector(host)
    with pytest.raises(TemporaryDeliveryError):
        await connector.download_attachment(RemoteAttachment(closed_port_url()))
