"""End to end through a real Synapse: the webhook peer <-> the bridge <-> a staff client."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from contextlib import closing
from typing import Any
from urllib.parse import quote

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Stack
from tests.e2e.helpers import body_is, customer_msg, join_invite_named, open_portal
from tests.infra.staff import StaffClient


async def test_customer_message_creates_portal_and_staff_reply_goes_out(
    stack: Stack, staff: StaffClient
) -> None:
    room_id, event = await open_portal(stack, staff, "c-basic", "Hello, I need help")
    assert event["sender"].startswith("@bridge_hooks_")
    members = await staff.joined_members(room_id)
    assert event["sender"] in members and stack.bot_id in members
    state = {e["type"]: e for e in await staff.get_state(room_id)}
    assert "Webhook" in state["m.room.topic"]["content"]["topic"]
    assert state["m.room.name"]["content"]["name"] == "Customer c-basic"
    ghost_member = next(
        e for e in await staff.get_state(room_id)
        if e["type"] == "m.room.member" and e["state_key"] == event["sender"]
    )  # fmt: skip
    assert ghost_member["content"]["displayname"] == "Jane Customer (Webhook)"

    reply_id = await staff.send_text(room_id, "Sure, how can we help?")
    out = await stack.peer.wait_for(lambda p: p.get("id") == reply_id)
    assert out["type"] == "message"
    assert out["chat_id"] == "c-basic"
    assert out["text"] == "staff: Sure, how can we help?"
    assert out["sender"]["mxid"] == stack.staff_id


async def test_messages_keep_their_order(stack: Stack, staff: StaffClient) -> None:
    room_id, _ = await open_portal(stack, staff, "c-order", "start")
    for i in range(15):
        status, _ = await stack.peer.send(stack.account, customer_msg("c-order", f"n{i}", f"o{i}"))
        assert status == 200
    await staff.wait_for_event(body_is("n14"), room_id=room_id)
    bodies = [
        e["content"]["body"] for e in await staff.room_messages(room_id)
        if e["type"] == "m.room.message" and e["content"]["body"].startswith("n")
    ]  # fmt: skip
    assert bodies == [f"n{i}" for i in range(15)]

    sent = [await staff.send_text(room_id, f"s{i}") for i in range(10)]
    await stack.peer.wait_for(lambda p: p.get("id") == sent[-1])
    got = [p["id"] for p in stack.peer.received if p.get("chat_id") == "c-order"]
    assert got == sent


async def test_duplicate_remote_delivery_is_bridged_once(stack: Stack, staff: StaffClient) -> None:
    room_id, _ = await open_portal(stack, staff, "c-dup", "first")
    payload = customer_msg("c-dup", "only once", "dup-1")
    assert (await stack.peer.send(stack.account, payload))[1] == {"status": "accepted"}
    assert (await stack.peer.send(stack.account, payload))[1] == {"status": "duplicate"}
    await staff.send_text(room_id, "marker")  # everything before it has been handled
    await staff.wait_for_event(body_is("marker"), room_id=room_id)
    await staff.wait_for_event(body_is("only once"), room_id=room_id)
    await asyncio.sleep(1)
    events = [e for e in await staff.room_messages(room_id) if body_is("only once")(e)]
    assert len(events) == 1


async def test_wrong_signature_is_refused_and_nothing_bridged(
    stack: Stack, staff: StaffClient
) -> None:
    status, body = await stack.peer.send(
        stack.account, customer_msg("c-forged", "forged"), secret="not-the-secret-at-all"
    )
    assert status == 401
    status, _ = await stack.peer.send(stack.account, customer_msg("c-forged", "genuine"))
    assert status == 200
    await staff.wait_for_invite()
    assert not staff.find_events(body_is("forged"))


async def test_replies_edits_deletes_reactions_both_ways(stack: Stack, staff: StaffClient) -> None:
    room_id, first = await open_portal(stack, staff, "c-rel", "Question one")

    # Staff -> remote: reply, edit, reaction, reaction removal, redaction.
    reply_id = await staff.send_text(room_id, "Answer", reply_to=first["event_id"])
    out = await stack.peer.wait_for(lambda p: p.get("id") == reply_id)
    assert out["reply_to"] == "c-rel-first"
    edit_id = await staff.edit(room_id, reply_id, "Better answer")
    out = await stack.peer.wait_for(lambda p: p.get("id") == edit_id)
    assert out["type"] == "edit" and out["target"] == f"remote-{reply_id}"
    assert out["text"] == "staff: Better answer"
    react_id = await staff.react(room_id, first["event_id"], "👍")
    out = await stack.peer.wait_for(lambda p: p.get("id") == react_id)
    assert out["type"] == "reaction" and out["target"] == "c-rel-first" and out["emoji"] == "👍"
    unreact_id = await staff.redact(room_id, react_id)
    out = await stack.peer.wait_for(lambda p: p.get("id") == unreact_id)
    assert out["type"] == "reaction_remove" and out["emoji"] == "👍"
    redact_id = await staff.redact(room_id, reply_id)
    out = await stack.peer.wait_for(lambda p: p.get("id") == redact_id)
    assert out["type"] == "delete" and out["target"] == f"remote-{reply_id}"

    # Remote -> Matrix: reply to the staff message, edit, reaction, delete.
    staff_msg = await staff.send_text(room_id, "Anything else?")
    await stack.peer.wait_for(lambda p: p.get("id") == staff_msg)
    send = stack.peer.send
    assert (await send(stack.account, customer_msg(
        "c-rel", "Yes, one more", "c-rel-2", reply_to=f"remote-{staff_msg}"
    )))[0] == 200  # fmt: skip
    reply = await staff.wait_for_event(body_is("Yes, one more"), room_id=room_id)
    assert reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == staff_msg
    assert (
        await send(
            stack.account, {**customer_msg("c-rel", "Yes, two more", "c-rel-2"), "type": "edit"}
        )
    )[0] == 200
    edit = await staff.wait_for_event(
        lambda e: (
            e.get("content", {}).get("m.relates_to", {}).get("rel_type") == "m.replace"
            and e["sender"] == reply["sender"]
        ),
        room_id=room_id,
    )
    assert edit["content"]["m.relates_to"]["event_id"] == reply["event_id"]
    assert edit["content"]["m.new_content"]["body"] == "Yes, two more"
    assert (
        await send(
            stack.account,
            {**customer_msg("c-rel", "", "c-rel-2"), "type": "reaction", "emoji": "❤️"},
        )
    )[0] == 200
    reaction = await staff.wait_for_event(
        lambda e: e.get("type") == "m.reaction" and e["sender"] == reply["sender"], room_id=room_id
    )
    assert reaction["content"]["m.relates_to"] == {
        "rel_type": "m.annotation", "event_id": reply["event_id"], "key": "❤️"
    }  # fmt: skip
    assert (await send(stack.account, {**customer_msg("c-rel", "", "c-rel-2"), "type": "delete"}))[
        0
    ] == 200
    redaction = await staff.wait_for_event(
        lambda e: e.get("type") == "m.room.redaction" and e["sender"] == reply["sender"],
        room_id=room_id,
    )
    assert reply["event_id"] in (redaction.get("redacts"), redaction["content"].get("redacts"))


async def test_attachments_both_ways(stack: Stack, staff: StaffClient) -> None:
    room_id, _ = await open_portal(stack, staff, "c-files", "I'll send a picture")
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    stack.peer.files["dot.png"] = (png, "image/png")
    payload = customer_msg("c-files", "", "c-files-2")
    payload["attachments"] = [{"url": stack.peer.file_url("dot.png"), "filename": "dot.png"}]
    assert (await stack.peer.send(stack.account, payload))[0] == 200
    image = await staff.wait_for_event(
        lambda e: e.get("content", {}).get("msgtype") == "m.image", room_id=room_id
    )
    assert image["content"]["body"] == "dot.png"
    assert image["content"]["info"]["mimetype"] == "image/png"
    mxc = image["content"]["url"]
    server, media_id = mxc[len("mxc://") :].split("/", 1)
    resp = await staff.nio.download(server_name=server, media_id=media_id)
    assert resp.body == png

    # A missing file is reported in the room, not silently dropped.
    gone = customer_msg("c-files", "", "c-files-3")
    gone["attachments"] = [{"url": stack.peer.file_url("missing.pdf"), "filename": "missing.pdf"}]
    assert (await stack.peer.send(stack.account, gone))[0] == 200
    notice = await staff.wait_for_event(
        lambda e: (
            "missing.pdf" in e.get("content", {}).get("body", "")
            and e["content"].get("msgtype") == "m.notice"
        ),
        room_id=room_id,
    )
    assert "not bridged" in notice["content"]["body"]

    # Staff -> remote: a file uploaded to Matrix arrives as base64 with its name and type.
    upload, _ = await staff.nio.upload(lambda *_: b"%PDF-1.4 test", content_type="application/pdf",
                                       filename="offer.pdf", filesize=13)  # fmt: skip
    file_id = await staff.send_event(room_id, "m.room.message", {
        "msgtype": "m.file", "body": "offer.pdf", "url": upload.content_uri,
        "info": {"mimetype": "application/pdf", "size": 13},
    })  # fmt: skip
    out = await stack.peer.wait_for(lambda p: p.get("id") == file_id)
    assert out["attachment"]["filename"] == "offer.pdf"
    assert base64.b64decode(out["attachment"]["data_base64"]) == b"%PDF-1.4 test"


async def test_ghost_takes_the_remote_avatar(stack: Stack, staff: StaffClient) -> None:
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    stack.peer.files["face.png"] = (png, "image/png")
    payload = customer_msg("c-avatar", "hi with a face", "c-avatar-1")
    payload["sender"] = {
        "id": "face-1",
        "name": "Faced",
        "avatar_url": stack.peer.file_url("face.png"),
    }
    assert (await stack.peer.send(stack.account, payload))[0] == 200
    room_id = await join_invite_named(staff, "Customer c-avatar")
    event = await staff.wait_for_event(body_is("hi with a face"), room_id=room_id)
    profile = await staff.api("GET", f"/_matrix/client/v3/profile/{event['sender']}")
    assert profile["displayname"] == "Faced (Webhook)"
    assert profile["avatar_url"].startswith("mxc://")


async def _scrape(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{stack.metrics_url}/metrics") as r:
            assert r.status == 200
            text = await r.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _messages(scrape: dict[Any, float], direction: str) -> float:
    key = ("bridge_messages_total", (("account", "hooks"), ("direction", direction)))
    return scrape.get(key, 0.0)


async def test_metrics_move_with_a_message_each_way_and_status_shows_the_connectors(
    stack: Stack, staff: StaffClient
) -> None:
    before = await _scrape(stack)
    room_id, _ = await open_portal(stack, staff, "c-metrics", "How much is it?")
    reply_id = await staff.send_text(room_id, "Ten euros.")
    await stack.peer.wait_for(lambda p: p.get("id") == reply_id)
    after = before
    for _ in range(200):  # counted right after the event reached Matrix or the peer
        after = await _scrape(stack)
        if all(_messages(after, d) > _messages(before, d) for d in ("in", "out")):
            break
        await asyncio.sleep(0.05)
    for direction in ("in", "out"):
        assert _messages(after, direction) > _messages(before, direction), direction
    latency = (
        "bridge_delivery_latency_seconds_count",
        (("account", "hooks"), ("direction", "in")),
    )
    assert after[latency] > before.get(latency, 0.0)
    assert after[("bridge_homeserver_reachable", ())] == 1
    hooks_connected = (("account", "hooks"), ("state", "connected"))
    assert after[("bridge_connector_state", hooks_connected)] == 1
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{stack.metrics_url}/status") as r:
            status = await r.json()
    assert status["homeserver"]["reachable"] is True
    assert set(status["channels"]) == {"hooks", "dead-end", "tg", "tg-hook", "wa", "mail"}
    assert status["channels"]["hooks"]["title"] == "Webhook"
    assert status["channels"]["hooks"]["state"] == "connected"
    states = {"starting", "connected", "degraded", "disconnected", "stopped"}
    assert {channel["state"] for channel in status["channels"].values()} <= states


async def test_portal_rooms_carry_the_bridge_info(stack: Stack, staff: StaffClient) -> None:
    """A new portal room has ``m.bridge`` (MSC2346) in its initial state; a room from before the
    bridge sent it gets it at the next start."""
    room_id, _ = await open_portal(stack, staff, "c-info", "which bridge is this")
    info = await _bridge_info(staff, room_id)
    assert set(info) == {"m.bridge", "uk.half-shot.bridge"}
    key, content = info["m.bridge"]
    assert info["uk.half-shot.bridge"] == (key, content)
    assert content["bridgebot"] == stack.bot_id
    assert content["protocol"] == {"id": "webhook", "displayname": "Webhook"}
    assert content["network"]["id"] == stack.account
    assert content["channel"] == {"id": "c-info", "displayname": "Customer c-info"}

    # As before the upgrade: the room without the event, the portal without its marker.
    for event_type in info:
        path = (
            f"/_matrix/client/v3/rooms/{quote(room_id)}/state/{event_type}/{quote(key, safe='')}"
        )
        await staff.api("PUT", path, {})
    stack.bridge.stop()
    with closing(sqlite3.connect(stack.workdir / "bridge.db")) as db, db:
        db.execute(
            "UPDATE portal SET metadata=json_remove(metadata, '$.bridge_info') WHERE chat=?",
            ("c-info",),
        )
    await stack.bridge.astart()
    for _ in range(150):  # both events: the bridge sends them one after the other
        if await _bridge_info(staff, room_id) == info:
            break
        await asyncio.sleep(0.2)
    assert await _bridge_info(staff, room_id) == info


async def _bridge_info(staff: StaffClient, room_id: str) -> dict[str, tuple[str, Any]]:
    return {
        e["type"]: (e["state_key"], e["content"])
        for e in await staff.get_state(room_id)
        if e["type"] in ("m.bridge", "uk.half-shot.bridge") and e["content"]
    }
