"""VK end to end: the VK API simulator (Callback API) <-> the bridge <-> a staff client on
Synapse. One stack for the module's round trip: a customer's text opens a portal room, staff
answer (with the sender prefix, as a reply), edit and delete; a file goes each way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import Stack, build_stack
from tests.connectors.vk.simulator import VKSimulator
from tests.e2e.helpers import body_is, join_invite_named
from tests.infra.ports import free_port
from tests.infra.staff import StaffClient

TOKEN = "vk1.a.e2e-community-token"
GROUP = 219_000_001
SECRET = "e2esecret77"
CUSTOMER = 700_100_001


@pytest.fixture
async def vk(tmp_path: Path) -> AsyncIterator[tuple[Stack, VKSimulator, StaffClient]]:
    sim = VKSimulator(TOKEN, GROUP, secret=SECRET, confirmation_code="e2e0c0de")
    await sim.start()
    port = free_port()
    sim.callback_url = f"http://127.0.0.1:{port}/connectors/vk/callback"
    options = {
        "vk": {
            "type": "vk", "staff": ["@staff:localhost"], "group_id": GROUP,
            "access_token": TOKEN, "confirmation_code": "e2e0c0de", "secret": SECRET,
            "base_url": sim.base_url, "delivery_deadline": 60,
        }
    }  # fmt: skip
    try:
        async with build_stack(tmp_path, channel_options=options, bridge_port=port) as stack:
            staff = await StaffClient.login(
                stack.synapse.base_url, stack.staff_id, stack.staff_password
            )
            try:
                yield stack, sim, staff
            finally:
                await staff.close()
    finally:
        await sim.stop()


async def test_round_trip(vk: tuple[Stack, VKSimulator, StaffClient]) -> None:
    _, sim, staff = vk
    assert await sim.confirm() == "e2e0c0de"
    sim.name(CUSTOMER, "Olga", "Ivanova")
    delivery = await sim.deliver(sim.message(CUSTOMER, "Здравствуйте! Where is my order?"))
    assert delivery is not None and delivery.ok
    room_id = await join_invite_named(staff, "Olga Ivanova")
    first = await staff.wait_for_event(
        body_is("Здравствуйте! Where is my order?"), room_id=room_id
    )

    await staff.send_text(room_id, "It ships today", reply_to=first["event_id"])
    sent = await sim.wait_for_sent(lambda m: m.peer_id == CUSTOMER, timeout=30)
    assert sent.text.endswith("It ships today") and sent.text != "It ships today"
    assert sent.reply_to == 1
    reply_id = (await staff.wait_for_event(body_is("It ships today"), room_id=room_id))["event_id"]
    await staff.edit(room_id, reply_id, "It ships tomorrow")
    await sim.wait_for(lambda: sent.edits and sent.edits[-1].endswith("It ships tomorrow"), 30)
    await staff.redact(room_id, reply_id)
    await sim.wait_for(lambda: sent.deleted, 30)

    await sim.deliver(
        sim.message(CUSTOMER, "", attachments=[sim.photo(b"\xff\xd8\xff" + bytes(99))])
    )
    image = await staff.wait_for_event(
        lambda e: e.get("content", {}).get("msgtype") == "m.image", room_id=room_id
    )
    server, media_id = image["content"]["url"][len("mxc://") :].split("/", 1)
    assert (await staff.nio.download(server_name=server, media_id=media_id)).body[
        :3
    ] == b"\xff\xd8\xff"

    await staff.send_file(room_id, b"%PDF-1.4 invoice", "invoice.pdf", "application/pdf")
    doc = await sim.wait_for_sent(lambda m: bool(m.files), timeout=30)
    assert doc.files[0].data == b"%PDF-1.4 invoice" and doc.files[0].filename == "invoice.pdf"
    assert len([m for m in sim.sent if m.peer_id == CUSTOMER]) == 2, "nothing sent twice"
