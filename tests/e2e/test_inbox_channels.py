"""The team inbox's channel-sensitive behaviour, one suite over every channel (webhook,
Telegram, WhatsApp, email), end to end through a real Synapse: a customer's first message
opens a conversation (routed, announced in the team room, welcomed once, the room showing
what was sent), internal notes never reach the customer (also as an edit or a reply), canned
replies go out expanded and unknown codes are refused, the away message goes once per
interval; then what only some channels have: the mail marks of automatic replies (and no
answer to automatic mail), WhatsApp's 24-hour window.

One stack for the module, every channel account of ``build_stack`` in it (``hooks``, ``tg``,
``wa``, ``mail``), each conversation a new customer. "Nothing reached the customer" is
shown with a barrier, not a pause: a later message of the same conversation is awaited at
the remote side, and the conversation's queue delivers in order, so whatever the bridge
would have sent before it has arrived by then."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import MAIL_USER, SERVER_NAME, Stack, build_stack
from tests.e2e.inbox_channels import CHANNELS, Channel, Customer, Got
from tests.e2e.test_inbox_rooms import _join_team_rooms
from tests.infra.staff import StaffClient

Event = dict[str, Any]
STAFF = f"@staff:{SERVER_NAME}"
PREFIX = "staff: "
"""The sender prefix the core puts in front of a staff message (``{displayname}: ``)."""
WELCOME = "Welcome to ACME! We answer within the hour."
NIGHT_AWAY = "We are closed at night; we answer in the morning."
WEEKEND_AWAY = "We are closed for the weekend; back on Monday."
AUTOMATIC = {"desk": WELCOME, "night": NIGHT_AWAY, "weekend": WEEKEND_AWAY}
"""The reply each team's first message gets (a welcome, or an away message: never open)."""
THANKS = "Thank you, {customer}! {agent} of team {team} is on it."
NEVER_OPEN = {"timezone": "UTC", "weekly": {}}
WEEKEND_INTERVAL = 1
FEATURES = {
    "inbox": {
        "teams": {
            "desk": {
                "members": [STAFF], "assignment": "round_robin",
                "replies": {"welcome": WELCOME}, "canned": {"thanks": THANKS},
            },
            # Never open: every customer message is out of hours.
            "night": {
                "members": [STAFF], "assignment": "round_robin", "hours": NEVER_OPEN,
                "replies": {"away": NIGHT_AWAY}, "away_interval": "1h",
            },
            "weekend": {
                "members": [STAFF], "assignment": "round_robin", "hours": NEVER_OPEN,
                "replies": {"away": WEEKEND_AWAY}, "away_interval": f"{WEEKEND_INTERVAL}s",
            },
        },
        "accounts": {channel.account: "desk" for channel in CHANNELS},
        "routing": [
            {"team": "night", "keywords": ["midnight"]},
            {"team": "weekend", "keywords": ["weekend"]},
        ],
        "tick": "1s",
    }
}  # fmt: skip
_n = itertools.count(1)


@dataclass
class Desk:
    stack: Stack
    staff: StaffClient
    team_room: str
    """Team desk's room."""
    channels: dict[str, Channel]


@dataclass
class Conversation:
    channel: Channel
    customer: Customer
    room_id: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def desk(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Desk]:
    async with build_stack(
        tmp_path_factory.mktemp("inbox-channels"),
        features=FEATURES,
        # Several messages to one WhatsApp customer back to back, as the tests send them.
        channel_options={"wa": {"pair_burst": 100}},
    ) as stack:
        staff = await StaffClient.login(
            stack.synapse.base_url, stack.staff_id, stack.staff_password
        )
        try:
            team_room, _ = await _join_team_rooms(staff, "desk")
            channels = {cls.name: cls(stack) for cls in CHANNELS}
            yield Desk(stack, staff, team_room, channels)
        finally:
            await staff.close()


@pytest.fixture(params=[cls.name for cls in CHANNELS])
def channel(request: pytest.FixtureRequest, desk: Desk) -> Channel:
    return desk.channels[request.param]


# --------------------------------------------------------------------------- steps


async def _join_conversation(staff: StaffClient, name: str) -> str:
    """Join the invite to the conversation room of ``name`` (its status mark in front or not
    yet); returns its id."""
    for _ in range(120):
        for room_id, state in list(staff.pending_invites.items()):
            names = [e["content"].get("name") for e in state if e.get("type") == "m.room.name"]
            if names and (names[0] == name or names[0].endswith(f" {name}")):
                await staff.join(room_id)
                return room_id
        await staff.sync_once(0.5)
    raise AssertionError(f"no invite to the conversation with {name}")


def _notice(text: str, reply_to: str | None = None) -> Callable[[Event], bool]:
    def pred(e: Event) -> bool:
        content = e.get("content", {})
        replied = content.get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
        return (
            content.get("msgtype") == "m.notice"
            and content.get("body") == text
            and (reply_to is None or replied == reply_to)
        )

    return pred


def _replying_to(event_id: str) -> Callable[[Event], bool]:
    return lambda e: (
        e.get("content", {}).get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
        == event_id
    )


def _customer_wrote(text: str) -> Callable[[Event], bool]:
    return lambda e: (
        e.get("type") == "m.room.message"
        and e.get("sender") != STAFF
        and text in e["content"].get("body", "")
    )


async def _open(desk: Desk, channel: Channel, text: str, team: str = "desk") -> Conversation:
    """A new customer's first message: the conversation is ``team``'s, assigned to staff,
    whose invite is joined, and the team's automatic reply has reached the customer (what
    staff write next comes after it)."""
    customer = channel.customer()
    await channel.writes(customer, text)
    room_id = await _join_conversation(desk.staff, customer.name)
    await desk.staff.wait_for_event(
        _notice(f"📥 New conversation for team {team}; assigned to staff"), room_id=room_id
    )
    await channel.wait_got(customer, lambda g: g.text == AUTOMATIC[team])
    return Conversation(channel, customer, room_id)


async def _staff_says(desk: Desk, conv: Conversation, text: str) -> Got:
    """Staff write ``text`` in the conversation; returns it as the customer got it."""
    await desk.staff.send_text(conv.room_id, text)
    expected = conv.channel.staff_text(PREFIX, text)
    return await conv.channel.wait_got(conv.customer, lambda g: g.text == expected)


def _texts(conv: Conversation) -> list[str]:
    return [g.text for g in conv.channel.got(conv.customer)]


# --------------------------------------------------------------------------- every channel


async def test_a_first_message_opens_a_welcomed_conversation(desk: Desk, channel: Channel) -> None:
    first = "Hello,\nwhere is   my parcel? It was due on Monday; the tracking page shows nothing."
    conv = await _open(desk, channel, first)
    start = f"📥 New conversation from {conv.customer.name} "
    announcement = await desk.staff.wait_for_event(
        lambda e: e["content"].get("body", "").startswith(start), room_id=desk.team_room
    )
    assert announcement["content"]["body"] == (
        f"📥 New conversation from {conv.customer.name} ({channel.account}): "
        "“Hello, where is my parcel? It was due on Monday; the tracking page shows nothin…” "
        f"https://matrix.to/#/{conv.room_id}"
    )
    welcome = await channel.wait_got(conv.customer, lambda g: g.text == WELCOME)
    shown = f"🤖 Automatic message (welcome):\n{welcome.text}"
    await desk.staff.wait_for_event(_notice(shown), room_id=conv.room_id)

    await _staff_says(desk, conv, "Let me check.")
    assert _texts(conv) == [WELCOME, channel.staff_text(PREFIX, "Let me check.")]
    assert len(desk.staff.find_events(_notice(shown), room_id=conv.room_id)) == 1


async def test_internal_notes_never_reach_the_customer(desk: Desk, channel: Channel) -> None:
    conv = await _open(desk, channel, "A question about my order")
    room, staff = conv.room_id, desk.staff
    secret = f"internal{next(_n)}"
    notes = [
        await staff.send_text(room, f"// {secret}-a: the customer sounds upset"),
        await staff.send_text(room, f"note: {secret}-b check the invoice first"),
        await staff.send_text(room, f"  NOTE: {secret}-c", html=f"<b>NOTE:</b> {secret}-c"),
    ]
    # A reply with its plain-text fallback, to a notice of the bot (not a bridged message).
    bot_notice = staff.find_events(
        _notice("📥 New conversation for team desk; assigned to staff"), room_id=room
    )
    notes.append(
        await staff.send_event(room, "m.room.message", {
            "msgtype": "m.text",
            "body": f"> <{desk.stack.bot_id}> 📥 New conversation\n\n// {secret}-d: mine",
            "m.relates_to": {"m.in_reply_to": {"event_id": bot_notice[-1]["event_id"]}},
        })
    )  # fmt: skip
    # A message that went out, then edited into a note: the customer keeps the original.
    shipped = await staff.send_text(room, "Your order ships today.")
    await conv.channel.wait_got(
        conv.customer, lambda g: g.text == channel.staff_text(PREFIX, "Your order ships today.")
    )
    await staff.edit(room, shipped, f"// {secret}-e: it ships tomorrow, do not tell yet")

    await _staff_says(desk, conv, "Anything else I can do for you?")
    leaked = [g for g in channel.got(conv.customer) if secret in g.raw]
    assert leaked == []
    # Kept in Matrix as meant: no failure shown for any note.
    for note in notes:
        assert staff.find_events(_replying_to(note), room_id=room) == []


async def test_a_canned_reply_goes_out_expanded(desk: Desk, channel: Channel) -> None:
    conv = await _open(desk, channel, "Can I pay by invoice?")
    room, staff = conv.room_id, desk.staff
    short = await staff.send_text(room, "!thanks")
    expanded = f"Thank you, {conv.customer.name}! staff of team desk is on it."
    got = await channel.wait_got(conv.customer, lambda g: expanded in g.text)
    assert got.text == channel.staff_text(PREFIX, expanded)
    await staff.wait_for_event(_notice(f"↪️ Sent as:\n{PREFIX}{expanded}", short), room_id=room)

    unknown = await staff.send_text(room, "!nosuchreply")
    await staff.wait_for_event(
        _notice("⚠️ Not delivered: no canned reply !nosuchreply; see canned list", unknown),
        room_id=room,
    )
    await _staff_says(desk, conv, "Yes, you can.")
    assert not [g for g in channel.got(conv.customer) if "nosuchreply" in g.raw]
    assert _texts(conv) == [WELCOME, got.text, channel.staff_text(PREFIX, "Yes, you can.")]


async def test_the_away_message_goes_once_per_interval(desk: Desk, channel: Channel) -> None:
    night = await _open(desk, channel, "Are you there at midnight?", team="night")
    await channel.wait_got(night.customer, lambda g: g.text == NIGHT_AWAY)
    await desk.staff.wait_for_event(
        _notice(f"🤖 Automatic message (away):\n{NIGHT_AWAY}"), room_id=night.room_id
    )
    await channel.writes(night.customer, "Hello? Anyone?")
    await desk.staff.wait_for_event(_customer_wrote("Hello? Anyone?"), room_id=night.room_id)
    await channel.writes(night.customer, "Still waiting.")
    # Bridged once the one before it was handled in full, its hooks too.
    await desk.staff.wait_for_event(_customer_wrote("Still waiting."), room_id=night.room_id)
    await _staff_says(desk, night, "Here now.")
    assert _texts(night) == [NIGHT_AWAY, channel.staff_text(PREFIX, "Here now.")]

    # Team weekend's interval is short: once it has passed, the next message gets one again.
    weekend = await _open(desk, channel, "Do you work on the weekend?", team="weekend")
    await channel.wait_got(weekend.customer, lambda g: g.text == WEEKEND_AWAY)
    await asyncio.sleep(WEEKEND_INTERVAL)  # the interval itself, not a synchronisation
    await channel.writes(weekend.customer, "Are you open now?")
    await channel.wait_got(weekend.customer, lambda _: _texts(weekend).count(WEEKEND_AWAY) > 1)
    assert _texts(weekend) == [WEEKEND_AWAY, WEEKEND_AWAY]


# --------------------------------------------------------------------------- channel specifics


DSN = (
    "From: Mail Delivery System <{sender}>\r\nTo: support@company.test\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: {message_id}\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
    "--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
    "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.test\r\n"
    "\r\nFinal-Recipient: rfc822; nobody@customer.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
    "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    "Message-ID: <unknown-{n}@elsewhere.test>\r\nSubject: Hello\r\n--B--\r\n"
)
"""A bounce of a mail the bridge did not send (shown as a conversation of its own); neither
``Auto-Submitted`` nor an empty ``Return-Path``: the report alone marks it automatic."""


async def test_mail_auto_replies_are_marked_and_automatic_mail_is_not_answered(
    desk: Desk,
) -> None:
    channel = desk.channels["email"]
    conv = await _open(desk, channel, "Where is my order?")
    welcome = await channel.wait_got(conv.customer, lambda g: g.text == WELCOME)
    assert welcome.headers.get("Auto-Submitted") == "auto-replied"
    answer = await _staff_says(desk, conv, "It ships today.")
    assert "Auto-Submitted" not in answer.headers

    robot = channel.customer()
    await channel.writes(
        robot, "Your ticket 123 was received.", headers={"Auto-Submitted": "auto-generated"}
    )
    n = next(_n)
    bounce = Customer(f"mailer-daemon{n}@mx.customer.test", f"mailer-daemon{n}@mx.customer.test")
    bounce_id = f"<bounce-{n}@mx.customer.test>"
    raw = DSN.format(sender=bounce.address, message_id=bounce_id, n=n).encode()
    bounce.thread.append(bounce_id)
    await desk.stack.dovecot.adeliver(MAIL_USER, raw)
    for customer in (robot, bounce):
        room_id = await _join_conversation(desk.staff, customer.name)
        automatic = Conversation(channel, customer, room_id)
        await desk.staff.wait_for_event(
            _notice("📥 New conversation for team desk; assigned to staff"), room_id=room_id
        )
        # A person writes next in that thread; once bridged, the automatic mail was handled.
        name = "Mail Delivery System" if customer is bounce else customer.name
        await channel.writes(customer, "A person writing now.", subject="Hello", name=name)
        await desk.staff.wait_for_event(_customer_wrote("A person writing now."), room_id=room_id)
        await _staff_says(desk, automatic, "Noted.")
        # No welcome for the automatic first mail.
        assert _texts(automatic) == [channel.staff_text(PREFIX, "Noted.")]


async def test_whatsapp_no_automatic_reply_outside_the_24_hour_window(desk: Desk) -> None:
    channel = desk.channels["whatsapp"]
    customer = channel.customer()
    # Meta retries a webhook for days: this message was written 25 hours ago, so the
    # customer-service window it opened has closed when the welcome comes due.
    await channel.writes(customer, "Hello from yesterday", timestamp=time.time() - 25 * 3600)
    room_id = await _join_conversation(desk.staff, customer.name)
    conv = Conversation(channel, customer, room_id)
    failure = await desk.staff.wait_for_event(
        lambda e: e["content"].get("body", "").startswith("⚠️ Not delivered: "),
        room_id=room_id,
    )
    assert "has not written in the last 24 hours" in failure["content"]["body"]

    await channel.writes(customer, "Are you there?")  # the window is open again
    await desk.staff.wait_for_event(_customer_wrote("Are you there?"), room_id=room_id)
    await _staff_says(desk, conv, "Yes, here.")
    assert _texts(conv) == [channel.staff_text(PREFIX, "Yes, here.")]
    assert not desk.staff.find_events(
        lambda e: "Automatic message" in e["content"].get("body", ""), room_id=room_id
    )
    # Not even tried: the connector knew the window was closed.
    sent_to = [(r.request or {}).get("to") for r in desk.stack.whatsapp.rejected]
    assert customer.address not in sent_to
