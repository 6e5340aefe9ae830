"""Mail pushed over LMTP to a host with a spool (the core's): the raw mail is stored once in
the database before the ``250``, the queued event only points at it, its parts are read back
from it, and it goes with the queue item. On SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from email.message import EmailMessage

import pytest
from mautrix.util.async_db import Database

from bridge.connector import PermanentDeliveryError
from bridge.connectors.email import EmailConnector
from bridge.connectors.email import connector as connector_module
from bridge.core.host import ConnectorHost
from bridge.db import QueueItem
from bridge.events import RemoteEvent, RemoteMessage
from bridge.media import MediaFile
from bridge.types import AccountID
from tests.contract.fake_host import FakeHost
from tests.db.support import database, databases
from tests.infra.lmtp_client import push_mail

from ..conftest import running
from .harness import FROM_ADDRESS, EmailLmtpHarness, read

__all__ = ["database", "databases"]


class SpoolingHost(FakeHost):
    """``FakeHost`` with the core's spool (``ConnectorHost``'s own methods) and its queue:
    each new event is recorded as the core records it."""

    def __init__(self, account_id: AccountID) -> None:
        super().__init__(account_id)
        self.core = ConnectorHost(None, account_id)  # type: ignore[arg-type]
        self.items: list[QueueItem] = []

    async def handle_remote_event(self, event: RemoteEvent) -> bool:
        if not await super().handle_remote_event(event):
            return False
        payload = {"account": self.account_id, "event": event.to_json()}
        item = await QueueItem.record_remote(self.account_id, event.dedup_key(), "rm:k", payload)
        assert item is not None
        self.items.append(item)
        return True

    async def spool(self, data: bytes) -> str:
        return await self.core.spool(data)

    async def open_spooled(self, key: str, mimetype: str) -> MediaFile | None:
        return await self.core.open_spooled(key, mimetype)

    async def unspool(self, key: str) -> None:
        await self.core.unspool(key)


@pytest.fixture
async def harness() -> AsyncIterator[EmailLmtpHarness]:
    async for instance in running(EmailLmtpHarness()):
        yield instance


@pytest.fixture
async def spooling(
    harness: EmailLmtpHarness, database: Database
) -> AsyncIterator[tuple[SpoolingHost, EmailConnector]]:
    async with SpoolingHost(harness.account_id) as host:
        connector = harness.make_connector(host)
        await connector.start()
        try:
            yield host, connector
        finally:
            await connector.stop()


async def spooled(db: Database) -> list[bytes]:
    return [bytes(r["data"]) for r in await db.fetch("SELECT data FROM spool ORDER BY key")]


async def push(harness: EmailLmtpHarness, raw: bytes) -> list[int]:
    return [code for code, _ in await push_mail("127.0.0.1", harness.lmtp_port, raw)]


def big_mail(harness: EmailLmtpHarness, data: bytes, mid: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = harness.address("pat")
    msg["To"] = FROM_ADDRESS
    msg["Subject"] = "Logs"
    msg["Message-ID"] = f"<{mid}>"
    msg.set_content("The logs.")
    msg.add_attachment(data, maintype="application", subtype="gzip", filename="logs.gz")
    return bytes(msg)


async def test_a_pushed_mail_is_spooled_once_and_the_queue_row_stays_small(
    harness: EmailLmtpHarness,
    spooling: tuple[SpoolingHost, EmailConnector],
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """... and its attachment is found by its section as the spooled mail streams by: the
    mail is not parsed again (nor read whole) for it."""
    host, connector = spooling
    data = bytes(range(256)) * (3 * 4096)  # 3 MiB
    raw = big_mail(harness, data, "big@customer.test")
    assert await push(harness, raw) == [250]
    ((stored,),) = [await spooled(database)]
    assert stored.endswith(raw.replace(b"\n", b"\r\n")) or stored.endswith(raw)
    assert stored.startswith(b"Return-Path: <")
    (item,) = host.items
    row = await database.fetchval("SELECT payload FROM queue WHERE id=$1", item.id)
    assert len(row) < 8000
    (event,) = host.events
    assert isinstance(event, RemoteMessage)
    files = {a.filename: a for a in event.attachments}

    def no_whole_mail(raw: bytes) -> None:
        raise AssertionError("the whole mail was parsed again")

    with monkeypatch.context() as patched:
        patched.setattr(connector_module, "mail_attachments", no_whole_mail)
        content, mimetype = await connector.download_attachment(files["logs.gz"])
    assert isinstance(content, MediaFile)
    assert (await read(content), mimetype) == (data, "application/gzip")
    wrong = dataclasses.replace(files["logs.gz"], extra={**files["logs.gz"].extra, "section": "1"})
    content, mimetype = await connector.download_attachment(wrong)  # from the parsed mail
    assert (await read(content), mimetype) == (data, "application/gzip")
    content, mimetype = await connector.download_attachment(files["original.eml"])
    assert isinstance(content, MediaFile)
    assert (await read(content), mimetype) == (stored, "message/rfc822")
    await item.delete()
    assert await spooled(database) == []
    with pytest.raises(PermanentDeliveryError, match="no longer stored"):
        await connector.download_attachment(files["original.eml"])


async def test_a_repeat_or_a_refused_delivery_leaves_no_copy(
    harness: EmailLmtpHarness, spooling: tuple[SpoolingHost, EmailConnector], database: Database
) -> None:
    host, _ = spooling
    raw = big_mail(harness, b"x" * 1000, "again@customer.test")
    host.fail_next_events(1)
    assert await push(harness, raw) == [451]
    assert await spooled(database) == []
    assert await push(harness, raw) == [250]
    assert await push(harness, raw) == [250]  # the MTA did not hear the first 250
    assert len(await spooled(database)) == 1 and len(host.items) == 1
    assert len(host.duplicates) == 1


async def test_a_host_without_a_spool_carries_the_parts_in_the_event(
    harness: EmailLmtpHarness, database: Database
) -> None:
    async with FakeHost(harness.account_id) as host:
        connector = harness.make_connector(host)
        await connector.start()
        try:
            assert await push(harness, big_mail(harness, b"y" * 100, "plain@customer.test")) == [
                250
            ]
        finally:
            await connector.stop()
    (event,) = host.events
    assert isinstance(event, RemoteMessage)
    assert all(a.url.startswith("inline:") for a in event.attachments)
    assert json.dumps(event.to_json())
    assert await spooled(database) == []
