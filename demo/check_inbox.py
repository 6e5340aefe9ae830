"""The team inbox in ``scripts/demo.sh --check``, as the demo configures it (``demo/configs.py``:
teams ``support`` and ``sales``, sales never open):

1. a webhook customer asks for a price: the keyword routes the new conversation to team sales,
   whose member (the staff user) is invited, and the room says "📥 New conversation for team
   sales";
2. the customer gets the welcome and, sales being closed, the away reply;
3. the staff user writes an internal note (``// ...``) and then ``!thanks``: the customer gets
   the canned reply expanded, the room shows "↪️ Sent as: ..." with the same text, and the note
   never reached the customer;
4. ``!bridge resolve`` resolves the conversation;
5. with email: a mail to ``sales@demo.test`` (without a keyword) goes to team sales too, and
   its sender gets the away reply by mail.
"""

from __future__ import annotations

import asyncio
import secrets
import urllib.parse
from typing import Any

from checking import CheckFailed, Staff, Steps, body_of, get_json, run_cli, wait
from common import DATA, customer_url
from configs import SALES_AWAY, WELCOME
from email_customer import SALES_ADDRESS, mail_url
from ruamel.yaml import YAML

NEW_IN_SALES = "📥 New conversation for team sales"
THANKS_PART = "of team sales is glad to help"
"""A part of the sales team's ``!thanks`` as expanded (configs.CANNED_THANKS)."""


def _customer_got(state: dict[str, Any], chat: str, part: str) -> Any:
    """A probe for ``wait``: the text of the first staff message in ``chat`` at the customer
    app that contains ``part``, else None."""
    url = f"{customer_url(state)}/api/messages?chat={urllib.parse.quote(chat)}"

    async def probe() -> str | None:
        for msg in await asyncio.to_thread(get_json, url):
            text = str(msg.get("text"))
            if msg.get("direction") == "staff" and part in text:
                return text
        return None

    return probe


async def check_inbox(state: dict[str, Any], staff: Staff, steps: Steps, nonce: str) -> None:
    chat = f"check-sales-{nonce}"
    customer_text = f"What is the price of the large plan? ({nonce})"
    note = f"// internal: a good lead, offer the yearly plan ({nonce})"

    steps.begin(f"inbox: webhook customer asks {customer_text!r} in chat {chat!r}")
    out = await run_cli(
        "customer.py", "send", customer_text, "--chat", chat, "--name", "Check Buyer"
    )
    steps.ok(out)

    steps.begin("inbox: the keyword 'price' routes it to team sales, whose member is invited")
    room_id = await staff.wait_for_invite(chat)
    await staff.join(room_id)
    steps.ok(room_id)

    steps.begin(f"inbox: the room says {NEW_IN_SALES!r}")
    steps.ok(body_of(await staff.wait_for_message(room_id, NEW_IN_SALES, contains=True)))

    steps.begin("inbox: the customer gets the welcome and (sales is closed) the away reply")
    await wait("the welcome at the customer app", _customer_got(state, chat, WELCOME))
    await wait("the away reply at the customer app", _customer_got(state, chat, SALES_AWAY))
    steps.ok()

    steps.begin(f"inbox: staff writes the note {note!r}, then the canned reply '!thanks'")
    await staff.answer(room_id, note)
    steps.ok(await staff.answer(room_id, "!thanks"))

    steps.begin("inbox: the customer gets '!thanks' expanded; the room shows what was sent")
    thanks = await wait("the canned reply at the customer app",
                        _customer_got(state, chat, THANKS_PART))  # fmt: skip
    shown = body_of(await staff.wait_for_message(room_id, "↪️ Sent as:", contains=True))
    if thanks not in shown:
        raise CheckFailed(f"the room shows {shown!r}, the customer got {thanks!r}")
    steps.ok(repr(thanks))

    # Staff messages of a conversation go out in order: the note would be there by now.
    steps.begin("inbox: the note never reached the customer")
    if await _customer_got(state, chat, "a good lead")():
        raise CheckFailed(f"the internal note reached the customer: {note!r}")
    steps.ok()

    prefix = YAML().load((DATA / "config.yaml").read_text())["bot"]["command_prefix"]
    steps.begin(f"inbox: '{prefix} resolve' resolves the conversation")
    await staff.answer(room_id, f"{prefix} resolve")
    answer = await staff.wait_for_message(room_id, "resolved this conversation", contains=True)
    steps.ok(body_of(answer))


async def check_inbox_email(state: dict[str, Any], staff: Staff, steps: Steps, nonce: str) -> None:
    name = f"Check Sales Mail {nonce}"
    address = f"buyer-{nonce}-{secrets.token_hex(2)}@customer.test"
    customer_text = f"Could you call me back tomorrow? ({nonce})"

    steps.begin(f"inbox: email customer {address} mails {SALES_ADDRESS}")
    out = await run_cli(
        "email_customer.py", "send", customer_text, "--subject", "Callback",
        "--name", name, "--address", address, "--to", SALES_ADDRESS,
    )  # fmt: skip
    steps.ok(out)

    steps.begin("inbox: the address routes it to team sales, whose member is invited")
    room_id = await staff.wait_for_invite(name)
    await staff.join(room_id)
    steps.ok(body_of(await staff.wait_for_message(room_id, NEW_IN_SALES, contains=True)))

    steps.begin(f"inbox: the SMTP server gets the away reply to {address}")
    url = f"{mail_url(state)}/api/messages?address={urllib.parse.quote(address)}"

    async def away_mail() -> dict[str, Any] | None:
        answer = await asyncio.to_thread(get_json, url)
        for msg in answer["messages"]:
            if msg.get("direction") == "company" and SALES_AWAY in str(msg.get("text")):
                return dict(msg)
        return None

    got = await wait("the away reply at the demo's SMTP server", away_mail)
    steps.ok(repr(got.get("subject")))
