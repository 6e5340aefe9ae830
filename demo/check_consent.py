"""Consent and broadcasts in ``scripts/demo.sh --check``, as the demo configures them
(``demo/configs.py``: the ``newsletter`` list on the Telegram, WhatsApp and email accounts, its
broadcast room with the staff user):

1. opt-in on Telegram: a new Telegram user opens the deep link (``/start newsletter``), the bot
   answers with the consent text and buttons, the user presses "Yes, subscribe" (a
   ``callback_query``) and the bot confirms;
2. opt-in by email (with email): a new address signs up on the bridge's form, the confirmation
   mail arrives with its link, opening it (GET) shows the Confirm button and confirms nothing,
   pressing it (POST) confirms;
3. a broadcast: the staff user joins the newsletter's broadcast room, writes a draft (the bridge
   counts its recipients) and ``send``; the final report appears, and each new subscriber got
   it once: the Telegram user in the simulator (with the stop hint), the address as a mail with
   ``List-Unsubscribe`` and one-click ``List-Unsubscribe-Post``;
4. opt-out: the Telegram user writes STOP and gets the confirmation;
5. a second broadcast reaches the address and not the Telegram user.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from checking import CheckFailed, Staff, Steps, body_of, get_json, run_cli, wait
from common import (
    DATA,
    NEWSLETTER,
    SERVER_NAME,
    bridge_url,
    post_json,
    telegram_url,
)
from configs import NEWSLETTER_TITLE
from email_customer import mail_url
from ruamel.yaml import YAML

from bridge.core.util import escape_localpart

YES = f"consent:yes:{NEWSLETTER}"
SUBSCRIBED = "you are subscribed to"
UNSUBSCRIBED = "You are unsubscribed"
_CONFIRM_LINK = re.compile(r"https?://\S+/features/consent/confirm/[^\s<>\"]+")


def _telegram_messages(state: dict[str, Any], user_id: str) -> Any:
    """A probe's helper: the messages of the chat with ``user_id`` at the simulator."""
    url = f"{telegram_url(state)}/api/messages?chat={user_id}"
    return asyncio.to_thread(lambda: get_json(url)["messages"])


def _bot_said(state: dict[str, Any], user_id: str, part: str) -> Any:
    """A probe for ``wait``: the bot's messages to ``user_id`` that contain ``part``."""

    async def probe() -> list[dict[str, Any]]:
        return [m for m in await _telegram_messages(state, user_id)
                if m.get("direction") == "staff" and part in str(m.get("text"))]  # fmt: skip

    return probe


def _mails(state: dict[str, Any], address: str, part: str) -> Any:
    """A probe for ``wait``: the company's mails to ``address`` that contain ``part``."""
    url = f"{mail_url(state)}/api/messages?address={urllib.parse.quote(address)}"

    async def probe() -> list[dict[str, Any]]:
        answer = await asyncio.to_thread(get_json, url)
        return [m for m in answer["messages"]
                if m.get("direction") == "company" and part in str(m.get("text"))]  # fmt: skip

    return probe


def _http(url: str, data: bytes | None = None, accept: str = "text/html") -> tuple[int, str]:
    headers = {"Accept": accept}
    if data is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(
        url, data, headers, method="POST" if data is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read().decode(errors="replace")


async def opt_in_telegram(state: dict[str, Any], steps: Steps, nonce: str) -> str:
    """A new Telegram user subscribes through the deep link; returns the user id."""
    user_id = str(7_000_000_000 + secrets.randbelow(1_000_000_000))
    steps.begin(f"consent: Telegram user {user_id} opens the deep link (/start {NEWSLETTER})")
    await run_cli(
        "telegram_customer.py", "send", f"/start {NEWSLETTER}", "--user-id", user_id,
        "--name", f"Check Subscriber {nonce}",
    )  # fmt: skip
    asked = await wait("the consent text with buttons", _buttons(state, user_id))
    steps.ok(f"the bot asks {str(asked['text']).splitlines()[0]!r}")

    steps.begin("consent: the user presses 'Yes, subscribe'; the bot confirms")
    press = {"chat_id": int(user_id), "message_id": asked["message_id"], "id": YES}
    status, answer = await asyncio.to_thread(
        post_json, f"{telegram_url(state)}/api/press", json.dumps(press).encode(),
        "the Telegram simulator",
    )  # fmt: skip
    if status != 200 or not answer.get("ok"):
        raise CheckFailed(f"pressing the button failed: HTTP {status} {answer}")
    confirmed = await wait("the bot's confirmation", _bot_said(state, user_id, SUBSCRIBED))
    steps.ok(repr(confirmed[0]["text"]))
    return user_id


def _buttons(state: dict[str, Any], user_id: str) -> Any:
    async def probe() -> dict[str, Any] | None:
        for m in await _telegram_messages(state, user_id):
            ids = [b["id"] for row in m.get("buttons") or [] for b in row]
            if m.get("direction") == "staff" and YES in ids:
                return dict(m)
        return None

    return probe


async def opt_in_email(state: dict[str, Any], steps: Steps, nonce: str) -> str:
    """A new address subscribes through the sign-up form; returns the address."""
    address = f"reader-{nonce}-{secrets.token_hex(2)}@customer.test"
    form = f"{bridge_url(state)}/features/consent/form/{NEWSLETTER}"
    steps.begin(f"consent: the sign-up form {form} answers")
    status, page = await asyncio.to_thread(_http, form)
    if status != 200 or "<form" not in page:
        raise CheckFailed(f"the sign-up form answered HTTP {status}: {page[:300]!r}")
    steps.ok()

    steps.begin(f"consent: {address} signs up; the confirmation mail arrives with its link")
    subscribe = f"{bridge_url(state)}/features/consent/subscribe/{NEWSLETTER}"
    body = urllib.parse.urlencode({"email": address}).encode()
    status, page = await asyncio.to_thread(_http, subscribe, body, "application/json")
    if status != 200 or not json.loads(page).get("ok"):
        raise CheckFailed(f"the sign-up answered HTTP {status}: {page[:300]!r}")
    mails = await wait("the confirmation mail", _mails(state, address, "/features/consent/"))
    found = _CONFIRM_LINK.search(str(mails[0]["text"]))
    if found is None:
        raise CheckFailed(f"the confirmation mail has no confirmation link: {mails[0]}")
    link = found.group(0)
    steps.ok(repr(mails[0].get("subject")))

    steps.begin("consent: opening the link shows a Confirm button (a GET confirms nothing)")
    status, page = await asyncio.to_thread(_http, link)
    if status != 200 or "Confirm" not in page or "you are subscribed" in page:
        raise CheckFailed(f"the confirm page answered HTTP {status}: {page[:300]!r}")
    steps.ok()

    steps.begin("consent: pressing Confirm (the POST) subscribes")
    status, page = await asyncio.to_thread(_http, link, b"confirm=1")
    if status != 200 or "Thank you, you are subscribed" not in page:
        raise CheckFailed(f"confirming answered HTTP {status}: {page[:300]!r}")
    steps.ok()
    return address


async def broadcast_room(staff: Staff) -> str:
    """Join the newsletter's broadcast room (the bridge made it and invited the staff user)."""
    bot = YAML().load((DATA / "config.yaml").read_text())["bot"]["username"]
    alias = f"#{bot}_{escape_localpart(f'broadcast:{NEWSLETTER}')}:{SERVER_NAME}"

    async def resolved() -> str | None:
        answer = await staff.client.room_resolve_alias(alias)
        return getattr(answer, "room_id", None)

    room_id: str = await wait(f"the broadcast room {alias}", resolved)
    await staff.join(room_id)
    return room_id


async def broadcast(staff: Staff, room_id: str, steps: Steps, text: str) -> None:
    """Write ``text`` as the draft, ``send`` it, and wait for the final report."""
    steps.begin(f"broadcast: staff writes the draft {text!r}")
    written = await staff.answer(room_id, text)
    draft = await staff.wait_for_message(room_id, "it would go to", contains=True, after=written)
    steps.ok(body_of(draft).split(". ")[0])

    steps.begin("broadcast: staff writes 'send'; the final report appears")
    written = await staff.answer(room_id, "send")
    started = body_of(await staff.wait_for_message(room_id, " is starting.", contains=True,
                                                   after=written))  # fmt: skip
    number = started.split(" ")[1]
    # Not the progress notice (edited in place, "📣 Broadcast 2 (...), done: ..."): the report.
    final = f"📣 Broadcast {number} ({NEWSLETTER_TITLE}) finished: "
    report = await staff.wait_for_message(room_id, final, contains=True)
    steps.ok(body_of(report).splitlines()[0])


async def check_consent(state: dict[str, Any], staff: Staff, steps: Steps, nonce: str) -> None:
    user_id = await opt_in_telegram(state, steps, nonce)
    address = await opt_in_email(state, steps, nonce) if state.get("email_enabled") else None

    steps.begin("broadcast: staff joins the newsletter's broadcast room")
    room_id = await broadcast_room(staff)
    steps.ok(room_id)

    first = f"News of the month ({nonce})"
    await broadcast(staff, room_id, steps, first)
    steps.begin("broadcast: the Telegram subscriber got it once, with the stop hint")
    got = await _bot_said(state, user_id, first)()
    if len(got) != 1 or "STOP" not in str(got[0]["text"]):
        raise CheckFailed(f"the Telegram subscriber got {[m['text'] for m in got]}")
    steps.ok(repr(got[0]["text"]))
    if address is not None:
        steps.begin("broadcast: the email subscriber got it once, with List-Unsubscribe")
        mails = await _mails(state, address, first)()
        if len(mails) != 1:
            raise CheckFailed(f"{address} got {len(mails)} mails of the broadcast: {mails}")
        if "/features/consent/unsubscribe/" not in str(mails[0].get("list_unsubscribe")) or (
            mails[0].get("list_unsubscribe_post") != "List-Unsubscribe=One-Click"
        ):
            raise CheckFailed(f"the broadcast mail lacks List-Unsubscribe: {mails[0]}")
        steps.ok(str(mails[0]["list_unsubscribe"]))

    steps.begin("opt-out: the Telegram subscriber writes STOP and gets the confirmation")
    await run_cli("telegram_customer.py", "send", "STOP", "--user-id", user_id,
                  "--name", f"Check Subscriber {nonce}")  # fmt: skip
    said = await wait("the opt-out confirmation", _bot_said(state, user_id, UNSUBSCRIBED))
    steps.ok(repr(said[0]["text"]))

    second = f"More news ({nonce})"
    await broadcast(staff, room_id, steps, second)
    if address is not None:
        steps.begin("broadcast: the email subscriber got the second one")
        if len(await _mails(state, address, second)()) != 1:
            raise CheckFailed(f"{address} did not get the second broadcast once")
        steps.ok()
    steps.begin("broadcast: the Telegram user who wrote STOP did not")
    if await _bot_said(state, user_id, second)():
        raise CheckFailed("the second broadcast reached the Telegram user who opted out")
    steps.ok()
