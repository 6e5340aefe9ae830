"""The in-house system's consent steps, a blocked bot and the expiry job, on SQLite and
PostgreSQL: a webhook step with its proof is recorded once (a confirmation makes the
contact), refusals are logged, told in the room and record nothing; a block withdraws what
holds and tells the room once; unanswered requests expire after ``confirm_hours``, in pages,
once."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest
from mautrix.util.async_db import Database

from bridge.db.consent import ConsentContact, ConsentEvent
from bridge.events import RemoteBlocked, RemoteChat, RemoteConsent, RemoteUser
from bridge.features.consent.optin import Expiry
from bridge.seams import Inbound
from bridge.types import RemoteChatID, RemoteUserID
from tests.features.consent.support import T0
from tests.features.consent.test_optin import HOOK, HOUR, TG, WA, asking, flow, press, ref

PROOF = {"at": T0 - HOUR, "source": "crm signup form #77", "text_version": "2026-01"}


def consent(
    step: str = "confirmed", list_: str = "newsletter", n: int = 1, room: bool = True,
    account: str = HOOK, **proof: Any,
) -> Inbound:  # fmt: skip
    event = RemoteConsent(
        chat=RemoteChat(RemoteChatID("ann")), sender=RemoteUser(RemoteUserID("ann")),
        consent_id=f"c{n}", list=list_, step=step, proof={**PROOF, **proof},
    )  # fmt: skip
    return Inbound(ref(account, room=room), event, False)


async def test_a_confirmation_is_recorded_once_with_its_proof(database: Database) -> None:
    f = flow()
    for _ in range(2):
        await f.hook.on_inbound(consent())
    (event,) = await f.events()
    assert (event.list, event.account, event.step) == ("newsletter", HOOK, "confirmed")
    assert event.evidence == PROOF
    assert event.trigger == f"in-house system {HOOK}"
    assert [text for _, text, _ in f.services.notices] == [
        "📋 The in-house system recorded: Newsletter confirmed (c1)."
    ]
    await f.hook.on_inbound(consent("withdrawn", n=2, room=False))
    assert await f.steps(HOOK) == [("newsletter", "confirmed"), ("newsletter", "withdrawn")]
    assert len(f.services.notices) == 1  # no room: nothing to tell


def without_id() -> Inbound:
    inbound = consent()
    return dataclasses.replace(inbound, event=dataclasses.replace(inbound.event, consent_id=""))


async def test_a_withdrawal_needs_only_its_time_and_a_clock_may_run_ahead(
    database: Database,
) -> None:
    """Withdrawing is as easy as giving: no source needed; an in-house clock a minute ahead
    (or a float of milliseconds) is no reason to lose a withdrawal."""
    f = flow()
    await f.hook.on_inbound(consent())
    bare = consent("withdrawn", n=2)
    bare = dataclasses.replace(
        bare, event=dataclasses.replace(bare.event, proof={"at": float(T0 + 60_000)})
    )
    await f.hook.on_inbound(bare)
    assert await f.steps(HOOK) == [("newsletter", "confirmed"), ("newsletter", "withdrawn")]


async def test_a_consent_id_used_again_for_another_step_is_refused_aloud(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    f = flow()
    await f.hook.on_inbound(consent())
    with caplog.at_level(logging.ERROR, "bridge.consent"):
        await f.hook.on_inbound(consent("withdrawn"))  # the same id c1
    assert "used before for the step confirmed" in caplog.text
    assert await f.steps(HOOK) == [("newsletter", "confirmed")]
    assert "was not recorded: its consent_id was used before" in f.services.notices[-1][1]


@pytest.mark.parametrize(
    ("inbound", "why"),
    [(without_id(), "the event has no consent_id"),
     (consent(list_="gone"), "there is no consent list 'gone'"),
     (consent(list_="order-updates"), "the list 'order-updates' is not offered on "
      "support-webhook"),
     (consent("requested"), "the step 'requested' is none of confirmed, declined, withdrawn"),
     (consent(at=None), "`at` is required"), (consent(at="yesterday"), "`at` is required"),
     (consent(at=T0 + 100 * HOUR), "not in the future"),
     (consent(source=" "), "`source` is required"),
     (consent(text_version=None), "`text_version` is required"),
     (consent("declined", source=None), "`source` is required"),
     (consent(text_version="2025-12"), "the proof names text version '2025-12'"),
     (consent("withdrawn"), "the customer has no consent records on support-webhook"),
     (consent("declined"), "the customer has no consent records on support-webhook")],
)  # fmt: skip
async def test_refusals_record_nothing(
    database: Database, caplog: pytest.LogCaptureFixture, inbound: Inbound, why: str
) -> None:
    f = flow()
    with caplog.at_level(logging.WARNING, "bridge.consent"):
        await f.hook.on_inbound(inbound)
    assert why in caplog.text
    assert await f.events() == []
    assert await ConsentContact.get(1) is None  # no contact was made
    ((room, text, _),) = f.services.notices
    assert room == "!ann:example.com" and why in text and "was not recorded" in text


async def test_a_refusal_without_a_room_is_only_logged(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    f = flow()
    with caplog.at_level(logging.WARNING, "bridge.consent"):
        await f.hook.on_inbound(consent(list_="gone", room=False))
    assert "consent c1 from support-webhook refused" in caplog.text
    assert f.services.notices == []


def blocked(block_id: str = "1780000000", room: bool = True) -> Inbound:
    event = RemoteBlocked(
        chat=RemoteChat(RemoteChatID("ann")), sender=RemoteUser(RemoteUserID("ann")),
        block_id=block_id,
    )  # fmt: skip
    return Inbound(ref(TG, room=room), event, False)


async def test_blocking_withdraws_once_and_tells_the_room(database: Database) -> None:
    f = flow()
    for n, (start, list_) in enumerate([("news", "newsletter"), ("orders", "order-updates")]):
        await f.hook.on_inbound(asking(TG, f"/start {start}", n=n))
        await f.hook.on_inbound(press(TG, f"consent:yes:{list_}", n=n))
    for _ in range(2):
        await f.hook.on_inbound(blocked())
    steps = await f.steps(TG)
    assert steps[-2:] == [("newsletter", "withdrawn"), ("order-updates", "withdrawn")]
    assert len(steps) == 6
    assert [text for _, text, _ in f.services.notices] == [
        "🛑 The customer blocked the bot: consent withdrawn (Newsletter, Order updates)"
    ]
    withdrawn = (await f.events())[-1]
    assert withdrawn.evidence["block_id"] == "1780000000"
    assert withdrawn.trigger == "blocked the bot"


@pytest.mark.parametrize("room", [True, False])
async def test_blocking_with_nothing_to_withdraw_says_nothing(
    database: Database, room: bool
) -> None:
    f = flow()
    await f.hook.on_inbound(asking(TG, "/start news"))  # requested, never confirmed
    await f.hook.on_inbound(blocked(room=room))
    assert await f.steps(TG) == [("newsletter", "requested")]
    assert f.services.notices == []


async def test_unanswered_requests_expire_once(database: Database) -> None:
    f = flow()
    await f.hook.on_inbound(asking(TG, "/start news", user="ann"))
    await f.hook.on_inbound(asking(WA, "NEWSLETTER", user="bob"))
    await f.hook.on_inbound(asking(TG, "/start orders", user="cid"))
    await f.hook.on_inbound(press(TG, "consent:yes:order-updates", user="cid"))
    f.clock.now += 47 * HOUR
    await f.hook.on_inbound(asking(TG, "/start news", user="dan"))  # younger than 48 hours
    expiry = Expiry(f.registry, page=1)
    assert await expiry.expire() == 0
    f.clock.now += 1 * HOUR
    assert await expiry.expire() == 2
    assert await f.steps(TG, "ann") == [("newsletter", "requested"), ("newsletter", "expired")]
    assert await f.steps(WA, "bob") == [("newsletter", "requested"), ("newsletter", "expired")]
    assert (await f.steps(TG, "cid"))[-1] == ("order-updates", "confirmed")
    assert await f.steps(TG, "dan") == [("newsletter", "requested")]
    assert await expiry.expire() == 0  # a rerun records nothing twice
    expired = [e for e in await f.events() if e.step == "expired"]
    assert all(e.text_hash is not None and e.trigger == "not confirmed within 48 hours"
               for e in expired)  # fmt: skip
    f.clock.now += 47 * HOUR
    await expiry.run()
    assert await f.steps(TG, "dan") == [("newsletter", "requested"), ("newsletter", "expired")]
    # An expired request's buttons answer that it expired.
    await f.hook.on_inbound(press(TG, "consent:yes:newsletter", n=9, user="ann"))
    assert (await f.steps(TG, "ann"))[-1] == ("newsletter", "expired")


async def test_the_expiry_query_skips_answered_requests(database: Database) -> None:
    f = flow()
    await f.hook.on_inbound(asking(TG, "/start news"))
    await f.hook.on_inbound(press(TG, "consent:no:newsletter"))
    assert await ConsentEvent.open_requests(f.clock.now + 100 * HOUR, 0, 10) == []
    await f.hook.on_inbound(asking(WA, "NEWSLETTER"))
    (open_,) = await ConsentEvent.open_requests(f.clock.now + 1, 0, 10)
    assert (open_.account, open_.step) == (WA, "requested")
    assert await ConsentEvent.open_requests(open_.at, 0, 10) == []  # not before itself
