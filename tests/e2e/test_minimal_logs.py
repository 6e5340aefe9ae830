"""Minimal logs end to end: a customer writes through the webhook (a phone number as chat and
user id, avatars the bridge cannot fetch) and by mail; staff answer both. No INFO, WARNING or
ERROR line the bridge process writes names the customer, their phone number, address or mail
domain; with ``log_personal_data: true`` the same flow shows them (so the check can fail)."""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

from ruamel.yaml import YAML

from tests.conftest import MAIL_USER, Stack
from tests.e2e.helpers import body_is, join_invite_named
from tests.infra.staff import StaffClient

RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ([A-Z]+) ", re.MULTILINE)
MARK = "~[0-9a-f]{8}"


@dataclass(frozen=True)
class Person:
    name: str
    phone: str
    address: str

    @property
    def domain(self) -> str:
        return self.address.split("@")[1]

    @property
    def slug(self) -> str:
        return self.name.replace(" ", "-")

    @property
    def identifiers(self) -> list[str]:
        return [self.name, self.slug, self.phone, self.phone[1:], self.address, self.domain]

    @staticmethod
    def new() -> Person:
        tag = secrets.token_hex(3)
        digits = "".join(str(int(c, 16) % 10) for c in secrets.token_hex(4))
        return Person(
            f"Zebulon Quixote{tag}", f"+4915{digits}", f"zebulon.{tag}@quixote-{tag}.test"
        )


def _at_or_above_info(text: str) -> str:
    """A log without its DEBUG records; the others keep their traceback lines, and output in
    no record's format (the process's own stderr) is kept too."""
    starts = [m.start() for m in RECORD.finditer(text)]
    chunks = [text[a:b] for a, b in zip([0, *starts], [*starts, len(text)], strict=True)]
    levels = [m.group(1) if (m := RECORD.match(c)) else None for c in chunks]
    return "".join(c for c, level in zip(chunks, levels, strict=True) if level != "DEBUG")


async def _logged(stack: Stack, start: int, *needles: str) -> str:
    """The log written since ``start``, once every needle is in it."""
    for _ in range(300):
        text = stack.bridge.log_text()[start:]
        if all(n in text for n in needles):
            return _at_or_above_info(text)
        await asyncio.sleep(0.1)
    raise AssertionError(f"never logged {needles}:\n{stack.bridge.log_tail()}")


async def _customer_flow(stack: Stack, staff: StaffClient, who: Person) -> str:
    """The customer writes through the webhook and by mail, staff answer both; returns the
    bridge's INFO and higher log lines of that time."""
    start = len(stack.bridge.log_text())
    payload = {
        "id": make_msgid(domain=who.domain),
        "chat": {"id": who.phone, "name": who.name,
                 "avatar_url": stack.peer.file_url(f"{who.slug}.png")},
        "sender": {"id": who.phone, "name": who.name,
                   "avatar_url": stack.peer.file_url(f"{who.slug}-face.png")},
        "text": f"This is {who.name}: call {who.phone} or write to {who.address}",
    }  # fmt: skip
    assert (await stack.peer.send(stack.account, payload))[0] == 200
    hook_room = await join_invite_named(staff, who.name)
    await staff.wait_for_event(body_is(str(payload["text"])), room_id=hook_room)
    hook_reply = await staff.send_text(hook_room, "We will call you back")
    await stack.peer.wait_for(lambda p: p.get("id") == hook_reply)

    msg = EmailMessage()
    msg["From"] = f"{who.name} <{who.address}>"
    msg["To"] = "ACME Support <support@company.test>"
    msg["Subject"] = f"Order of {who.name}"
    msg["Message-ID"] = make_msgid(domain=who.domain)
    msg.set_content(f"Please call {who.phone}.")
    await stack.dovecot.adeliver(MAIL_USER, bytes(msg))
    mail_room = await join_invite_named(staff, who.name)
    await staff.wait_for_event(body_is(f"Please call {who.phone}."), room_id=mail_room)
    mail_reply = await staff.send_text(mail_room, "We will call you back")
    await stack.smtp.wait_for(lambda m: m.rcpt_tos == [who.address], timeout=30)
    return await _logged(stack, start, f"Delivered {hook_reply}", f"Delivered {mail_reply}")


async def _restart(stack: Stack, log_personal_data: bool) -> None:
    yaml = YAML()
    data = yaml.load(stack.config_path.read_text())
    data["log_personal_data"] = log_personal_data
    with stack.config_path.open("w") as f:
        yaml.dump(data, f)
    stack.bridge.stop()
    await stack.bridge.astart()


async def test_logs_hold_no_personal_data_unless_configured(
    stack: Stack, staff: StaffClient
) -> None:
    who = Person.new()
    log = await _customer_flow(stack, staff, who)
    assert re.search(f"Created portal {stack.account}/{MARK} in !", log)
    assert re.search(f"Created portal mail/{MARK} in !", log)
    assert re.search(f"Could not set the avatar of {MARK} from {MARK}", log)  # ghost
    for identifier in who.identifiers:
        assert identifier not in log, identifier

    who = Person.new()
    await _restart(stack, log_personal_data=True)
    try:
        log = await _customer_flow(stack, staff, who)
    finally:
        await _restart(stack, log_personal_data=False)
    assert "log_personal_data is on" in stack.bridge.log_text()
    assert f"Created portal {stack.account}/{who.phone} in !" in log
    assert f"Created portal mail/{who.address}/" in log
    assert f"{who.slug}-face.png" in log and who.domain in log
