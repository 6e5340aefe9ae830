"""The broadcast engine on SQLite and PostgreSQL: the snapshot, one message per recipient
with its key, the stop hint and the mail headers, pacing, retries and ``retry_after``,
failures recorded with their reason, an opt-out during a broadcast, pause, resume and cancel,
rows left ``sending`` by a crash, the WhatsApp window, receipts."""

from __future__ import annotations

import asyncio
import time

import pytest
from mautrix.util.async_db import Database

from bridge.connector import PermanentDeliveryError, TemporaryDeliveryError
from bridge.db import Conversation
from bridge.db.broadcast import Broadcast, Recipient
from bridge.events import (
    RemoteChat,
    RemoteDeliveryFailure,
    RemoteDeliveryReceipt,
    RemoteReadReceipt,
    RemoteUser,
)
from bridge.features.broadcast.config import Template
from bridge.features.broadcast.engine import NO_TEMPLATE, WITHDRAWN, Content
from bridge.features.broadcast.pacing import Pacer
from bridge.features.broadcast.receipts import ReceiptHook
from bridge.seams import ConversationRef, DirectMessage, Inbound
from bridge.types import MessageID, RemoteChatID, RemoteUserID
from tests.db.support import Databases
from tests.features.broadcast.support import (
    HOOK,
    MAIL,
    TG,
    WA,
    FakeTime,
    Services,
    config,
    engine,
    subscribe,
)

NEWS = Content("Our news: *spring sale*", "<p>Our news: <b>spring sale</b></p>")


async def test_the_pacer_spaces_slots_and_holds_for_retry_after() -> None:
    fake = FakeTime()
    pacer = Pacer(10.0, fake, fake.sleep)
    for _ in range(5):
        await pacer.take()
    assert fake.now == pytest.approx(1000.4)  # the first at once, then one every 0.1 s
    pacer.hold(7.0)
    await pacer.take()
    assert fake.now == pytest.approx(1007.4)


async def test_every_subscriber_gets_it_once_with_its_key(database: Database) -> None:
    services = Services()
    eng, registry, _ = engine(services, config((HOOK, TG, MAIL)))
    hook = await subscribe(registry, HOOK, "ann", "bob")
    await subscribe(registry, TG, "111")
    mail = await subscribe(registry, MAIL, "cid@example.com")
    never = await registry.contact_for(HOOK, "cyd", create=True)  # wrote, never consented
    assert never is not None
    assert await eng.counts("newsletter") == {HOOK: 2, TG: 1, MAIL: 1}
    id_ = await eng.broadcast("newsletter", NEWS, by="@lea:example.com", room_id="!r:x")
    counts = await eng.wait(id_)
    assert counts == {"sent": 4}
    assert sorted(services.chats()) == sorted(["ann", "bob", "111", "cid@example.com"])
    keys = {m.key for _, _, m in services.sent}
    assert f"broadcast:{id_}:{hook[0]}:{HOOK}" in keys and len(keys) == 4
    by_chat = {chat: m for _, chat, m in services.sent}
    assert by_chat["ann"].text == "Our news: *spring sale*\n\nReply STOP to unsubscribe."
    assert (
        by_chat["111"].html
        == "<p>Our news: <b>spring sale</b></p><p>Reply STOP to unsubscribe.</p>"
    )
    email = by_chat["cid@example.com"]
    headers = dict(email.headers)
    link = headers["List-Unsubscribe"][1:-1]
    assert link.startswith("https://bridge.example.com/features/consent/unsubscribe/")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link in email.text and "STOP" not in email.text
    assert eng.links.signer.verify(link.rsplit("/", 1)[1], "unsubscribe")[1]["c"] == mail[0]
    found = await Broadcast.get(id_)
    assert found is not None and found.state == "done" and found.snapshot_done
    (row,) = await Recipient.page(id_, (hook[0] - 1, ""), 1, ("sent",))
    message_id = f"m{services.chats().index('ann') + 1}"
    assert (row.contact, row.account, row.message_id, row.attempts) == (
        hook[0], HOOK, message_id, 1,
    )  # fmt: skip
    # the progress notice, edited at the end, and the final report
    assert [t for _, _, t in services.notices] == [
        f"broadcast-{id_}-progress", f"broadcast-{id_}-report",
    ]  # fmt: skip
    assert "4 sent, 0 failed, 0 skipped of 4" in services.edits[-1][2]
    assert services.notices[-1][1].startswith(f"📣 Broadcast {id_} (Newsletter) finished: 4 sent")


async def test_sends_are_paced_at_the_account_s_rate(database: Database) -> None:
    services = Services()
    eng, registry, fake = engine(services, config((HOOK, TG)))
    await subscribe(registry, HOOK, *[f"u{n}" for n in range(20)])
    await subscribe(registry, TG, "1", "2", "3")
    start = fake.now
    await eng.wait(await eng.broadcast("newsletter", NEWS, by="@lea:example.com"))
    assert len(services.sent) == 23
    # 20 on the webhook at the configured 10/s: 1.9 s; Telegram at its 30/s meanwhile. The
    # fake clock adds up the sleeps of both pacers, so Telegram's (at most two of 1/30 s) may
    # come on top, depending on how the two interleave.
    assert 1.9 - 1e-6 <= fake.now - start <= 1.9 + 2 / 30 + 1e-6
    assert eng.rate(TG) == 30.0 and eng.rate(MAIL) == 5.0


async def test_retry_after_holds_the_account_then_it_is_sent(database: Database) -> None:
    services = Services()
    eng, registry, fake = engine(services)
    await subscribe(registry, HOOK, "ann")
    tries: list[str] = []

    async def flaky(account: str, chat: str, message: DirectMessage) -> None:
        tries.append(chat)
        if len(tries) == 1:
            raise TemporaryDeliveryError("slow down", retry_after=7.0)

    services.before = flaky
    id_ = await eng.broadcast("newsletter", NEWS, by="@lea:example.com")
    assert await eng.wait(id_) == {"sent": 1}
    assert 7.0 in fake.slept
    (row,) = await Recipient.page(id_, (0, ""), 5, ("sent",))
    assert row.attempts == 1 and row.reason is None  # a retry_after uses up no attempt


async def test_failures_are_recorded_with_their_reason(database: Database) -> None:
    services = Services()
    eng, registry, fake = engine(services, max_attempts=3)
    await subscribe(registry, HOOK, "ann", "bob", "cyd")

    async def fail(account: str, chat: str, message: DirectMessage) -> None:
        if chat == "ann":
            raise PermanentDeliveryError("the chat is gone")
        if chat == "bob":
            raise TemporaryDeliveryError("the receiver is down")

    services.before = fail
    id_ = await eng.broadcast("newsletter", NEWS, by="@lea:example.com", room_id="!r:x")
    assert await eng.wait(id_) == {"sent": 1, "failed": 2}
    failed = {r.chat: (r.reason, r.attempts) for r in await Recipient.page(
        id_, (0, ""), 5, ("failed",))}  # fmt: skip
    assert failed == {"ann": ("the chat is gone", 1), "bob": ("the receiver is down", 3)}
    assert [2.0, 4.0] == [s for s in fake.slept if s >= 2.0]  # backoff between the tries
    report = services.notices[-1][1]
    assert "Failed: 1 × the chat is gone; 1 × the receiver is down." in report
    listing = await eng.reporter.recipients((await Broadcast.get(id_)), "failed")  # type: ignore[arg-type]
    assert "(ann): the chat is gone" in listing and "(bob): the receiver is down" in listing


async def test_an_opt_out_during_the_broadcast_holds(database: Database) -> None:
    services = Services()
    eng, registry, _ = engine(services, in_flight=1)
    ann, bob, cyd = await subscribe(registry, HOOK, "ann", "bob", "cyd")

    async def bob_says_stop(account: str, chat: str, message: DirectMessage) -> None:
        if chat == "ann":  # while ann's goes out, bob unsubscribes
            await registry.withdraw(bob, "newsletter", HOOK, {"message_id": "s1"}, "STOP")

    services.before = bob_says_stop
    id_ = await eng.broadcast("newsletter", NEWS, by="@lea:example.com")
    assert await eng.wait(id_) == {"sent": 2, "skipped": 1}
    assert services.chats() == ["ann", "cyd"]
    (row,) = await Recipient.page(id_, (0, ""), 5, ("skipped",))
    assert (row.contact, row.reason) == (bob, WITHDRAWN)


async def test_an_opt_out_holds_for_those_already_waiting_their_turn(database: Database) -> None:
    """Many in flight: every recipient passed its first check and waits for the pacer when
    one of them says STOP; the check right before sending still stops theirs."""
    services = Services()
    eng, registry, _ = engine(services, in_flight=8)
    users = await subscribe(registry, HOOK, "u1", "u2", "u3", "u4", "u5")
    released, waiting = asyncio.Event(), []

    class Gate:
        """The pacer: nobody goes until all five wait; then u5 says STOP."""

        async def take(self) -> None:
            waiting.append(None)
            if len(waiting) == 5:
                await registry.withdraw(users[4], "newsletter", HOOK, {"message_id": "s"}, "STOP")
                released.set()
            await released.wait()

        def hold(self, seconds: float) -> None:
            pass

    eng.pacers[HOOK] = Gate()  # type: ignore[assignment]
    id_ = await eng.broadcast("newsletter", NEWS, by="@lea:example.com")
    assert await asyncio.wait_for(eng.wait(id_), 30) == {"sent": 4, "skipped": 1}
    assert sorted(services.chats()) == ["u1", "u2", "u3", "u4"]


async def test_pause_resume_and_cancel(database: Database) -> None:
    services = Services()
    eng, registry, _ = engine(services, in_flight=1)
    await subscribe(registry, HOOK, "ann", "bob", "cyd", "dan")
    id_ = 0
    paused = asyncio.Event()

    async def pause_at_bob(account: str, chat: str, message: DirectMessage) -> None:
        if chat == "bob":
            assert await eng.pause(id_)
            paused.set()

    services.before = pause_at_bob
    id_ = await eng.broadcast("newsletter", NEWS, by="@lea:example.com")
    await paused.wait()
    assert services.chats() == ["ann", "bob"]
    assert not await eng.pause(id_)  # paused already
    services.before = None
    assert await eng.resume(id_)
    assert await eng.wait(id_) == {"sent": 4}
    assert services.chats() == ["ann", "bob", "cyd", "dan"]

    # a cancel leaves the rest skipped
    services.sent.clear()

    async def cancel_at_bob(account: str, chat: str, message: DirectMessage) -> None:
        if chat == "bob":
            assert await eng.cancel(second)

    services.before = cancel_at_bob
    second = 0
    draft = await eng.draft("newsletter", "", NEWS, "@lea:example.com")
    second = draft.id
    await eng.start(second)
    counts = await eng.wait(second)
    assert services.chats() == ["ann", "bob"]
    assert counts == {"sent": 2, "skipped": 2}
    found = await Broadcast.get(second)
    assert found is not None and found.state == "cancelled" and found.finished_at


async def test_rows_left_sending_by_a_crash_are_sent_again_with_their_key(
    database: Database,
) -> None:
    services = Services()
    eng, registry, _ = engine(services, config((HOOK, TG)))
    (ann,) = await subscribe(registry, HOOK, "ann")
    (tg,) = await subscribe(registry, TG, "111")
    await subscribe(registry, HOOK, "bob")
    # as a crash leaves it: started, snapshot done, ann and 111 in flight, bob sent
    draft = await eng.draft("newsletter", "!r:x", NEWS, "@lea:example.com")
    await Broadcast.move(draft.id, ("draft",), "running", started_at=1)
    await eng._snapshot(draft)  # noqa: SLF001
    now = int(time.time() * 1000)
    for row in await Recipient.page(draft.id, (0, ""), 10):
        status = "sent" if row.chat == "bob" else "sending"
        await row.mark(status, now, attempts=1, message_id="old" if row.chat == "bob" else None)
    await eng.tick()
    assert await eng.wait(draft.id) == {"sent": 3}
    assert sorted(m.key for _, _, m in services.sent) == sorted(
        [f"broadcast:{draft.id}:{ann}:{HOOK}", f"broadcast:{draft.id}:{tg}:{TG}"]
    )
    found = await Broadcast.get(draft.id)
    assert found is not None and (found.in_flight, found.in_flight_keyed) == (1, 1)
    report = services.notices[-1][1]
    assert "1 were in flight at a stop and may have got it twice" in report
    assert "1 were in flight at a stop and were sent again with the same key" in report


async def test_whatsapp_outside_the_window_takes_the_template(database: Database) -> None:
    services = Services()
    eng, registry, _ = engine(services, config((WA,)))
    await subscribe(registry, WA, "491701", "491702")
    await Conversation.ensure(WA, "491701", 1)
    await Conversation.put_data(WA, "491701", {"last_inbound_at": time.time() - 3600})
    id_ = await eng.broadcast("newsletter", NEWS, by="@lea:example.com")
    assert await eng.wait(id_) == {"sent": 1, "failed": 1}
    ((_, chat, message),) = services.sent
    assert chat == "491701" and message.template is None
    (row,) = await Recipient.page(id_, (0, ""), 5, ("failed",))
    assert (row.chat, row.reason) == ("491702", NO_TEMPLATE)

    services.sent.clear()
    eng, registry, _ = engine(services, config((WA,), Template("news_update", "de")))
    id_ = await eng.broadcast("newsletter", NEWS, by="@lea:example.com")
    assert await eng.wait(id_) == {"sent": 2}
    by_chat = {chat: m for _, chat, m in services.sent}
    assert by_chat["491701"].template is None
    assert by_chat["491702"].template == "news_update"
    assert by_chat["491702"].template_params == (NEWS.text,)
    # a parameter carries no line breaks, tabs or runs of spaces (WhatsApp refuses them)
    services.sent.clear()
    lines = Content("Spring news:\n\n- 20% off\t  everything")
    await eng.wait(await eng.broadcast("newsletter", lines, by="@lea:example.com"))
    by_chat = {chat: m for _, chat, m in services.sent}
    assert by_chat["491702"].template_params == ("Spring news: - 20% off everything",)
    assert by_chat["491701"].text.startswith(lines.text)


async def test_receipts_move_a_recipient_forward(database: Database) -> None:
    services = Services()
    eng, registry, _ = engine(services)
    await subscribe(registry, HOOK, "ann", "bob", "cyd")
    id_ = await eng.broadcast("newsletter", NEWS, by="@lea:example.com")
    await eng.wait(id_)
    ids = {chat: f"m{n + 1}" for n, chat in enumerate(services.chats())}
    hook = ReceiptHook()

    async def receive(event: object) -> None:
        ref = ConversationRef(HOOK, RemoteChatID("x"), None)
        await hook.on_inbound(Inbound(ref, event, False))  # type: ignore[arg-type]

    someone = RemoteUser(RemoteUserID("x"))
    chat = RemoteChat(RemoteChatID("x"))
    await receive(RemoteReadReceipt(chat=chat, sender=someone, message_id=MessageID(ids["ann"])))
    await receive(
        RemoteDeliveryReceipt(chat=chat, sender=someone, message_id=MessageID(ids["ann"]))
    )
    await receive(
        RemoteDeliveryReceipt(chat=chat, sender=someone, message_id=MessageID(ids["bob"]))
    )
    await receive(RemoteDeliveryFailure(
        chat=chat, sender=someone, message_id=MessageID(ids["cyd"]), reason="bounced",
    ))  # fmt: skip
    await receive(RemoteDeliveryReceipt(chat=chat, sender=someone, message_id=MessageID("other")))
    assert await Recipient.counts(id_) == {"read": 1, "delivered": 1, "failed": 1}
    (row,) = await Recipient.page(id_, (0, ""), 5, ("failed",))
    assert (row.chat, row.reason) == ("cyd", "bounced")


async def test_the_worker_resumes_after_a_database_restart(databases: Databases) -> None:
    db = await databases.open()
    services = Services()
    eng, registry, _ = engine(services, in_flight=1)
    await subscribe(registry, HOOK, "ann", "bob", "cyd")
    stopped = asyncio.Event()

    async def database_goes_at_bob(account: str, chat: str, message: DirectMessage) -> None:
        if chat == "bob" and not stopped.is_set():
            await databases.close(db)  # bob's outcome cannot be recorded: the worker stops
            stopped.set()

    services.before = database_goes_at_bob
    id_ = await eng.broadcast("newsletter", NEWS, by="@lea:example.com")
    await stopped.wait()
    run = eng.runs[id_]
    assert run.task is not None
    await asyncio.wait([run.task])
    assert id_ not in eng.runs
    await databases.open()
    await eng.tick()  # the supervisor's next look: it is running, and nothing sends it
    assert await eng.wait(id_) == {"sent": 3}
    assert services.chats() == ["ann", "bob", "bob", "cyd"]  # bob's again, with its key
    assert len({m.key for _, _, m in services.sent}) == 3
    found = await Broadcast.get(id_)
    assert found is not None and found.state == "done" and found.in_flight_keyed == 1


async def test_a_kill_before_the_end_is_recorded_still_ends_with_one_report(
    database: Database,
) -> None:
    services = Services()
    eng, registry, _ = engine(services)
    await subscribe(registry, HOOK, "ann", "bob")
    # Everyone got it and the report was posted, but the kill came before "done" was stored.
    draft = await eng.draft("newsletter", "!r:x", NEWS, "@lea:example.com")
    await Broadcast.move(draft.id, ("draft",), "running", started_at=1)
    await eng._snapshot(draft)  # noqa: SLF001
    now = int(time.time() * 1000)
    for row in await Recipient.page(draft.id, (0, ""), 10):
        await row.mark("sent", now, attempts=1, message_id="m")
    await eng.reporter.final(draft.id, "done")
    await eng.tick()
    assert await eng.wait(draft.id) == {"sent": 2}
    found = await Broadcast.get(draft.id)
    assert found is not None and found.state == "done" and found.finished_at
    reports = [text for _, text, txn in services.notices if txn == f"broadcast-{draft.id}-report"]
    assert len(reports) == 1 and "finished" in reports[0]
    assert services.sent == []

    # Cancelled, then killed before its rows were closed and its report posted.
    second = await eng.draft("newsletter", "!r:x", NEWS, "@lea:example.com")
    await Broadcast.move(second.id, ("draft",), "running", started_at=1)
    await eng._snapshot(second)  # noqa: SLF001
    await Broadcast.move(second.id, ("running",), "cancelled")
    await eng.tick()
    found = await Broadcast.get(second.id)
    assert found is not None and found.state == "cancelled" and found.finished_at
    assert await Recipient.counts(second.id) == {"skipped": 2}
    reports = [text for _, text, txn in services.notices if txn == f"broadcast-{second.id}-report"]
    assert len(reports) == 1 and "cancelled" in reports[0]
    await eng.tick()  # nothing more
    assert len(services.notices) == len({t for _, _, t in services.notices})
    assert services.sent == []
