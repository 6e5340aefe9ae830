"""The WhatsApp simulator's media: upload, the media node, the short-lived download URL, limits,
and a customer's media served to the bridge."""

from __future__ import annotations

import hashlib

import aiohttp

from . import payloads as wa
from . import sim_support
from .sim_support import ALICE, PNG, Receiver, assert_error, call, open_window, send, upload, webp
from .simulator import KiB, Limits, MiB, WhatsAppSimulator

# The fixtures shared by these tests (see sim_support).
receiver = sim_support.receiver
sim = sim_support.sim
http = sim_support.http


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
