"""``scripts/demo.sh --check``: drives the running demo end to end, prints PASS or FAIL.

The staff user logs in with matrix-nio. Then, for the webhook customer, a Telegram customer,
a WhatsApp customer, a VK customer, a MAX customer and (when the demo runs with email) an email
customer in
turn (and for the webhook customer once more after the bridge alone was killed, which the
demo restarts):

1. the customer writes through its CLI in a new chat (``demo/customer.py send``,
   ``demo/telegram_customer.py send`` as a new Telegram user,
   ``demo/whatsapp_customer.py send`` from a new phone number,
   ``demo/vk_customer.py send`` as a new VK user, ``demo/max_customer.py send`` as a new MAX
   user, or
   ``demo/email_customer.py send`` from a new address, which puts the mail into the support
   mailbox on the demo's Dovecot);
2. the staff user waits for the bridge's invite to the new portal room, and joins it (for
   email: the room is named after the sender);
3. the customer's message is visible in that room;
4. the staff user answers;
5. the answer arrived: at the customer app (signed POST to /inbox), at the Telegram
   simulator as a ``sendMessage`` to that chat, at the WhatsApp simulator as a text
   message to that number, at the VK simulator as a ``messages.send`` to that user, or at
   the MAX simulator as a ``POST /messages`` to that user's dialog, with
   the "Demo Staff: " sender prefix; or at the demo's SMTP
   server as a mail to that address with ``Re: <subject>`` and ``In-Reply-To`` the
   customer's Message-ID;
6. WhatsApp only: the phone's ``delivered`` and ``read`` statuses come back as read receipts
   on the answer, of the bridge bot and of the customer's ghost.

Then the team inbox (``demo/check_inbox.py``): routing by keyword and by address, the welcome
and away replies, a canned reply, an internal note and ``resolve``. Last, consent and
broadcasts (``demo/check_consent.py``): opt-in on Telegram and by email, a broadcast, an
opt-out by STOP and a broadcast that no longer reaches the one who wrote it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from check_consent import check_consent
from check_inbox import check_inbox, check_inbox_email
from checking import (
    TOTAL_TIMEOUT,
    CheckFailed,
    Staff,
    Steps,
    body_of,
    get_json,
    run_cli,
    wait,
)
from common import (
    DATA,
    SERVER_NAME,
    bridge_url,
    customer_url,
    hs_url,
    load_state,
    max_url,
    telegram_url,
    vk_url,
    whatsapp_url,
)
from email_customer import mail_url
from ruamel.yaml import YAML


async def check_webhook(
    state: dict[str, Any], staff: Staff, steps: Steps, nonce: str, room: tuple[str, str] | None
) -> tuple[str, str]:
    """A webhook round trip: in a new chat, or in ``room`` (chat, room id) when given.
    Returns the chat and its portal room."""
    new = room is None
    chat = f"check-{time.strftime('%Y%m%d-%H%M%S')}-{nonce}" if room is None else room[0]
    again = "" if new else " again"
    customer_text = f"Hello{again} from the demo check ({nonce})"
    reply_text = f"Thanks, we are on it{again} ({nonce})"

    steps.begin(f"webhook: customer CLI sends {customer_text!r} in chat {chat!r}")
    out = await run_cli(
        "customer.py", "send", customer_text, "--chat", chat, "--name", "Check Customer"
    )
    steps.ok(out)

    if room is None:
        steps.begin("webhook: wait for the bridge's invite to the new portal room")
        room_id = await staff.wait_for_invite(chat)
        steps.ok(room_id)

        steps.begin("webhook: join the portal room")
        await staff.join(room_id)
        steps.ok()
    else:
        room_id = room[1]

    steps.begin("webhook: see the customer's message in the room")
    seen = await staff.wait_for_message(room_id, customer_text)
    steps.ok(f"from {seen.get('sender')}")

    steps.begin(f"webhook: staff answers {reply_text!r}")
    answer_id = await staff.answer(room_id, reply_text)
    steps.ok(answer_id)
    messages = {seen["event_id"]: customer_text, answer_id: reply_text}
    await staff.check_encrypted(steps, "webhook", room_id, messages)

    steps.begin("webhook: the customer app receives the answer at /inbox")
    url = f"{customer_url(state)}/api/messages?chat={chat}"

    async def delivered() -> dict[str, Any] | None:
        for msg in await asyncio.to_thread(get_json, url):
            if msg.get("direction") == "staff" and reply_text in str(msg.get("text")):
                return dict(msg)
        return None

    got = await wait("the answer at the customer app", delivered)
    steps.ok(repr(got.get("text")))
    return chat, room_id


async def restart_bridge(state: dict[str, Any], steps: Steps) -> None:
    """Kill the bridge alone (as a crash would) and wait until ``scripts/demo.sh`` has started
    it again and its webhook route answers."""
    pidfile = DATA / "bridge-process.pid"
    pid = int(pidfile.read_text())
    steps.begin(f"kill the bridge alone (SIGKILL to pid {pid}); the demo starts it again")
    os.kill(pid, signal.SIGKILL)
    url = f"{bridge_url(state)}/connectors/{state['account']}/events"

    async def restarted() -> int | None:
        try:
            new_pid = int(pidfile.read_text())
        except (OSError, ValueError):
            return None
        if new_pid == pid or await asyncio.to_thread(_status, url) != 405:
            return None
        return new_pid

    steps.ok(f"running again as pid {await wait('the bridge to run again', restarted)}")


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return 200
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


async def portal_round_trip(
    staff: Staff,
    steps: Steps,
    channel: str,
    marker: str,
    cli: tuple[str, ...],
    customer_text: str,
    reply_text: str,
) -> tuple[str, dict[str, Any], str]:
    """Steps 1 to 4 for a simulated channel's customer: ``cli`` (a customer script and its
    arguments) writes ``customer_text`` in a new chat whose portal names ``marker``; the staff
    user joins the new room, sees the message and answers ``reply_text``. Returns the room, the
    customer's event and the answer's event id."""
    steps.begin(f"{channel}: customer CLI sends {customer_text!r} as {marker}")
    steps.ok(await run_cli(*cli))

    steps.begin(f"{channel}: wait for the bridge's invite to the new portal room")
    room_id = await staff.wait_for_invite(marker)
    steps.ok(room_id)

    steps.begin(f"{channel}: join the portal room")
    await staff.join(room_id)
    steps.ok()

    steps.begin(f"{channel}: see the customer's message in the room")
    seen = await staff.wait_for_message(room_id, customer_text)
    steps.ok(f"from {seen.get('sender')}")

    steps.begin(f"{channel}: staff answers {reply_text!r}")
    answer_id = await staff.answer(room_id, reply_text)
    steps.ok(answer_id)
    messages = {seen["event_id"]: customer_text, answer_id: reply_text}
    await staff.check_encrypted(steps, channel, room_id, messages)
    return room_id, seen, answer_id


async def answer_at(
    url: str, direction: str, fields: dict[str, str], expected: str, what: str
) -> dict[str, Any]:
    """The company's first message (``direction``) in a simulated channel's conversation at
    ``url`` (its page's ``/api/messages``), once there: it must have ``fields`` and the text
    ``expected``."""

    async def delivered() -> dict[str, Any] | None:
        answer = await asyncio.to_thread(get_json, url)
        for msg in answer["messages"]:
            if msg.get("direction") != direction:
                continue
            if any(str(msg.get(key)) != value for key, value in fields.items()):
                raise CheckFailed(f"{what} got something else: {msg}")
            if msg.get("text") != expected:
                raise CheckFailed(f"{what} got {msg.get('text')!r}, expected {expected!r}")
            return dict(msg)
        return None

    got: dict[str, Any] = await wait(f"the answer at {what}", delivered)
    return got


async def check_telegram(state: dict[str, Any], staff: Staff, steps: Steps, nonce: str) -> None:
    # A new Telegram user (private chat id = user id), so that the bridge makes a new portal.
    user_id = str(6_000_000_000 + secrets.randbelow(1_000_000_000))
    customer_text = f"Привет from the demo check ({nonce})"
    reply_text = f"Здравствуйте, we are on it ({nonce})"
    expected = f"Demo Staff: {reply_text}"

    cli = ("telegram_customer.py", "send", customer_text, "--user-id", user_id,
           "--name", "Check Telegram")  # fmt: skip
    room_id, _seen, _answer = await portal_round_trip(
        staff, steps, "telegram", user_id, cli, customer_text, reply_text
    )

    steps.begin(f"telegram: the simulator gets sendMessage to chat {user_id} with the prefix")
    url = f"{telegram_url(state)}/api/messages?chat={user_id}"
    fields = {"method": "sendMessage", "chat_id": user_id}
    got = await answer_at(url, "staff", fields, expected, "the Telegram simulator")
    steps.ok(f"sendMessage {got.get('text')!r}")

    account = state["telegram_account"]
    steps.begin(f"privacy: staff asks for the data of {account}:{user_id} (privacy export)")
    written = await staff.answer(room_id, f"!bridge privacy export {account}:{user_id}")
    answer = await staff.wait_for_message(room_id, "📦 Export", contains=True, after=written)
    held = re.search(r"(\d+) messages", body_of(answer))
    if held is None or int(held.group(1)) < 2:  # the customer's and the staff's
        raise CheckFailed(f"the export does not hold both messages: {body_of(answer)}")
    steps.ok(body_of(answer).split(" is in ")[0])


async def check_whatsapp(state: dict[str, Any], staff: Staff, steps: Steps, nonce: str) -> None:
    # A new phone number, so that the bridge makes a new portal.
    number = f"49151{secrets.randbelow(10**7):07d}"
    customer_text = f"Hallo from the demo check ({nonce})"
    reply_text = f"Danke, wir kümmern uns ({nonce})"
    expected = f"Demo Staff: {reply_text}"

    steps.begin(f"whatsapp: customer CLI sends {customer_text!r} from +{number}")
    out = await run_cli(
        "whatsapp_customer.py", "send", customer_text, "--number", f"+{number}",
        "--name", "Check WhatsApp",
    )  # fmt: skip
    steps.ok(out)

    steps.begin("whatsapp: wait for the bridge's invite to the new portal room")
    room_id = await staff.wait_for_invite(number)
    steps.ok(room_id)

    steps.begin("whatsapp: join the portal room")
    await staff.join(room_id)
    steps.ok()

    steps.begin("whatsapp: see the customer's message in the room")
    seen = await staff.wait_for_message(room_id, customer_text)
    ghost = str(seen.get("sender"))
    steps.ok(f"from {ghost}")

    steps.begin(f"whatsapp: staff answers {reply_text!r}")
    event_id = await staff.answer(room_id, reply_text)
    steps.ok(event_id)
    messages = {seen["event_id"]: customer_text, event_id: reply_text}
    await staff.check_encrypted(steps, "whatsapp", room_id, messages)

    steps.begin(f"whatsapp: the simulator gets a text message to +{number} with the prefix")
    url = f"{whatsapp_url(state)}/api/messages?number={number}"
    fields = {"kind": "text", "number": number}
    got = await answer_at(url, "business", fields, expected, "the WhatsApp simulator")
    steps.ok(f"text {got.get('text')!r}")

    bot = f"@{YAML().load((DATA / 'config.yaml').read_text())['bot']['username']}:{SERVER_NAME}"
    steps.begin("whatsapp: the phone's statuses come back: delivered as the bot's read receipt")
    await wait("the bot's read receipt", lambda: staff.read_by(room_id, event_id, bot))
    steps.ok(bot)

    steps.begin("whatsapp: ... and read as the customer's read receipt")
    await wait("the customer's read receipt", lambda: staff.read_by(room_id, event_id, ghost))
    steps.ok(ghost)


async def check_vk(state: dict[str, Any], staff: Staff, steps: Steps, nonce: str) -> None:
    # A new VK user (private chat: peer id = user id), so that the bridge makes a new portal.
    user_id = str(100_000_000 + secrets.randbelow(900_000_000))
    customer_text = f"Здравствуйте from the demo check ({nonce})"
    reply_text = f"Добрый день, we are on it ({nonce})"
    expected = f"Demo Staff: {reply_text}"
    cli = ("vk_customer.py", "send", customer_text, "--user-id", user_id, "--name", "Check VK")
    await portal_round_trip(staff, steps, "vk", user_id, cli, customer_text, reply_text)

    steps.begin(f"vk: the simulator gets messages.send to peer {user_id} with the prefix")
    url = f"{vk_url(state)}/api/messages?peer={user_id}"
    got = await answer_at(url, "community", {"peer_id": user_id}, expected, "the VK simulator")
    steps.ok(f"messages.send {got.get('text')!r}")


async def check_max(state: dict[str, Any], staff: Staff, steps: Steps, nonce: str) -> None:
    # A new MAX user, so that the bridge makes a new portal (its remote chat: their dialog).
    user_id = 10_000_000 + secrets.randbelow(90_000_000)
    chat = str(user_id + 10**12)
    customer_text = f"Добрый день from the demo check ({nonce})"
    reply_text = f"Здравствуйте, we are on it ({nonce})"
    expected = f"Demo Staff: {reply_text}"
    cli = ("max_customer.py", "send", customer_text, "--user-id", str(user_id), "--name",
           "Check MAX")  # fmt: skip
    await portal_round_trip(staff, steps, "max", chat, cli, customer_text, reply_text)

    steps.begin(f"max: the simulator gets POST /messages to chat {chat} with the prefix")
    url = f"{max_url(state)}/api/messages?user={user_id}"
    got = await answer_at(url, "bot", {"chat_id": chat}, expected, "the MAX simulator")
    steps.ok(f"POST /messages {got.get('text')!r}")


async def check_email(state: dict[str, Any], staff: Staff, steps: Steps, nonce: str) -> None:
    # A new address and name (the portal room's name), so that the bridge makes a new portal.
    name = f"Check Email {nonce}"
    address = f"check-{nonce}-{secrets.token_hex(2)}@customer.test"
    subject = f"Order 42 ({nonce})"
    customer_text = f"Hello from the demo check by mail ({nonce})"
    reply_text = f"Thanks for your mail, we are on it ({nonce})"

    steps.begin(f"email: customer CLI mails {customer_text!r} as {address}")
    out = await run_cli(
        "email_customer.py", "send", customer_text, "--subject", subject,
        "--name", name, "--address", address,
    )  # fmt: skip
    message_id = out.rsplit(": ", 1)[-1].strip()
    if not (message_id.startswith("<") and message_id.endswith(">")):
        raise CheckFailed(f"email_customer.py send printed no Message-ID: {out!r}")
    steps.ok(out)

    steps.begin(f"email: wait for the bridge's invite to the new portal room {name!r}")
    room_id = await staff.wait_for_invite(name)
    steps.ok(room_id)

    steps.begin("email: join the portal room")
    await staff.join(room_id)
    steps.ok()

    steps.begin("email: see the customer's mail in the room")
    seen = await staff.wait_for_message(room_id, customer_text, contains=True)
    steps.ok(f"from {seen.get('sender')}")

    steps.begin(f"email: staff answers {reply_text!r}")
    answer_id = await staff.answer(room_id, reply_text)
    steps.ok(answer_id)
    messages = {seen["event_id"]: customer_text, answer_id: reply_text}
    await staff.check_encrypted(steps, "email", room_id, messages)

    steps.begin(f"email: the SMTP server gets a mail to {address}, Re: subject, In-Reply-To")
    url = f"{mail_url(state)}/api/messages?address={urllib.parse.quote(address)}"
    want_subject = f"Re: {subject}"

    async def delivered() -> dict[str, Any] | None:
        answer = await asyncio.to_thread(get_json, url)
        for msg in answer["messages"]:
            if msg.get("direction") != "company" or msg.get("auto_submitted"):
                continue  # the team's welcome, sent before any answer (demo/check_inbox.py)
            if msg.get("to") != address or reply_text not in str(msg.get("text")):
                raise CheckFailed(f"the company sent something else: {msg}")
            if msg.get("subject") != want_subject:
                raise CheckFailed(f"the reply's subject is {msg.get('subject')!r}, "
                                  f"expected {want_subject!r}")  # fmt: skip
            if msg.get("in_reply_to") != message_id:
                raise CheckFailed(f"the reply's In-Reply-To is {msg.get('in_reply_to')!r}, "
                                  f"expected {message_id!r}")  # fmt: skip
            return dict(msg)
        return None

    got = await wait("the answer at the demo's SMTP server", delivered)
    steps.ok(f"{got.get('subject')!r}, In-Reply-To {got.get('in_reply_to')}")


async def run(state: dict[str, Any]) -> None:
    steps = Steps()
    nonce = secrets.token_hex(3)
    staff_user = state["staff_user"]

    # An E2EE device whenever the bridge may encrypt (DEMO_E2EE=1 now or in an earlier run).
    encrypted = bool(state.get("e2ee_allowed"))
    mode = "an E2EE device" if encrypted else "no encryption"
    steps.begin(f"log in to {hs_url(state)} as {staff_user} ({mode})")
    staff = await Staff.login(
        hs_url(state), staff_user, state["staff_password"],
        encrypted=encrypted, expect_encrypted=bool(state.get("e2ee")),
    )  # fmt: skip
    steps.ok()
    try:
        room = await check_webhook(state, staff, steps, nonce, None)
        await restart_bridge(state, steps)
        await check_webhook(state, staff, steps, nonce, room)
        await check_telegram(state, staff, steps, nonce)
        await check_whatsapp(state, staff, steps, nonce)
        await check_vk(state, staff, steps, nonce)
        await check_max(state, staff, steps, nonce)
        if state.get("email_enabled"):
            await check_email(state, staff, steps, nonce)
        else:
            print("  - email: skipped (Dovecot is not installed)", flush=True)
        await check_inbox(state, staff, steps, nonce)
        if not state.get("email_enabled"):
            print("  - inbox: routing by address skipped (no email)", flush=True)
        else:
            await check_inbox_email(state, staff, steps, nonce)
        await check_consent(state, staff, steps, nonce)
        if not state.get("email_enabled"):
            print("  - consent: the email opt-in skipped (no email)", flush=True)
        print(f"  all steps took {time.monotonic() - steps.started:.1f} s")
    finally:
        await staff.close()


def main() -> int:
    # matrix-nio warns of every event it cannot decrypt yet (its key comes with a later sync).
    logging.getLogger("nio").setLevel(logging.ERROR)
    state = load_state()
    print("Checking the demo end to end:")
    try:
        asyncio.run(asyncio.wait_for(run(state), TOTAL_TIMEOUT))
    except TimeoutError:
        print(f" FAILED\n  the check did not finish within {TOTAL_TIMEOUT:.0f} s")
        print("FAIL (logs: demo-data/*.log)")
        return 1
    except CheckFailed as e:
        print(f" FAILED\n  {e}")
        print("FAIL (logs: demo-data/*.log)")
        return 1
    except Exception as e:  # noqa: BLE001 - report anything as a failed check
        print(f" FAILED\n  {type(e).__name__}: {e}")
        print("FAIL (logs: demo-data/*.log)")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
