"""Features report through ``Seams.metrics``: the inbox its open and unassigned conversations
per team (a job, with the metrics listener on) and each first response, consent each consent
given and withdrawn (once, however often a step is retried)."""

from __future__ import annotations

from typing import Any

from mautrix.util.async_db import Database

from bridge.config import parse
from bridge.db import Portal
from bridge.db.broadcast import Broadcast, Recipient
from bridge.events import RemoteChat, RemoteMessage, RemoteUser
from bridge.features.broadcast.report import report_progress
from bridge.features.inbox.module import INBOX
from bridge.metrics.registry import BridgeMetrics
from bridge.seams import Inbound, Origin, Outgoing, Seams
from bridge.types import MessageID, RemoteChatID, RemoteUserID
from tests.features.consent.support import HOOK, registry
from tests.features.inbox.test_module import ACC, ANN, SECTION, FakeServices, ref
from tests.test_config import example

from .support import sample


async def test_the_inbox_reports_open_conversations_and_first_responses(
    database: Database,
) -> None:
    def configure(data: dict[str, Any]) -> None:
        data.update(features={"inbox": SECTION}, metrics={"listen": "127.0.0.1:9350"})

    config = parse(example(configure))
    metrics = BridgeMetrics()
    seams = Seams(config, FakeServices(), metrics=metrics)  # type: ignore[arg-type]
    options = INBOX.parse_config(config.features["inbox"], config)
    INBOX.setup(seams, options)
    [job] = [job for job in seams.jobs if job.name == "inbox-metrics"]
    for chat in ("c1", "c2"):
        await Portal(ACC, chat, f"!{chat}:x", name=f"Customer {chat}").insert()
        event = RemoteMessage(
            chat=RemoteChat(RemoteChatID(chat)), sender=RemoteUser(RemoteUserID(f"u-{chat}")),
            message_id=MessageID(f"m-{chat}"), text="hello",
        )  # fmt: skip
        await seams.inbound(Inbound(ref(chat), event, first_contact=True))
    await job.run()
    assert sample(metrics, "bridge_inbox_open_conversations", team="support") == 2
    assert sample(metrics, "bridge_inbox_open_conversations", team="sales") == 0
    assigned = 2 - sample(metrics, "bridge_inbox_unassigned_conversations", team="support")
    assert assigned == 2  # round robin over ann and bob
    await seams.delivered(Outgoing(ref("c1"), Origin.STAFF, ANN, "hi"))
    await seams.delivered(Outgoing(ref("c1"), Origin.STAFF, ANN, "and more"))
    assert sample(metrics, "bridge_inbox_first_response_seconds_count", team="support") == 1


def test_without_the_listener_no_refresh_job_runs() -> None:
    config = parse(example(lambda data: data.update(features={"inbox": SECTION})))
    seams = Seams(config, FakeServices())  # type: ignore[arg-type]
    INBOX.setup(seams, INBOX.parse_config(config.features["inbox"], config))
    assert "inbox-metrics" not in {job.name for job in seams.jobs}


async def test_consents_given_and_withdrawn_count_once(database: Database) -> None:
    reg = registry()
    metrics = BridgeMetrics()
    reg.metrics = metrics
    ann = await reg.contact_for(HOOK, "ann", create=True)
    assert ann is not None
    await reg.request(ann, "newsletter", HOOK, {}, "keyword")
    assert await reg.confirm(ann, "newsletter", HOOK, {}, "button", cause="m1")
    assert not await reg.confirm(ann, "newsletter", HOOK, {}, "button", cause="m1")  # a retry
    await reg.withdraw(ann, "newsletter", HOOK, {}, "stop")
    labels = {"list": "newsletter", "account": HOOK}
    assert sample(metrics, "bridge_consent_given_total", **labels) == 1
    assert sample(metrics, "bridge_consent_withdrawn_total", **labels) == 1


async def test_broadcast_progress_is_reported_for_each_list(database: Database) -> None:
    reg = registry()
    contacts = [await reg.contact_for(HOOK, name, create=True) for name in ("ann", "bob", "cy")]
    draft = await Broadcast.create("newsletter", "", {"text": "hi"}, "@lea:example.com", 0)
    metrics = BridgeMetrics()
    await report_progress(metrics, ["newsletter"])  # only a draft: nothing to report
    assert (
        metrics.registry.get_sample_value(
            "bridge_broadcast_recipients", {"list": "newsletter", "status": "sent"}
        )
        is None
    )
    await Broadcast.set(draft.id, state="running")
    await Recipient.add_many([Recipient(draft.id, c, HOOK, f"chat-{c}") for c in contacts if c])
    rows = await Recipient.page(draft.id, (0, ""), 10)
    await rows[0].mark("sent", 1)
    await rows[1].mark("failed", 1, reason="blocked")
    await report_progress(metrics, ["newsletter"])
    for status, value in (("sent", 1), ("failed", 1), ("pending", 1), ("skipped", 0)):
        assert (
            sample(metrics, "bridge_broadcast_recipients", list="newsletter", status=status)
            == value
        )
