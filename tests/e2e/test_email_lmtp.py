"""Mail pushed over LMTP end to end through the real core: the raw mail is spooled in the
bridge's database before the ``250``, its large attachment reaches the room byte-identical
(read from the spool by its section), and the spool is empty once the mail is bridged."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import MAIL_PASSWORD, MAIL_USER, Stack, build_stack
from tests.e2e.helpers import join_invite_named
from tests.infra.lmtp_client import push_mail
from tests.infra.ports import free_port
from tests.infra.staff import StaffClient

PUSH_ADDRESS = "push@company.test"


@pytest.fixture
async def pushed(tmp_path: Path) -> AsyncIterator[tuple[Stack, int]]:
    port = free_port()
    options = {
        "push": {
            "type": "email", "staff": ["@staff:localhost"],
            "smtp": {"host": "127.0.0.1", "port": 1, "security": "none",
                     "user": MAIL_USER, "password": MAIL_PASSWORD},
            "from_address": PUSH_ADDRESS, "from_name": "ACME Push",
            "lmtp": {"host": "127.0.0.1", "port": port, "recipients": [PUSH_ADDRESS]},
        }
    }  # fmt: skip
    async with build_stack(tmp_path, channel_options=options) as stack:
        yield stack, port


def spooled(stack: Stack) -> int:
    with sqlite3.connect(stack.workdir / "bridge.db") as db:
        return int(db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])


async def test_a_pushed_attachment_is_bridged_from_the_spool(
    pushed: tuple[Stack, int],
) -> None:
    stack, port = pushed
    data = random.Random(3).randbytes(2 * 1024 * 1024 + 5)
    msg = EmailMessage()
    msg["From"] = "Lena <lena@customer.test>"
    msg["To"] = PUSH_ADDRESS
    msg["Subject"] = "Logs"
    msg["Message-ID"] = "<lmtp-e2e-1@customer.test>"
    msg.set_content("The logs are attached.")
    msg.add_attachment(data, maintype="application", subtype="octet-stream", filename="logs.bin")
    replies = await push_mail("127.0.0.1", port, bytes(msg), recipients=(PUSH_ADDRESS,))
    assert [code for code, _ in replies] == [250]
    staff = await StaffClient.login(stack.synapse.base_url, stack.staff_id, stack.staff_password)
    try:
        room_id = await join_invite_named(staff, "Lena")
        event = await staff.wait_for_event(
            lambda e: e.get("content", {}).get("body") == "logs.bin", room_id=room_id, timeout=90
        )
        server, media_id = event["content"]["url"][len("mxc://") :].split("/", 1)
        body = (await staff.nio.download(server_name=server, media_id=media_id)).body
        assert body == data
    finally:
        await staff.close()
    for _ in range(300):  # the queue item is deleted, with its spool entry, after the last part
        if spooled(stack) == 0:
            break
        await asyncio.sleep(0.1)
    assert spooled(stack) == 0
