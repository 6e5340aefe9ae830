"""The WhatsApp Cloud API simulator, driven with plain aiohttp clients, and the webhook payload
builders. A small webhook receiver checks Meta's signatures independently of the simulator."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import random
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from . import payloads as wa
from .simulator import KiB, Limits, MiB, RateLimits, WhatsAppSimulator

TOKEN = "EAAG-test-access-token"
SECRET = "app-secret-for-tests"
VERIFY = "verify-me-please"
V = "v21.0"
ALICE = "491701234567"
BOB = "491709876543"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
Json = dict[str, Any]


class Receiver:
    """The bridge's side of the webhook, as small as possible: answers the verification GET
    and accepts a POST only when ``X-Hub-Signature-256`` is the HMAC of the raw body."""

    def __init__(self) -> None:
        self.events: list[Json] = []
        self.raw: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.refused: list[bytes] = []
        self.answers: list[int] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/webhook", self._verify)
        app.router.add_post("/webhook", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/webhook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _verify(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("hub.mode") == "subscribe" and query.get("hub.verify_token") == VERIFY:
            return web.Response(text=query.get("hub.challenge", ""))
        return web.Response(status=403, text="Forbidden")

    async def _post(self, request: web.Request) -> web.Response:
        raw = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        given_sig = request.headers.get("X-Hub-Signature-256", "")
        if not hmac.compare_digest(given_sig, expected):
            self.refused.append(raw)
            return web.Response(status=401)
        self.raw.append(raw)
        self.headers.append(dict(request.headers))
        self.events.append(json.loads(raw))
        return web.Response(status=self.answers.pop(0) if self.answers else 200)

    def statuses(self) -> list[Json]:
        return [s for event in self.events for s in wa.iter_statuses(event)]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    await rec.start()
    yield rec
    await rec.stop()


@pytest.fixture
async def sim(receiver: Receiver) -> AsyncIterator[WhatsAppSimulator]:
    async with WhatsAppSimulator(
        TOKEN,
        app_secret=SECRET,
        verify_token=VERIFY,
        webhook_url=receiver.url,
        webhook_retry_delay=0.01,
    ) as simulator:
        simulator.clock.freeze()
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    sim: WhatsAppSimulator,
    method: str,
    path: str,
    *,
    token: str | None = TOKEN,
    **kw: Any,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    url = path if path.startswith("http") else f"{sim.base_url}/{V}{path}"
    async with http.request(method, url, headers=headers, **kw) as resp:
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.read()


async def send(
    http: aiohttp.ClientSession,
    sim: WhatsAppSimulator,
    to: str,
    type_: str,
    content: Any,
    **extra: Any,
) -> tuple[int, Json]:
    body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
    body |= {"type": type_, type_: content, **extra}
    return await call(http, sim, "POST", f"/{sim.phone_number_id}/messages", json=body)


async def upload(
    http: aiohttp.ClientSession,
    sim: WhatsAppSimulator,
    data: bytes,
    mime: str,
    *,
    product: str | None = "whatsapp",
) -> tuple[int, Json]:
    form = aiohttp.FormData()
    if product is not None:
        form.add_field("messaging_product", product)
    form.add_field("type", mime)
    form.add_field("file", io.BytesIO(data), filename="upload.bin", content_type=mime)
    return await call(http, sim, "POST", f"/{sim.phone_number_id}/media", data=form)


def assert_error(status: int, body: Json, http_status: int, code: int) -> Json:
    assert status == http_status, body
    error = body["error"]
    assert error["code"] == code
    assert error["type"] in ("OAuthException", "GraphMethodException")
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fbtrace_id"], str) and error["fbtrace_id"]
    return error


def webp(size: int, *, animated: bool) -> bytes:
    flags = 0x02 if animated else 0x00
    head = b"RIFF" + (size - 8).to_bytes(4, "little") + b"WEBPVP8X" + b"\x0a\x00\x00\x00"
    return (head + bytes([flags]) + b"\x00" * size)[:size]


async def open_window(sim: WhatsAppSimulator, wa_id: str = ALICE) -> Json:
    msg = wa.text_message(wa_id, "hello")
    delivery = await sim.receive(msg, names={wa_id: "Alice"})
    assert delivery.ok
    return msg


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


# -- media ----------------------------------------------------------------------------------------


async def test_media_upload_get_download_delete(
    sim: WhatsAppSimulator, http: aiohttp.ClientSession
) -> None:
    await open_window(sim)
    status, body = await upload(http, sim, PNG, "image/png")
    assert status == 200 and set(body) == {"id"} and body["id"].isdigit()
    media_id = body["id"]
    stored = await sim.wait_for_upload()
    assert (stored.id, stored.data, stored.kind, stored.origin) == (
        media_id,
        PNG,
        "image",
        "upload",
    )

    status, info = await call(http, sim, "GET", f"/{media_id}")
    assert status == 200
    assert set(info) == {"messaging_product", "url", "mime_type", "sha256", "file_size", "id"}
    assert info["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert (info["mime_type"], info["file_size"], info["id"]) == ("image/png", len(PNG), media_id)
    assert info["url"].startswith(sim.base_url)

    status, data = await call(http, sim, "GET", info["url"])
    assert (status, data) == (200, PNG)
    status, body = await call(http, sim, "GET", info["url"], token=None)
    assert_error(status, body, 401, 190)
    status, body = await call(http, sim, "GET", info["url"], token="nope")
    assert status == 401
    status, _ = await call(http, sim, "GET", info["url"].replace("hash=", "hash=x"))
    assert status == 404
    sim.clock.advance(301)
    status, _ = await call(http, sim, "GET", info["url"])
    assert status == 404
    status, fresh = await call(
        http, sim, "GET", f"/{media_id}", params={"phone_number_id": sim.phone_number_id}
    )
    assert fresh["url"] != info["url"]
    status, data = await call(http, sim, "GET", fresh["url"])
    assert (status, data) == (200, PNG)
    assert [s for _, s in sim.downloads] == [200, 401, 401, 404, 404, 200]

    status, _ = await send(http, sim, ALICE, "image", {"id": media_id, "caption": "look"})
    assert status == 200
    assert sim.sent[-1].media_bytes == PNG and sim.sent[-1].text == "look"

    status, body = await call(http, sim, "DELETE", f"/{media_id}")
    assert (status, body) == (200, {"success": True})
    status, body = await call(http, sim, "GET", f"/{media_id}")
    assert assert_error(status, body, 400, 100)["error_subcode"] == 33
    status, _ = await call(http, sim, "GET", fresh["url"])
    assert status == 404
    status, body = await send(http, sim, ALICE, "image", {"id": media_id})
    assert_error(status, body, 400, 131009)


async def test_media_upload_limits(sim: WhatsAppSimulator, http: aiohttp.ClientSession) -> None:
    status, _ = await upload(http, sim, b"\xff" * (5 * MiB), "image/jpeg")
    assert status == 200
    status, body = await upload(http, sim, b"\xff" * (5 * MiB + 1), "image/jpeg")
    error = assert_error(status, body, 400, 131053)
    assert error["message"] == "(#131053) Media upload error"
    status, body = await upload(http, sim, b"GIF89a", "image/gif")
    assert "image/gif" in assert_error(status, body, 400, 131053)["error_data"]["details"]
    status, _ = await upload(http, sim, webp(100 * KiB, animated=False), "image/webp")
    assert status == 200
    status, body = await upload(http, sim, webp(100 * KiB + 1, animated=False), "image/webp")
    assert_error(status, body, 400, 131053)
    status, _ = await upload(http, sim, webp(500 * KiB, animated=True), "image/webp")
    assert status == 200
    status, body = await upload(http, sim, webp(500 * KiB + 1, animated=True), "image/webp")
    assert_error(status, body, 400, 131053)
    status, _ = await upload(http, sim, b"OggS" * 10, "audio/ogg; codecs=opus")
    assert status == 200
    status, body = await upload(http, sim, b"", "application/pdf")
    assert_error(status, body, 400, 131053)
    status, body = await upload(http, sim, PNG, "image/png", product=None)
    assert_error(status, body, 400, 100)
    status, body = await call(http, sim, "POST", f"/{sim.phone_number_id}/media", json={})
    assert_error(status, body, 400, 100)

    sim.limits = Limits(audio_bytes=10, video_bytes=10, document_bytes=10)
    for mime in ("audio/mpeg", "video/mp4", "application/pdf"):
        status, body = await upload(http, sim, b"x" * 11, mime)
        assert_error(status, body, 400, 131053)
        status, _ = await upload(http, sim, b"x" * 10, mime)
        assert status == 200
    assert [m.kind for m in sim.uploads] == [
        "image", "sticker", "sticker", "audio", "audio", "video", "document",
    ]  # fmt: skip


async def test_inbound_media_is_served(
    sim: WhatsAppSimulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    voice = b"OggS-voice-note"
    msg = sim.media_message("audio", ALICE, voice, "audio/ogg; codecs=opus", voice=True)
    doc = sim.media_message(
        "document", ALICE, b"%PDF-1.4", "application/pdf", filename="a.pdf", caption="invoice"
    )
    delivery = await sim.receive(msg, doc)
    assert delivery.ok and len(receiver.events) == 1
    got = list(wa.iter_messages(receiver.events[0]))
    assert got[0]["audio"]["voice"] is True and got[1]["document"]["filename"] == "a.pdf"
    assert got[0]["audio"]["sha256"] == wa.sha256_b64(voice)
    status, info = await call(http, sim, "GET", f"/{msg['audio']['id']}")
    assert status == 200 and info["mime_type"] == "audio/ogg; codecs=opus"
    status, data = await call(http, sim, "GET", info["url"])
    assert (status, data) == (200, voice)
    assert sim.media(doc["document"]["id"]).origin == "inbound"


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
