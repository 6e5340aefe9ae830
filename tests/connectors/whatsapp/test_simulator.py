"""The WhatsApp Cloud API simulator, driven with plain aiohttp clients: auth and routing, sending,
the 24-hour window, templates, delivery errors and limits, read receipts."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from . import payloads as wa
from . import sim_support
from .sim_support import (
    ALICE,
    BOB,
    PNG,
    TOKEN,
    Json,
    Receiver,
    V,
    assert_error,
    call,
    open_window,
    send,
    upload,
)
from .simulator import RateLimits, WhatsAppSimulator

# The fixtures shared by these tests (see sim_support).
receiver = sim_support.receiver
sim = sim_support.sim
http = sim_support.http


# -- auth and routing -----------------------------------------------------------------------------


async def test_auth_errors_use_the_graph_error_shape(
    sim: WhatsAppSimulator, http: aiohttp.ClientSession
) -> None:
    path = f"/{sim.phone_number_id}/messages"
    for token in (None, "wrong-token"):
        status, body = await call(http, sim, "POST", path, token=token, json={})
        error = assert_error(status, body, 401, 190)
        assert error["type"] == "OAuthException"
        assert "error_data" not in error
    status, body = await call(
        http, sim, "GET", f"{sim.base_url}/{V}/{sim.phone_number_id}?access_token={TOKEN}",
        token=None,
    )  # fmt: skip
    assert status == 200 and body["id"] == sim.phone_number_id
    assert body["verified_name"] == sim.verified_name
    assert len(sim.rejected) == 2 and {r.code for r in sim.rejected} == {190}


async def test_unknown_nodes_and_paths(
    sim: WhatsAppSimulator, http: aiohttp.ClientSession
) -> None:
    status, body = await call(http, sim, "POST", "/999/messages", json={})
    error = assert_error(status, body, 400, 100)
    assert error["error_subcode"] == 33 and error["type"] == "GraphMethodException"
    status, body = await call(http, sim, "GET", "/123456/unknown_edge")
    assert_error(status, body, 400, 2500)
    status, body = await call(http, sim, "GET", f"{sim.base_url}/v99.9/{sim.phone_number_id}")
    assert status == 200  # any vNN.N is accepted


# -- sending --------------------------------------------------------------------------------------


async def test_send_text_reply_and_reaction(
    sim: WhatsAppSimulator, http: aiohttp.ClientSession
) -> None:
    inbound = await open_window(sim)
    status, body = await send(
        http, sim, "+49 170 1234567", "text", {"body": "Hi", "preview_url": False}
    )
    assert status == 200, body
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "+49 170 1234567", "wa_id": ALICE}]
    assert re.fullmatch(r"wamid\.[A-Za-z0-9+/=]+", body["messages"][0]["id"])
    assert "message_status" not in body["messages"][0]
    sent = sim.sent[-1]
    assert (sent.type, sent.wa_id, sent.text, sent.wamid) == (
        "text", ALICE, "Hi", body["messages"][0]["id"],
    )  # fmt: skip

    status, body = await send(
        http, sim, ALICE, "text", {"body": "a reply"}, context={"message_id": inbound["id"]}
    )
    assert status == 200 and sim.sent[-1].context_id == inbound["id"]

    status, _ = await send(
        http, sim, ALICE, "reaction", {"message_id": inbound["id"], "emoji": "👍"}
    )
    assert status == 200 and sim.sent[-1].content == {"message_id": inbound["id"], "emoji": "👍"}
    status, _ = await send(
        http, sim, ALICE, "reaction", {"message_id": inbound["id"], "emoji": ""}
    )
    assert status == 200 and sim.sent[-1].content["emoji"] == ""
    assert len({s.wamid for s in sim.sent}) == len(sim.sent) == 4


async def test_send_other_types(sim: WhatsAppSimulator, http: aiohttp.ClientSession) -> None:
    await open_window(sim)
    location = {"latitude": 52.52, "longitude": 13.405, "name": "Office", "address": "Berlin"}
    card = wa.contact_card("Jane Doe", first_name="Jane", phones=["+4930123"])
    interactive = {
        "type": "button",
        "body": {"text": "Pick one"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "y", "title": "Yes"}}]},
    }
    for type_, content in (
        ("location", location),
        ("contacts", [card]),
        ("interactive", interactive),
        ("image", {"link": "https://example.com/a.jpg", "caption": "from a link"}),
    ):
        status, body = await send(http, sim, ALICE, type_, content)
        assert status == 200, (type_, body)
    assert [s.type for s in sim.sent] == ["location", "contacts", "interactive", "image"]
    assert sim.sent[-1].media is None and sim.sent[-1].text == "from a link"


async def test_request_validation(sim: WhatsAppSimulator, http: aiohttp.ClientSession) -> None:
    await open_window(sim)
    path = f"/{sim.phone_number_id}/messages"
    status, body = await call(http, sim, "POST", path, json={"to": ALICE, "text": {"body": "x"}})
    assert_error(status, body, 400, 100)
    status, body = await call(http, sim, "POST", path, data=b"not json")
    assert_error(status, body, 400, 100)
    cases: list[tuple[str, Any, int]] = [
        ("text", {"body": ""}, 100),
        ("text", {"body": "x" * 4097}, 100),
        ("hologram", {"body": "x"}, 100),
        ("image", {"id": "1", "link": "https://e.com/x"}, 100),
        ("image", {"id": "404404404"}, 131009),
        ("audio", {"link": "https://e.com/a.mp3", "caption": "no"}, 100),
        ("location", {"latitude": 1}, 100),
        ("contacts", [], 100),
        (
            "interactive",
            {"type": "button", "body": {"text": "x"}, "action": {"buttons": []}},
            131009,
        ),
        ("template", {"name": "x"}, 100),
    ]
    for type_, content, code in cases:
        status, body = await send(http, sim, ALICE, type_, content)
        error = assert_error(status, body, 400, code)
        assert error["message"].startswith(f"(#{code}) ")
        assert error["error_data"]["messaging_product"] == "whatsapp"
        assert error["error_data"]["details"]
    status, body = await send(http, sim, "", "text", {"body": "x"})
    assert_error(status, body, 400, 100)
    status, _ = await send(http, sim, ALICE, "text", {"body": "x" * 4096})
    assert status == 200
    assert [r.code for r in sim.rejected] == [100, 100] + [c for _, _, c in cases] + [100]
    assert sim.rejected[-1].request is not None and sim.rejected[-1].request["to"] == ""


@given(st.text(max_size=4200))
def test_text_length_rule(text: str) -> None:
    body = {"to": ALICE, "type": "text", "text": {"body": text}}
    if 1 <= len(text) <= 4096:
        assert wa.check_message(body)[0] == "text"
    else:
        with pytest.raises(wa.ApiError) as info:
            wa.check_message(body)
        assert info.value.code == 100 and info.value.status == 400


# -- the 24-hour window ---------------------------------------------------------------------------


async def test_customer_service_window(
    sim: WhatsAppSimulator, http: aiohttp.ClientSession
) -> None:
    status, body = await send(http, sim, ALICE, "text", {"body": "cold"})
    error = assert_error(status, body, 400, 131047)
    assert error["message"] == "(#131047) Re-engagement message"
    assert "24 hours" in error["error_data"]["details"]

    inbound = await open_window(sim)
    assert sim.window_open(ALICE) and not sim.window_open(BOB)
    status, _ = await send(http, sim, ALICE, "text", {"body": "warm"})
    assert status == 200
    sim.clock.advance(24 * 3600 - 1)
    status, _ = await send(http, sim, ALICE, "text", {"body": "still warm"})
    assert status == 200
    sim.clock.advance(2)
    status, body = await send(http, sim, ALICE, "text", {"body": "too late"})
    assert_error(status, body, 400, 131047)
    status, body = await send(
        http, sim, ALICE, "reaction", {"message_id": inbound["id"], "emoji": "👍"}
    )
    assert_error(status, body, 400, 131047)

    sim.add_template("reengage", "en_US", "Hi {{1}}, are you still there?")
    template = {
        "name": "reengage",
        "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Alice"}]}],
    }
    status, body = await send(http, sim, ALICE, "template", template)
    assert status == 200 and body["messages"][0]["message_status"] == "accepted"

    await open_window(sim)
    status, _ = await send(http, sim, ALICE, "text", {"body": "warm again"})
    assert status == 200


# -- templates ------------------------------------------------------------------------------------


async def test_templates_are_checked(sim: WhatsAppSimulator, http: aiohttp.ClientSession) -> None:
    sim.add_template("order_update", "en_US", "Hello {{1}}, your order {{2}} has shipped.")
    sim.add_template("pending_one", "en_US", "Hi", status="PENDING")
    sim.add_template("paused_one", "en_US", "Hi", status="PAUSED")
    sim.add_template("disabled_one", "en_US", "Hi", status="DISABLED")

    def template(name: str, lang: str, *params: str) -> Json:
        parameters = [{"type": "text", "text": p} for p in params]
        return {
            "name": name,
            "language": {"code": lang},
            "components": [{"type": "body", "parameters": parameters}],
        }

    status, body = await send(
        http, sim, BOB, "template", template("order_update", "en_US", "Bob", "#42")
    )
    assert status == 200, body
    assert sim.sent[-1].rendered == "Hello Bob, your order #42 has shipped."
    assert sim.sent[-1].template is not None and sim.sent[-1].template.category == "UTILITY"

    status, body = await send(http, sim, BOB, "template", template("order_update", "de", "a", "b"))
    error = assert_error(status, body, 404, 132001)
    assert error["message"] == "(#132001) Template name does not exist in the translation"
    assert error["error_data"]["details"] == "template name (order_update) does not exist in de"
    for name, code, http_status in (
        ("nope", 132001, 404),
        ("pending_one", 132001, 404),
        ("paused_one", 132015, 400),
        ("disabled_one", 132016, 400),
    ):
        status, body = await send(http, sim, BOB, "template", template(name, "en_US"))
        assert_error(status, body, http_status, code)
    status, body = await send(http, sim, BOB, "template", template("order_update", "en_US", "Bob"))
    error = assert_error(status, body, 400, 132000)
    assert error["message"] == (
        "(#132000) Number of parameters does not match the expected number of params"
    )
    assert error["error_data"]["details"] == (
        "body: number of localizable_params (1) does not match the expected number of params (2)"
    )


async def test_template_paging(sim: WhatsAppSimulator, http: aiohttp.ClientSession) -> None:
    for n in range(5):
        sim.add_template(
            f"t{n}", "en_US", f"Body {n} {{{{1}}}}", status="REJECTED" if n == 4 else "APPROVED"
        )
    path = f"/{sim.waba_id}/message_templates"
    status, page = await call(http, sim, "GET", path, params={"limit": "2"})
    assert status == 200
    assert [t["name"] for t in page["data"]] == ["t0", "t1"]
    first = page["data"][0]
    assert set(first) >= {"name", "language", "status", "category", "components", "id"}
    assert first["components"] == [{"type": "BODY", "text": "Body 0 {{1}}"}]
    assert set(page["paging"]["cursors"]) == {"before", "after"}
    assert "previous" not in page["paging"]
    names = [t["name"] for t in page["data"]]
    while "next" in page["paging"]:
        status, page = await call(http, sim, "GET", page["paging"]["next"])
        assert status == 200 and "previous" in page["paging"]
        names += [t["name"] for t in page["data"]]
    assert names == ["t0", "t1", "t2", "t3", "t4"]
    after = page["paging"]["cursors"]["after"]
    status, page = await call(http, sim, "GET", path, params={"after": after})
    assert status == 200 and page == {"data": []}

    status, page = await call(http, sim, "GET", path, params={"status": "APPROVED", "limit": "10"})
    assert [t["name"] for t in page["data"]] == ["t0", "t1", "t2", "t3"]
    assert "next" not in page["paging"]
    status, body = await call(http, sim, "GET", "/1234/message_templates")
    assert_error(status, body, 400, 100)
    status, body = await call(http, sim, "GET", path, params={"after": "!!"})
    assert_error(status, body, 400, 100)


# -- delivery errors, limits, storms --------------------------------------------------------------


async def test_undeliverable_numbers(
    sim: WhatsAppSimulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    await open_window(sim, BOB)
    sim.set_undeliverable(BOB)
    status, body = await send(http, sim, BOB, "text", {"body": "x"})
    error = assert_error(status, body, 400, 131026)
    assert error["message"] == "(#131026) Message Undeliverable"

    sim.set_undeliverable(BOB, "webhook")
    status, body = await send(http, sim, BOB, "text", {"body": "x"})
    assert status == 200
    wamid = body["messages"][0]["id"]
    await sim.wait_for(lambda: receiver.statuses())
    (failed,) = receiver.statuses()
    assert (failed["id"], failed["status"], failed["recipient_id"]) == (wamid, "failed", BOB)
    assert failed["errors"][0]["code"] == 131026
    assert set(failed["errors"][0]) == {"code", "title", "message", "error_data", "href"}

    sim.set_undeliverable(BOB, "")
    status, _ = await send(http, sim, BOB, "text", {"body": "x"})
    assert status == 200


async def test_throughput_limit(sim: WhatsAppSimulator, http: aiohttp.ClientSession) -> None:
    sim.rate_limits = RateLimits(messages_per_second=3)
    for wa_id in ("1001", "1002", "1003", "1004", "1005"):
        sim.open_window(wa_id)
    for wa_id in ("1001", "1002", "1003"):
        status, _ = await send(http, sim, wa_id, "text", {"body": "x"})
        assert status == 200
    status, body = await send(http, sim, "1004", "text", {"body": "x"})
    error = assert_error(status, body, 400, 130429)
    assert error["message"] == "(#130429) Rate limit hit"
    assert error["error_data"]["details"] == "Cloud API message throughput has been reached."
    assert error["error_subcode"] == 2494055
    sim.clock.advance(1.0)
    status, _ = await send(http, sim, "1004", "text", {"body": "x"})
    assert status == 200


async def test_default_throughput_is_80_per_second(
    sim: WhatsAppSimulator, http: aiohttp.ClientSession
) -> None:
    users = [str(5_000_000 + n) for n in range(81)]
    for wa_id in users:
        sim.open_window(wa_id)
    results = [await send(http, sim, wa_id, "text", {"body": "x"}) for wa_id in users]
    assert [s for s, _ in results].count(200) == 80
    assert results[-1][1]["error"]["code"] == 130429


async def test_pair_rate_limit(sim: WhatsAppSimulator, http: aiohttp.ClientSession) -> None:
    sim.rate_limits = RateLimits(pair_burst=2, pair_interval=6.0)
    await open_window(sim, ALICE)
    await open_window(sim, BOB)
    assert [(await send(http, sim, ALICE, "text", {"body": "x"}))[0] for _ in range(2)] == [
        200
    ] * 2
    status, body = await send(http, sim, ALICE, "text", {"body": "x"})
    error = assert_error(status, body, 400, 131056)
    assert error["message"] == "(#131056) (Business Account, Consumer Account) pair rate limit hit"
    status, _ = await send(http, sim, BOB, "text", {"body": "another user is fine"})
    assert status == 200
    sim.clock.advance(3.0)
    status, _ = await send(http, sim, ALICE, "text", {"body": "x"})
    assert status == 400
    sim.clock.advance(6.0)
    status, _ = await send(http, sim, ALICE, "text", {"body": "x"})
    assert status == 200


async def test_storms_and_transient_errors(
    sim: WhatsAppSimulator, http: aiohttp.ClientSession
) -> None:
    await open_window(sim)
    sim.storm(2, 130429)
    sim.storm(1, 131056)
    sim.storm(1, 1)
    sim.storm(1, 2)
    sim.storm(1, 131000, status=502)
    expected = [(400, 130429), (400, 130429), (400, 131056), (500, 1), (503, 2), (502, 131000)]
    for http_status, code in expected:
        status, body = await send(http, sim, ALICE, "text", {"body": "x"})
        assert_error(status, body, http_status, code)
    assert (await send(http, sim, ALICE, "text", {"body": "x"}))[0] == 200
    assert sim.rejected[3].error["message"] == "(#1) An unknown error occurred"
    assert sim.rejected[4].error["message"] == "(#2) Service temporarily unavailable"

    media_id = (await upload(http, sim, PNG, "image/png"))[1]["id"]
    sim.fail_next(1)
    status, body = await call(http, sim, "GET", f"/{media_id}")
    assert_error(status, body, 500, 1)
    status, body = await call(http, sim, "GET", f"/{media_id}")
    assert status == 200 and body["id"] == media_id


# -- read receipts --------------------------------------------------------------------------------


async def test_mark_as_read(sim: WhatsAppSimulator, http: aiohttp.ClientSession) -> None:
    inbound = await open_window(sim)
    path = f"/{sim.phone_number_id}/messages"
    request = {"messaging_product": "whatsapp", "status": "read", "message_id": inbound["id"]}
    status, body = await call(http, sim, "POST", path, json=request)
    assert (status, body) == (200, {"success": True})
    typing = {**request, "typing_indicator": {"type": "text"}}
    status, body = await call(http, sim, "POST", path, json=typing)
    assert status == 200
    receipts = sim.read_receipts
    assert [(r.message_id, r.typing) for r in receipts] == [
        (inbound["id"], False),
        (inbound["id"], True),
    ]
    status, body = await call(
        http, sim, "POST", path, json={**request, "message_id": "wamid.nope"}
    )
    assert_error(status, body, 400, 100)
    assert (await sim.wait_for_read_receipt(lambda r: r.typing)).body == typing
    assert sim.sent == []
