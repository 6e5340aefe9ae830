"""The seams around a staff message: outbound gates rewrite or refuse it, the channel's
declared capabilities decide what reaches the connector (no HTML for a channel without it,
no edit longer than the channel takes), and an inbound hook sees a customer's first message
as a first contact once."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config import parse
from bridge.connector import Capabilities
from bridge.core.incoming import StaffEdit, StaffMessage
from bridge.core.staff import StaffHandler
from bridge.db import Message, Portal, QueueItem
from bridge.events import MatrixEdit, MatrixMessage, SentMessage
from bridge.seams import PASS, Internal, Outgoing, Refuse, Rewrite, Seams, Verdict
from bridge.types import MessageID
from tests.test_config import example

ROOM = "!portal:example.com"
STAFF = "@staff:example.com"


class _Connector:
    title = "Test channel"

    def __init__(self, capabilities: Capabilities) -> None:
        self.capabilities = capabilities
        self.sent: list[MatrixMessage] = []
        self.edits: list[MatrixEdit] = []

    async def send_message(self, msg: MatrixMessage) -> SentMessage:
        self.sent.append(msg)
        return SentMessage(MessageID(f"r{len(self.sent)}"))

    async def handle_matrix_edit(self, edit: MatrixEdit) -> None:
        self.edits.append(edit)


class _Notices:
    def __init__(self) -> None:
        self.failures: list[tuple[str, str]] = []
        self.sent: list[str] = []

    async def failure(self, room_id: str, event_id: str, reason: str, **_: Any) -> None:
        self.failures.append((event_id, reason))

    async def send(self, room_id: str, text: str, **kwargs: Any) -> None:
        self.sent.append(text)


class _Sender:
    async def displayname(self, room_id: str, user: str) -> str:
        return "Sam"


class _Canned:
    """Expands ``/thanks``; refuses anything with ``secret`` in it."""

    async def check(self, outgoing: Outgoing) -> Verdict:
        if "secret" in outgoing.text:
            return Refuse("internal words may not leave the company")
        if outgoing.text.startswith("Sam: //"):
            return Internal()
        if outgoing.text.endswith("/thanks"):
            return Rewrite(outgoing.text.replace("/thanks", "Thank you for your patience!"))
        return PASS


class _Delivered:
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def on_delivered(self, outgoing: Outgoing) -> None:
        self.seen.append(outgoing.text)


DELIVERED = _Delivered()


def _handler(capabilities: Capabilities) -> tuple[StaffHandler, _Connector, _Notices]:
    config = parse(example())
    connector = _Connector(capabilities)
    notices = _Notices()
    seams = Seams(config, None)  # type: ignore[arg-type]
    seams.add_outbound_gate(_Canned())
    seams.add_delivered_hook(DELIVERED)
    fake: Any = {"acc": connector}
    handler = StaffHandler(config, _Sender(), fake, notices, seams)  # type: ignore[arg-type]
    return handler, connector, notices


def _message(
    event_id: str, body: str, html: str | None = None, reply_to: str | None = None
) -> StaffMessage:
    return StaffMessage(ROOM, STAFF, event_id, None, "m.text", body, html, reply_to, None, False)


@pytest.fixture
async def portal(database: object) -> Portal:
    portal = Portal("acc", "chat", ROOM, created_at=0)
    await portal.insert()
    return portal


async def _item() -> QueueItem:
    return await QueueItem.enqueue("rm:acc/chat", "matrix", {})


async def test_gates_rewrite_and_refuse_staff_messages(portal: Portal) -> None:
    handler, connector, notices = _handler(Capabilities(html=True))
    await handler.message(await _item(), portal, _message("$a", "/thanks"))
    await handler.message(await _item(), portal, _message("$b", "the secret plan"))
    assert [m.text for m in connector.sent] == ["Sam: Thank you for your patience!"]
    assert notices.sent == ["↪️ Sent as:\nSam: Thank you for your patience!"]
    assert notices.failures == [("$b", "internal words may not leave the company")]
    # The room's event is mapped to what the customer got; the refused one to nothing.
    assert await Message.get_by_event(ROOM, "$a") is not None
    assert await Message.get_by_event(ROOM, "$b") is None


async def test_html_only_for_a_channel_that_carries_it(portal: Portal) -> None:
    for html_channel in (True, False):
        handler, connector, _ = _handler(Capabilities(html=html_channel))
        event = _message(f"$h{html_channel}", "hi", "<b>hi</b>")
        await handler.message(await _item(), portal, event)
        assert connector.sent[0].html == ("Sam: <b>hi</b>" if html_channel else None)


async def test_an_edit_longer_than_the_channel_takes_is_refused(portal: Portal) -> None:
    handler, connector, notices = _handler(Capabilities(max_text_length=20))
    await handler.message(await _item(), portal, _message("$orig", "short"))
    edit = StaffEdit(ROOM, STAFF, "$edit", None, "$orig", "x" * 30, None)
    await handler.edit(await _item(), portal, edit)
    assert connector.edits == []
    assert notices.failures and "at most 20 characters" in notices.failures[0][1]
    ok = StaffEdit(ROOM, STAFF, "$edit2", None, "$orig", "fine", None)
    await handler.edit(await _item(), portal, ok)
    assert [e.text for e in connector.edits] == ["Sam: fine"]


async def test_a_note_stays_in_matrix_and_hooks_see_what_went_out(portal: Portal) -> None:
    DELIVERED.seen.clear()
    handler, connector, notices = _handler(Capabilities())
    await handler.message(await _item(), portal, _message("$n", "// call him back tomorrow"))
    await handler.message(await _item(), portal, _message("$m", "Hello"))
    assert [m.text for m in connector.sent] == ["Sam: Hello"]
    assert notices.failures == []  # a note is no failed delivery
    assert DELIVERED.seen == ["Sam: Hello"]


async def test_a_reply_to_what_was_not_bridged_loses_its_fallback(portal: Portal) -> None:
    """A reply to a bot's notice has no remote message to quote; its plain-text fallback (the
    notice) is not for the customer, and it must not hide a note's marker either."""
    handler, connector, notices = _handler(Capabilities())
    quote = "> <@bot:example.com> New conversation for team support\n\n"
    await handler.message(
        await _item(), portal, _message("$rn", quote + "// mine", reply_to="$notice")
    )
    await handler.message(
        await _item(), portal, _message("$rm", quote + "Hello", reply_to="$notice")
    )
    assert [m.text for m in connector.sent] == ["Sam: Hello"]
    assert notices.failures == []
