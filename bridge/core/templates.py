"""The ``template`` command: list a channel's approved templates and send one, in a portal or
to start a new conversation with an address (a phone number)."""

from __future__ import annotations

import asyncio
import shlex
import time
from typing import TYPE_CHECKING

from mautrix.types import RoomID, UserID

from ..connector import (
    DeliveryError,
    NetworkConnector,
    SentMessage,
    Template,
    TemplateHandler,
    TemporaryDeliveryError,
)
from ..db import Message
from ..events import RemoteChat, RemoteUser
from ..types import RemoteChatID, RemoteUserID

if TYPE_CHECKING:
    from .commands import CommandContext

RETRY_FOR = 60.0
"""How long a template refused for the moment (rate limits, an unreachable API) is retried
before the command answers that it was not sent: the staff member waits for the answer."""

USAGE = (
    "Usage: in a portal room `template` (list) or `template <name> [language] [parameters…]`;"
    " elsewhere `template <account>` or `template <account> <phone> <name> [language]"
    " [parameters…]`. Quote parameters with spaces."
)


async def template_command(ctx: CommandContext, args: list[str]) -> str:
    try:
        words = shlex.split(" ".join(args))
    except ValueError as e:
        return f"Cannot read the parameters: {e}"
    bridge = ctx.bridge
    if ctx.portal is not None:
        account, chat = ctx.portal.account, RemoteChatID(ctx.portal.chat)
    else:
        if not words:
            return USAGE
        account, words = words[0], words[1:]
        chat = None
    refused = ctx.refusal(account)
    if refused:
        return refused
    connector = bridge.connectors[account]
    if not isinstance(connector, TemplateHandler):
        return f"{connector.title} has no templates."
    try:
        templates = await connector.list_templates()
    except DeliveryError as e:
        return f"Could not fetch the templates: {e.reason}"
    address = None
    if chat is None and len(words) >= 1:
        try:
            chat = connector.chat_for_address(words[0])
        except ValueError as e:
            return str(e)
        address, words = words[0], words[1:]
    if not words:
        return _listing(connector, templates)
    template, params = _pick(templates, words)
    if template is None:
        return f"No approved template {words[0]!r}. " + _listing(connector, templates)
    if len(params) != template.parameters:
        return (
            f"{template.name} ({template.language}) takes {template.parameters} parameter(s),"
            f" not {len(params)}: {template.text}"
        )
    assert chat is not None
    return await _send(ctx, connector, chat, template, params, address or chat)


def _listing(connector: NetworkConnector, templates: list[Template]) -> str:
    if not templates:
        return f"{connector.title} has no approved templates."
    lines = [f"Approved templates of {connector.account_id}:"]
    for t in templates:
        lines.append(f"• {t.name} ({t.language}, {t.parameters} parameter(s)): {t.text}")
    return "\n".join(lines)


def _pick(templates: list[Template], words: list[str]) -> tuple[Template | None, list[str]]:
    name, rest = words[0], words[1:]
    candidates = [t for t in templates if t.name == name]
    if rest:
        by_language = [t for t in candidates if t.language == rest[0]]
        if by_language:
            return by_language[0], rest[1:]
    return (candidates[0] if candidates else None), rest


async def _send(
    ctx: CommandContext,
    connector: NetworkConnector,
    chat: RemoteChatID,
    template: Template,
    params: list[str],
    address: str,
) -> str:
    assert isinstance(connector, TemplateHandler)
    bridge = ctx.bridge
    account = connector.account_id
    try:
        sent = await _send_retrying(connector, chat, template, params)
    except DeliveryError as e:
        return f"Template not sent: {e.reason}"
    portal = ctx.portal
    invited = True
    if portal is None:
        user = RemoteUser(id=RemoteUserID(chat), displayname=address)
        intent = await bridge.ghosts.ensure(account, user, connector.title)
        portal = await bridge.portals.get_or_create(
            account, RemoteChat(id=chat, name=address), user, intent.mxid
        )
        assert portal.room_id
        invited = await bridge.portals.invite(RoomID(portal.room_id), UserID(ctx.sender), account)
    room_id = RoomID(portal.room_id or "")
    name = await bridge.matrix.displayname(room_id, UserID(ctx.sender))
    text = f"📨 Template {template.name} sent by {name}:\n{template.render(params)}"
    event_id = await bridge.notices.send(room_id, text)
    if event_id is not None:
        await Message(
            account, chat, sent.message_id, 0, event_id, room_id, None, ctx.sender,
            int((sent.timestamp or time.time()) * 1000),
        ).insert()  # fmt: skip
    if ctx.portal is not None:
        return "Sent."
    if not invited:
        return "Sent; you may not see that conversation."
    return f"Sent; the conversation is in {room_id}."


async def _send_retrying(
    connector: TemplateHandler, chat: RemoteChatID, template: Template, params: list[str]
) -> SentMessage:
    deadline = time.monotonic() + RETRY_FOR
    delay = 1.0
    while True:
        try:
            return await connector.send_template(chat, template, params)
        except TemporaryDeliveryError as e:
            wait = e.retry_after or delay
            if time.monotonic() + wait > deadline:
                raise
            await asyncio.sleep(wait)
            delay = min(delay * 2, 15.0)
