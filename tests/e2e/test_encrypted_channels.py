"""Every connector's round trip in an encrypted portal room (issue 15), one suite over the
webhook, Telegram, WhatsApp and email channels, end to end through a Synapse that encrypts
every new room, with an encrypted staff client (its own E2EE device).

Per channel, in one conversation: the customer's message reaches the room as a ghost's
encrypted message (the homeserver holds only its ciphertext); a staff message and a staff
reply reach the customer (the reply mapped to the customer's message); a staff edit, reaction
and redaction reach the customer where the channel carries them, else the room gets the
core's "⚠️ Not delivered: ..." notice, itself encrypted; files go both ways, the customer's
as an encrypted attachment (``content.file``) whose bytes the staff client decrypts.

One stack per database backend (SQLite, PostgreSQL), every channel account of ``build_stack``
in it; the tests of a channel share its conversation, opened by the first test that needs it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio

from bridge.connector import DeleteHandler, EditHandler, ReactionHandler
from bridge.connectors import connector_class
from tests.conftest import Stack, backend_database, build_stack
from tests.e2e.encrypted_support import CHANNELS, Customer, RoundTrip
from tests.e2e.helpers import join_invite_named
from tests.e2e.test_inbox_channels import _customer_wrote, _replying_to
from tests.infra.staff import StaffClient

Event = dict[str, Any]
PREFIX = "staff: "
"""The sender prefix the core puts in front of a staff message (``{displayname}: ``)."""
FIRST = "Hello, is this line private?"
NOT_DELIVERED = "⚠️ Not delivered: "


@dataclass
class Conversation:
    channel: RoundTrip
    customer: Customer
    room_id: str
    first: Event
    """The customer's first message as the staff client got it."""
    first_remote: str
    """Its remote id."""


@dataclass
class Desk:
    stack: Stack
    staff: StaffClient
    channels: dict[str, RoundTrip]
    conversations: dict[str, Conversation] = field(default_factory=dict)


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=["sqlite", "postgres"])
async def desk(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Desk]:
    async with build_stack(
        tmp_path_factory.mktemp("encrypted-channels"),
        db_url=backend_database(request, "encrypted_channels"),
        encryption={"allow": True, "default": True},
        # Several messages to one WhatsApp customer back to back, as the tests send them.
        channel_options={"wa": {"pair_burst": 100}},
    ) as stack:
        staff = await StaffClient.login(
            stack.synapse.base_url, stack.staff_id, stack.staff_password, encrypted=True
        )
        try:
            yield Desk(stack, staff, {cls.name: cls(stack) for cls in CHANNELS})
        finally:
            await staff.close()


@pytest.fixture(params=[cls.name for cls in CHANNELS])
def channel(request: pytest.FixtureRequest, desk: Desk) -> RoundTrip:
    return desk.channels[request.param]


@pytest_asyncio.fixture(loop_scope="session")
async def conv(desk: Desk, channel: RoundTrip) -> Conversation:
    """The channel's conversation: a customer's first message, the room joined by staff."""
    if channel.name not in desk.conversations:
        customer = channel.customer()
        await channel.writes(customer, FIRST)
        room_id = await join_invite_named(desk.staff, customer.name)
        first = await desk.staff.wait_for_event(_customer_wrote(FIRST), room_id=room_id)
        desk.conversations[channel.name] = Conversation(
            channel, customer, room_id, first, channel.last_id(customer)
        )
    return desk.conversations[channel.name]


# --------------------------------------------------------------------------- predicates


def _not_delivered(about: str) -> Callable[[Event], bool]:
    """The core's failure notice replying to ``about``, as the staff client decrypted it."""
    return lambda e: (
        e.get("type") == "m.room.message"
        and e["content"].get("msgtype") == "m.notice"
        and e["content"].get("body", "").startswith(NOT_DELIVERED)
        and _replying_to(about)(e)
    )


async def _raw(staff: StaffClient, room_id: str, event_id: str) -> Event:
    """The event as the homeserver stores and serves it (no decryption)."""
    path = f"/_matrix/client/v3/rooms/{quote(room_id)}/event/{quote(event_id)}"
    result: Event = await staff.api("GET", path)
    return result


async def _only_ciphertext(staff: StaffClient, room_id: str, event_id: str, text: str) -> None:
    raw = await _raw(staff, room_id, event_id)
    assert raw["type"] == "m.room.encrypted"
    assert raw["content"]["algorithm"] == "m.megolm.v1.aes-sha2" and raw["content"]["ciphertext"]
    assert text not in json.dumps(raw, ensure_ascii=False)


async def _failure(desk: Desk, conv: Conversation, about: str, words: str) -> None:
    notice = await desk.staff.wait_for_event(_not_delivered(about), room_id=conv.room_id)
    assert notice.get("encrypted") is True
    assert words in notice["content"]["body"]
    await _only_ciphertext(desk.staff, conv.room_id, notice["event_id"], NOT_DELIVERED)


# --------------------------------------------------------------------------- tests


def test_adapters_state_what_each_connector_carries() -> None:
    for cls in CHANNELS:
        connector = connector_class(cls.bridge_type)
        assert connector is not None, cls.bridge_type
        assert cls.edits == issubclass(connector, EditHandler), cls.name
        assert cls.reactions == issubclass(connector, ReactionHandler), cls.name
        assert cls.deletes == issubclass(connector, DeleteHandler), cls.name


async def test_customer_message_reaches_the_room_encrypted(desk: Desk, conv: Conversation) -> None:
    staff, room_id, first = desk.staff, conv.room_id, conv.first
    assert first.get("encrypted") is True
    assert FIRST in first["content"]["body"]
    assert await staff.room_is_encrypted(room_id)
    state = await staff.get_state(room_id)
    algorithms = [e["content"]["algorithm"] for e in state if e["type"] == "m.room.encryption"]
    assert algorithms == ["m.megolm.v1.aes-sha2"]
    raw = await _raw(staff, room_id, first["event_id"])
    assert raw["sender"] == first["sender"]
    await _only_ciphertext(staff, room_id, first["event_id"], FIRST)


async def test_staff_text_and_reply_reach_the_customer(desk: Desk, conv: Conversation) -> None:
    staff, channel, customer = desk.staff, conv.channel, conv.customer
    text_id = await staff.send_text(conv.room_id, "We read you, encrypted.")
    await _only_ciphertext(staff, conv.room_id, text_id, "We read you")
    out = await channel.staff_message(
        customer, channel.staff_text(PREFIX, "We read you, encrypted.")
    )
    assert out.remote_id

    await staff.send_text(conv.room_id, "Yes, it is private.", reply_to=conv.first["event_id"])
    reply = await channel.staff_message(
        customer, channel.staff_text(PREFIX, "Yes, it is private.")
    )
    assert reply.reply_to == conv.first_remote


async def test_staff_edit_reaction_and_redaction(desk: Desk, conv: Conversation) -> None:
    staff, channel, customer, room_id = desk.staff, conv.channel, conv.customer, conv.room_id
    msg_id = await staff.send_text(room_id, "Your order ships Monday.")
    out = await channel.staff_message(
        customer, channel.staff_text(PREFIX, "Your order ships Monday.")
    )

    edit_id = await staff.edit(room_id, msg_id, "Your order ships Tuesday.")
    if channel.edits:
        await channel.edited(
            customer, out, channel.staff_text(PREFIX, "Your order ships Tuesday.")
        )
    else:
        await _failure(desk, conv, edit_id, "has no edits")

    reaction_id = await staff.react(room_id, conv.first["event_id"], "👍")
    if channel.reactions:
        await channel.reacted(customer, conv.first_remote, "👍")
    else:
        await _failure(desk, conv, reaction_id, "has no reactions")

    await staff.redact(room_id, msg_id)
    if channel.deletes:
        await channel.deleted(customer, out)
    else:
        await _failure(desk, conv, msg_id, "cannot delete messages")


async def test_files_both_ways_as_encrypted_attachments(desk: Desk, conv: Conversation) -> None:
    staff, channel, customer, room_id = desk.staff, conv.channel, conv.customer, conv.room_id
    offer = b"%PDF-1.4 the offer \x00\xff" * 40
    await staff.send_file(room_id, offer, "offer.pdf", "application/pdf")
    assert await channel.staff_file(customer, "offer.pdf") == offer

    invoice = b"%PDF-1.4 the customer's invoice \x01\xfe" * 40
    await channel.writes_file(customer, invoice, "invoice.pdf", "application/pdf")
    event = await staff.wait_for_event(
        lambda e: e.get("type") == "m.room.message" and e["content"].get("body") == "invoice.pdf",
        room_id=room_id,
    )
    assert event.get("encrypted") is True and event["content"]["msgtype"] == "m.file"
    assert "url" not in event["content"] and event["content"]["file"]["url"].startswith("mxc://")
    assert await staff.download(event["content"]) == invoice
    await _only_ciphertext(staff, room_id, event["event_id"], "invoice.pdf")
