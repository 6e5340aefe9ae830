"""The WhatsApp simulator's webhooks (verification, signatures, retries, shuffled delivery,
statuses), checked by an independent receiver, and the webhook payload builders."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import re

import aiohttp
import pytest

from . import payloads as wa
from . import sim_support
from .sim_support import ALICE, BOB, SECRET, VERIFY, Receiver, open_window, send
from .simulator import WhatsAppSimulator

# The fixtures shared by these tests (see sim_support).
receiver = sim_support.receiver
sim = sim_support.sim
http = sim_support.http


# -- webhooks -------------------------------------------------------------------------------------


async def test_webhook_verification(sim: WhatsAppSimulator) -> None:
    assert await sim.verify_webhook(challenge="1158201444") == (200, "1158201444")
    status, _ = await sim.verify_webhook(token="wrong")
    assert status == 403
    status, _ = await sim.verify_webhook(mode="unsubscribe")
    assert status == 403
    params = sim.verifications[0][0]
    assert params == {
        "hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": VERIFY,
    }  # fmt: skip


async def test_signed_webhook(sim: WhatsAppSimulator, receiver: Receiver) -> None:
    msg = wa.text_message(ALICE, "Grüße 😀 </script>")
    delivery = await sim.receive(msg, names={ALICE: "Alice"})
    assert delivery.ok and delivery.statuses == [200]
    raw, headers = receiver.raw[0], receiver.headers[0]
    assert raw == delivery.body and raw.isascii() and b"\\ud83d\\ude00" in raw
    assert headers["Content-Type"] == "application/json"
    expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature-256"] == expected == delivery.signature
    event = receiver.events[0]
    assert event == sim.messages_payload(msg, names={ALICE: "Alice"})
    value = event["entry"][0]["changes"][0]["value"]
    assert value["contacts"] == [{"profile": {"name": "Alice"}, "wa_id": ALICE}]
    assert value["messages"][0]["text"]["body"] == "Grüße 😀 </script>"
    assert msg["id"] in sim.inbound and sim.window_open(ALICE)


async def test_bad_and_missing_signatures(sim: WhatsAppSimulator, receiver: Receiver) -> None:
    payload = sim.messages_payload(wa.text_message(ALICE, "x"))
    delivery = await sim.send_webhook(payload, bad_signature=True)
    assert not delivery.ok and delivery.statuses == [401, 401, 401]
    assert delivery.signature is not None and delivery.signature.startswith("sha256=")
    delivery = await sim.send_webhook(payload, no_signature=True, max_attempts=1)
    assert delivery.statuses == [401] and delivery.signature is None
    assert receiver.events == [] and len(receiver.refused) == 4


async def test_retries_and_duplicates(sim: WhatsAppSimulator, receiver: Receiver) -> None:
    payload = sim.messages_payload(wa.text_message(ALICE, "retry me"))
    receiver.answers = [500, 503]
    delivery = await sim.send_webhook(payload)
    assert delivery.ok and delivery.statuses == [500, 503, 200]
    assert len(receiver.events) == 3 and receiver.events[0] == receiver.events[2]

    delivery = await sim.send_webhook(payload, duplicate=True)
    assert delivery.statuses == [200, 200] and delivery.attempts[1].duplicate
    assert receiver.raw[-1] == receiver.raw[-2]

    receiver.answers = [500] * 5
    delivery = await sim.send_webhook(payload, max_attempts=2)
    assert not delivery.ok and delivery.statuses == [500, 500]

    delivery = await sim.send_webhook(payload, url="http://127.0.0.1:9/closed", max_attempts=1)
    assert delivery.statuses == [None] and delivery.attempts[0].error
    assert await sim.wait_for_webhook_delivery(lambda d: d.statuses == [None]) is delivery


async def test_shuffled_delivery(sim: WhatsAppSimulator, receiver: Receiver) -> None:
    msgs = [wa.text_message(ALICE, f"m{n}", timestamp=1_700_000_000 + n) for n in range(8)]
    payloads = [sim.messages_payload(m) for m in msgs]
    deliveries = await sim.deliver_shuffled(payloads, seed=7)
    expected = list(payloads)
    random.Random(7).shuffle(expected)
    assert [d.payload for d in deliveries] == expected == receiver.events
    assert expected != payloads
    receiver.events.clear()
    await sim.deliver_shuffled(payloads, seed=1, concurrent=True)
    bodies = sorted(m["text"]["body"] for e in receiver.events for m in wa.iter_messages(e))
    assert bodies == sorted(m["text"]["body"] for m in msgs)


async def test_emit_statuses(
    sim: WhatsAppSimulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    await open_window(sim, BOB)
    receiver.events.clear()
    status, body = await send(http, sim, BOB, "text", {"body": "track me"})
    wamid = body["messages"][0]["id"]
    deliveries = await sim.emit_statuses(wamid)
    assert all(d.ok for d in deliveries) and len(receiver.events) == 3
    statuses = receiver.statuses()
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]
    for entry in statuses:
        assert entry["id"] == wamid and entry["recipient_id"] == BOB
        assert isinstance(entry["timestamp"], str) and entry["timestamp"].isdigit()
        assert entry["pricing"] == {
            "billable": True, "pricing_model": "PMP", "type": "regular", "category": "service",
        }  # fmt: skip
        assert entry["conversation"]["origin"] == {"type": "service"}
    assert "expiration_timestamp" in statuses[0]["conversation"]
    value = receiver.events[0]["entry"][0]["changes"][0]["value"]
    assert set(value) == {"messaging_product", "metadata", "statuses"}

    error = wa.webhook_error(131047)
    await sim.emit_statuses(wamid, ["failed"], errors=[error])
    failed = receiver.statuses()[-1]
    assert failed["status"] == "failed" and failed["errors"] == [error]
    assert "pricing" not in failed and "conversation" not in failed


async def test_auto_statuses(
    sim: WhatsAppSimulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    inbound = await open_window(sim)
    receiver.events.clear()
    sim.auto_statuses = ("sent", "delivered")
    _, body = await send(http, sim, ALICE, "text", {"body": "x"})
    wamid = body["messages"][0]["id"]
    await sim.wait_for(lambda: len(receiver.statuses()) == 2)
    assert [(s["id"], s["status"]) for s in receiver.statuses()] == [
        (wamid, "sent"), (wamid, "delivered"),
    ]  # fmt: skip
    await send(http, sim, ALICE, "reaction", {"message_id": inbound["id"], "emoji": "❤️"})
    await sim.wait_for(lambda: len(receiver.statuses()) == 3)
    await asyncio.sleep(0.05)
    assert [s["status"] for s in receiver.statuses()] == ["sent", "delivered", "sent"]


async def test_wait_for_sent_sees_later_sends(
    sim: WhatsAppSimulator, http: aiohttp.ClientSession
) -> None:
    await open_window(sim)

    async def later() -> None:
        await asyncio.sleep(0.05)
        await send(http, sim, ALICE, "text", {"body": "eventually"})

    task = asyncio.create_task(later())
    sent = await sim.wait_for_sent(lambda s: s.text == "eventually", timeout=5)
    await task
    assert sent.wa_id == ALICE
    with pytest.raises(TimeoutError):
        await sim.wait_for_rejection(timeout=0.05)


# -- builders -------------------------------------------------------------------------------------


def test_envelope_shape() -> None:
    msg = wa.text_message(ALICE, "hi", timestamp=1_700_000_000)
    payload = wa.messages_payload(
        [msg], names={ALICE: "Alice"}, waba_id="W", phone_number_id="P", display_phone_number="D"
    )
    assert payload == {
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "W",
            "changes": [{
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "D", "phone_number_id": "P"},
                    "contacts": [{"profile": {"name": "Alice"}, "wa_id": ALICE}],
                    "messages": [{
                        "from": ALICE, "id": msg["id"], "timestamp": "1700000000",
                        "type": "text", "text": {"body": "hi"},
                    }],
                },
                "field": "messages",
            }],
        }],
    }  # fmt: skip
    assert re.fullmatch(r"wamid\.HBg[A-Za-z0-9+/]+=*", msg["id"])
    assert msg["id"] != wa.new_wamid(ALICE)


def test_inbound_builders() -> None:
    ctx = wa.reply_context("15550783881", "wamid.ABC")
    media = {"mime_type": "image/jpeg", "sha256": "aGFzaA==", "id": "111"}
    image = wa.image_message(ALICE, "111", sha256="aGFzaA==", caption="c", context=ctx)
    assert image["image"] == {**media, "caption": "c"}
    assert wa.image_message(ALICE, "1", sha256="s", context=ctx)["context"] == {
        "from": "15550783881", "id": "wamid.ABC",
    }  # fmt: skip
    audio = wa.audio_message(ALICE, "2", sha256="s", voice=True)["audio"]
    assert audio == {
        "mime_type": "audio/ogg; codecs=opus",
        "sha256": "s",
        "id": "2",
        "voice": True,
    }
    assert wa.video_message(ALICE, "3", sha256="s")["type"] == "video"
    doc = wa.document_message(ALICE, "4", sha256="s", filename="a.pdf", caption="x")["document"]
    assert set(doc) == {"mime_type", "sha256", "id", "filename", "caption"}
    assert wa.sticker_message(ALICE, "5", sha256="s", animated=True)["sticker"]["animated"] is True
    loc = wa.location_message(ALICE, 1.5, 2.5, name="N", address="A")
    assert loc["location"] == {"latitude": 1.5, "longitude": 2.5, "name": "N", "address": "A"}
    card = wa.contact_card(
        "Jane Doe", first_name="Jane", phones=["+1 555", {"phone": "+2", "wa_id": "2"}]
    )
    contacts = wa.contacts_message(ALICE, [card])["contacts"]
    assert contacts[0]["name"] == {"formatted_name": "Jane Doe", "first_name": "Jane"}
    assert contacts[0]["phones"] == [
        {"phone": "+1 555", "type": "CELL"},
        {"phone": "+2", "wa_id": "2"},
    ]
    button = wa.button_reply_message(ALICE, "yes", "Yes", context=ctx)
    assert button["interactive"] == {
        "type": "button_reply",
        "button_reply": {"id": "yes", "title": "Yes"},
    }
    row = wa.list_reply_message(ALICE, "r1", "Row", "Desc")["interactive"]
    assert row == {
        "type": "list_reply",
        "list_reply": {"id": "r1", "title": "Row", "description": "Desc"},
    }
    quick = wa.template_button_message(ALICE, "STOP_PROMOS", "Stop", context=ctx)
    assert quick["type"] == "button" and quick["button"] == {
        "payload": "STOP_PROMOS",
        "text": "Stop",
    }
    assert wa.reaction_message(ALICE, "wamid.X", "👍")["reaction"] == {
        "message_id": "wamid.X",
        "emoji": "👍",
    }
    assert wa.reaction_message(ALICE, "wamid.X", "")["reaction"] == {"message_id": "wamid.X"}
    unsupported = wa.unsupported_message(ALICE, "poll_creation")
    assert unsupported["type"] == "unsupported" and unsupported["unsupported"] == {
        "type": "poll_creation"
    }
    assert unsupported["errors"] == [{
        "code": 131051, "title": "Message type unknown", "message": "Message type unknown",
        "error_data": {"details": "Message type is currently not supported."},
    }]  # fmt: skip
    errored = wa.with_errors(wa.text_message(ALICE, "x"), [wa.webhook_error(131051)])
    assert errored["errors"][0]["code"] == 131051
    for msg in (button, quick, loc, unsupported):
        assert set(msg) >= {"from", "id", "timestamp", "type"}
        assert msg["timestamp"].isdigit()
    with pytest.raises(ValueError):
        wa.media_message("gif", ALICE, "1", mime_type="image/gif", sha256="s")


def test_status_builders() -> None:
    conv = wa.conversation("c1", origin="utility", expiration_timestamp=1_700_086_400)
    entry = wa.status_update(
        "wamid.X", "sent", ALICE, timestamp=1_700_000_000, conversation=conv,
        pricing=wa.pricing("utility"),
    )  # fmt: skip
    assert entry == {
        "id": "wamid.X", "status": "sent", "timestamp": "1700000000", "recipient_id": ALICE,
        "conversation": {
            "id": "c1", "expiration_timestamp": "1700086400", "origin": {"type": "utility"},
        },
        "pricing": {
            "billable": True, "pricing_model": "PMP", "type": "regular", "category": "utility",
        },
    }  # fmt: skip
    assert wa.pricing(pricing_model="CBP") == {
        "billable": True, "pricing_model": "CBP", "category": "service",
    }  # fmt: skip
    failed = wa.status_update("wamid.X", "failed", ALICE, errors=[wa.webhook_error(131026)])
    assert failed["errors"][0]["error_data"] == {"details": "Message Undeliverable."}
    with pytest.raises(ValueError):
        wa.status_update("wamid.X", "deleted", ALICE)
    errors_only = wa.envelope(
        waba_id="W", phone_number_id="P", display_phone_number="D",
        errors=[wa.webhook_error(130429)],
    )  # fmt: skip
    value = errors_only["entry"][0]["changes"][0]["value"]
    assert set(value) == {"messaging_product", "metadata", "errors"}


def test_graph_error_builder() -> None:
    body = wa.graph_error(131056, fbtrace_id="Atrace")
    assert body == {
        "error": {
            "message": "(#131056) (Business Account, Consumer Account) pair rate limit hit",
            "type": "OAuthException",
            "code": 131056,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": wa.ERRORS[131056].details,
            },
            "fbtrace_id": "Atrace",
        }
    }
    assert wa.graph_error(130429)["error"]["error_subcode"] == 2494055
    assert (
        wa.signature(b"{}", "s") == "sha256=" + hmac.new(b"s", b"{}", hashlib.sha256).hexdigest()
    )
