"""An erased person is never contacted again: with their identities on the suppression list,
the consent feature records no consent of theirs from the in-house system and no import, and
says why, and a broadcast skips them (on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mautrix.util.async_db import Database

from bridge.db.broadcast import Recipient
from bridge.db.privacy import Suppression, person_key
from bridge.features.broadcast.engine import ERASED, Content
from bridge.features.consent.registry import ConsentError, ImportProof
from tests.features.broadcast.support import HOOK as BHOOK
from tests.features.broadcast.support import Services as BroadcastServices
from tests.features.broadcast.support import engine, subscribe
from tests.features.consent.support import T0
from tests.features.consent.test_optin import HOOK, flow
from tests.features.consent.test_optin_webhook import consent

SECRET = b"k" * 32


@pytest.fixture
def suppressing() -> Iterator[None]:
    Suppression.secret = SECRET
    try:
        yield
    finally:
        Suppression.secret = None


async def _erase(account: str, remote: str) -> None:
    await Suppression.add([person_key(SECRET, "suppress", account, remote)])


@pytest.mark.usefixtures("suppressing")
async def test_a_webhook_consent_of_an_erased_person_is_refused(database: Database) -> None:
    f = flow()
    await _erase(HOOK, "ann")
    await f.hook.on_inbound(consent())
    assert await f.events() == []
    (notice,) = [text for _, text, _ in f.services.notices]
    assert notice.endswith("was not recorded: the person was erased and is not to be contacted "
                           "again."), notice  # fmt: skip


@pytest.mark.usefixtures("suppressing")
async def test_an_import_of_an_erased_person_is_refused(database: Database) -> None:
    f = flow()
    proof = ImportProof(T0 - 1000, "2026-01", "crm", "@admin:example.com")
    await _erase(HOOK, "erased-chat")
    with pytest.raises(ConsentError, match="erased"):
        await f.registry.import_identity(HOOK, "bea", "newsletter", proof, chat="erased-chat")
    assert await f.events() == []
    assert await f.registry.import_identity(HOOK, "cleo", "newsletter", proof) > 0


@pytest.mark.usefixtures("suppressing")
async def test_a_broadcast_skips_an_erased_person(database: Database) -> None:
    """Erased while subscribed (their consent records would be gone; here the suppression
    entry alone is enough): the broadcast goes to the others."""
    services = BroadcastServices()
    eng, registry, _ = engine(services)
    await subscribe(registry, BHOOK, "ann", "bob")
    await _erase(BHOOK, "bob")
    id_ = await eng.broadcast("newsletter", Content("News"), by="@lea:example.com")
    assert await eng.wait(id_) == {"sent": 1, "skipped": 1}
    assert services.chats() == ["ann"]
    (row,) = await Recipient.page(id_, (0, ""), 5, ("skipped",))
    assert row.reason == ERASED
