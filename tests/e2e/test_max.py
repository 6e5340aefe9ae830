"""MAX end to end: the Bot API simulator <-> the bridge (the MAX connector by webhook) <-> a
staff client on Synapse. A customer's text opens a portal room; the staff's answer reaches
MAX with the sender's name, then is edited and deleted there; a file goes each way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Stack, build_stack
from tests.connectors.max.simulator import MaxSimulator
from tests.e2e.helpers import body_is, join_invite_named
from tests.infra.ports import free_port
from tests.infra.staff import StaffClient

SECRET = "e2e-max-webhook-secret-0123456789abcdef"
CUSTOMER = 51_000_001
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2


@pytest.fixture
async def max_stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, MaxSimulator]]:
    sim = MaxSimulator()
    await sim.start()
    port = free_port()
    options = {
        "max": {
            "type": "max", "staff": ["@staff:localhost"], "token": sim.token, "mode": "webhook",
            "api_url": sim.base_url, "webhook_url": f"http://127.0.0.1:{port}",
            "webhook_secret": SECRET, "delivery_deadline": 60,
        }
    }  # fmt: skip
    try:
        async with build_stack(tmp_path, channel_options=options, bridge_port=port) as stack:
            yield stack, sim
    finally:
        await sim.stop()


def _msgtype(kind: str) -> Any:
    return lambda e: e.get("type") == "m.room.message" and e["content"].get("msgtype") == kind


async def test_round_trip(max_stack: tuple[Stack, MaxSimulator]) -> None:
    stack, sim = max_stack
    await sim.wait_for(lambda: sim.subscription is not None, timeout=30)
    staff = await StaffClient.login(stack.synapse.base_url, stack.staff_id, stack.staff_password)
    try:
        update = sim.customer_message(CUSTOMER, "Olga Smirnova", "Здравствуйте, где заказ?")
        delivery = await sim.deliver(update)
        assert delivery is not None and delivery.status == 200, delivery
        room_id = await join_invite_named(staff, "Olga Smirnova")
        first = await staff.wait_for_event(body_is("Здравствуйте, где заказ?"), room_id=room_id)

        # Staff answer as a reply, with formatting: MAX gets HTML with the sender's name.
        answer = await staff.send_text(
            room_id, "Он в пути", html="Он <b>в пути</b>", reply_to=first["event_id"]
        )
        sent = await sim.wait_for_sent(timeout=30)
        assert sent.chat_id == sim.dialog_of(CUSTOMER)
        assert sent.format == "html" and sent.plain == "staff: Он в пути"
        assert "<b>в пути</b>" in (sent.text or "")
        assert sent.reply_to == update["message"]["body"]["mid"]

        await staff.edit(room_id, answer, "Он уже у вас")
        edit = await sim.wait_for(lambda: sim.edits and sim.edits[-1], timeout=30)
        assert edit.mid == sent.mid and "Он уже у вас" in (edit.plain or "")

        await staff.redact(room_id, answer)
        deletion = await sim.wait_for(lambda: sim.deletions and sim.deletions[-1], timeout=30)
        assert deletion.mid == sent.mid

        # A file each way.
        url = sim.host_file(PNG, "image/png")
        attachment = {"type": "image", "payload": {"url": url, "token": "img-token"}}
        update = sim.customer_message(CUSTOMER, "Olga Smirnova", None, attachments=[attachment])
        assert (await sim.deliver(update)).status == 200  # type: ignore[union-attr]
        image = await staff.wait_for_event(_msgtype("m.image"), room_id=room_id, timeout=30)
        server, media_id = image["content"]["url"][len("mxc://") :].split("/", 1)
        assert (await staff.nio.download(server_name=server, media_id=media_id)).body == PNG

        pdf = b"%PDF-1.4\n" + bytes(2048)
        await staff.send_file(room_id, pdf, "invoice.pdf", "application/pdf")
        filed = await sim.wait_for_sent(lambda s: bool(s.uploads), timeout=30)
        assert filed.uploads[0].data == pdf and filed.uploads[0].filename == "invoice.pdf"
        assert filed.attachments[0]["type"] == "file"
    finally:
        await staff.close()
