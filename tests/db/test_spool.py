"""The spool: payloads stored once outside the queue row, claimed by the queue item that lists
them, read back in ranges, deleted with that item, kept with its dead letter, and swept at
start when no item claimed them."""

from __future__ import annotations

import pytest
from mautrix.util.async_db import Database

from bridge.db import DeadLetter, QueueItem, Spool
from bridge.db import spool as spool_module


def payload(*keys: str) -> dict[str, object]:
    return {"account": "acc", "event": {"metadata": {"spool": list(keys)}}}


async def keys(database: Database) -> list[str]:
    return [r["key"] for r in await database.fetch("SELECT key FROM spool ORDER BY key")]


async def test_stored_once_read_in_ranges_and_only_by_its_account(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "RANGE", 1000)
    data = bytes(range(256)) * 40 + b"\x00end"
    key = await Spool.put("acc", data)
    assert key.startswith("acc/") and await Spool.size(key) == len(data)
    chunks = [c async for c in Spool.chunks(key, len(data))]
    assert [len(c) for c in chunks] == [1000] * 10 + [244]
    media = await Spool.open("acc", key, "message/rfc822")
    assert media is not None
    with media:
        assert (await media.read(), media.mimetype) == (data, "message/rfc822")
    assert await Spool.open("other", key, "message/rfc822") is None
    assert await Spool.open("acc", "acc/missing", "message/rfc822") is None


async def test_claimed_by_its_item_deleted_with_it_and_kept_by_a_dead_letter(
    database: Database,
) -> None:
    done, dead, orphan = [await Spool.put("acc", b"x" * n) for n in (1, 2, 3)]
    first = await QueueItem.record_remote("acc", "m1", "k", payload(done))
    second = await QueueItem.record_remote("acc", "m2", "k", payload(dead))
    assert first is not None and second is not None
    assert await QueueItem.record_remote("acc", "m1", "k", payload(done)) is None
    assert await Spool.sweep() == 1  # what no item claimed
    assert await keys(database) == sorted([done, dead])
    await first.delete()
    assert await keys(database) == [dead]
    buried = await DeadLetter.bury(second, "failed")
    assert await keys(database) == [dead]
    revived = await buried.revive()
    assert revived is not None
    await revived.delete()
    assert await keys(database) == [] and orphan not in await keys(database)
