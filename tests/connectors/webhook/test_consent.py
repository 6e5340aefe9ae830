"""The signed inbound ``consent`` event (an in-house system's consent step, with its proof)
becoming one ``RemoteConsent``, strictly checked; and a message the bridge starts (a
broadcast's direct send) carrying its key as the ``Idempotency-Key``, also when sent again."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from bridge.connector import TemporaryDeliveryError
from bridge.connectors.webhook import WebhookConnector
from bridge.events import RemoteConsent
from tests.contract.harness import FakeHost

from .factories import changed, message
from .harness import Failure, WebhookHarness

AT = 1_767_225_600_000
CONSENT: dict[str, Any] = {
    "type": "consent",
    "id": "consent-step-9",
    "chat": {"id": "chat-1"},
    "sender": {"id": "cust-1", "name": "Jana"},
    "list": "newsletter",
    "step": "confirmed",
    "proof": {"at": AT, "text_version": "v3", "source": "shop checkout", "ip": "203.0.113.9"},
}


def consent(**changes: Any) -> dict[str, Any]:
    return changed(CONSENT, **changes)


async def test_a_consent_event_becomes_one_remote_consent(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    assert await harness.post_ok(CONSENT) == "accepted"
    assert await harness.post_ok(CONSENT) == "duplicate"
    (event,) = host.events
    assert isinstance(event, RemoteConsent)
    assert (event.consent_id, event.list, event.step) == (
        "consent-step-9",
        "newsletter",
        "confirmed",
    )
    assert event.proof == CONSENT["proof"]
    assert (event.chat.id, event.sender.id, event.sender.displayname) == (
        "chat-1",
        "cust-1",
        "Jana",
    )
    assert event.timestamp == AT / 1000
    for step in ("declined", "withdrawn"):
        assert await harness.post_ok(consent(id=f"s-{step}", step=step, timestamp=1.7e9)) == (
            "accepted"
        )
    assert [(e.step, e.timestamp) for e in host.events[1:]] == [
        ("declined", 1.7e9),
        ("withdrawn", 1.7e9),
    ]


BAD = {
    "no step": (consent(step=...), "step: is required"),
    "unknown step": (consent(step="requested"), "step: must be one of confirmed, declined"),
    "no list": (consent(list=...), "list: is required"),
    "empty list": (consent(list=""), "list: must not be empty"),
    "no id": (consent(id=...), "id: is required"),
    "no sender": (consent(sender=...), "sender: is required"),
    "no proof": (consent(proof=...), "proof: is required"),
    "proof a list": (consent(proof=[AT]), "proof: must be a JSON object"),
    "no proof.at": (consent(proof={"text_version": "v3"}), "proof.at: is required"),
    "proof.at in seconds": (consent(proof={"at": AT // 1000}), "proof.at: is required"),
    "proof.at a string": (consent(proof={"at": "2026-01-01"}), "proof.at: is required"),
    "nested proof": (
        consent(proof={"at": AT, "form": {"field": "x"}}),
        "proof.form: must be a string or a number",
    ),
    "list in proof": (consent(proof={"at": AT, "ids": [1]}), "proof.ids: must be a string"),
    "bool in proof": (consent(proof={"at": AT, "ok": True}), "proof.ok: must be a string"),
    "null in proof": (consent(proof={"at": AT, "ip": None}), "proof.ip: must be a string"),
    "long proof text": (
        consent(proof={"at": AT, "text": "x" * 1001}),
        "proof.text: must be at most 1000 characters",
    ),
    "too many values": (
        consent(proof={"at": AT, **{f"k{i}": i for i in range(20)}}),
        "proof: must have at most 20 values",
    ),
    "long name": (consent(proof={"at": AT, "n" * 65: 1}), "proof: names must be 1 to 64"),
    "NUL in proof": (consent(proof={"at": AT, "s": "a\x00b"}), "proof.s: must not contain NUL"),
    # What the proof of each step needs (one rule with the consent feature's), refused while
    # the in-house system still listens rather than dropped after a 200:
    "confirmed without source": (
        consent(proof={"at": AT, "text_version": "v3"}),
        "proof: `source` is required",
    ),
    "declined without source": (consent(step="declined", proof={"at": AT}), "proof: `source`"),
    "confirmed without text": (
        consent(proof={"at": AT, "source": "crm"}),
        "proof: `text_version` is required",
    ),
    "at tomorrow": (
        consent(proof={**CONSENT["proof"], "at": time.time() * 1000 + 86_400_000}),
        "proof: `at` must be milliseconds since the epoch, and not in the future",
    ),
}


@pytest.mark.parametrize(("payload", "error"), BAD.values(), ids=BAD.keys())
async def test_a_bad_consent_event_is_refused_and_nothing_recorded(
    harness: WebhookHarness,
    connector: WebhookConnector,
    host: FakeHost,
    payload: dict[str, Any],
    error: str,
) -> None:
    status, answer = await harness.post(payload)
    assert status == 400
    assert answer["error"].startswith(error), answer
    assert host.events == []


async def test_a_withdrawal_needs_only_its_time(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    """Withdrawing is as easy as giving; a clock a minute ahead loses nothing."""
    ahead = time.time() * 1000 + 60_000
    payload = consent(id="w-1", step="withdrawn", proof={"at": ahead})
    assert await harness.post_ok(payload) == "accepted"
    (event,) = host.events
    assert event.proof == {"at": ahead}


async def test_the_largest_proof_is_taken(
    harness: WebhookHarness, connector: WebhookConnector, host: FakeHost
) -> None:
    proof = {"at": AT, "source": "crm", "text_version": "v3",
             **{f"k{i}": "x" * 1000 for i in range(17)}}  # fmt: skip
    assert await harness.post_ok(consent(proof=proof)) == "accepted"
    (event,) = host.events
    assert isinstance(event, RemoteConsent) and event.proof == proof


async def test_a_started_message_carries_its_key_also_when_sent_again(
    harness: WebhookHarness, connector: WebhookConnector
) -> None:
    """``Services.send_direct`` makes the message's event id from its key; the receiver gets it
    as the ``Idempotency-Key`` (and ``id``), the same on the core's retry."""
    direct = message("Our news", event_id="broadcast:7:cust-1", automatic=True)
    harness.receiver.fail(Failure(503))
    with pytest.raises(TemporaryDeliveryError):
        await connector.send_message(direct)
    sent = await connector.send_message(direct)
    keys = [r.headers["Idempotency-Key"] for r in harness.receiver.requests]
    assert keys == ["broadcast:7:cust-1", "broadcast:7:cust-1"]
    (delivery,) = harness.receiver.deliveries
    assert json.loads(delivery.body)["id"] == "broadcast:7:cust-1"
    assert sent.message_id == delivery.answer_id
