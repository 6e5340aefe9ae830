"""The ``template`` command: list a channel's approved templates and send one, in a portal or
to start a new conversation with an address (a phone number). Sending queues the template as
a bridge-initiated message of the conversation; it answers once the template went out."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from ...connector import NetworkConnector, Template, TemplateHandler
from ...seams import Command
from ...types import RemoteChatID
from ..services.messages import Origin

if TYPE_CHECKING:
    from . import CommandContext

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
    if ctx.portal is not None:
        account, chat = ctx.portal.account, RemoteChatID(ctx.portal.chat)
    else:
        if not words:
            return USAGE
        account, words = words[0], words[1:]
        chat = None
    connector, templates = await ctx.services.templates(ctx.sender, account)
    assert isinstance(connector, TemplateHandler)
    address = None
    if chat is None and len(words) >= 1:
        try:
            chat = connector.chat_for_address(words[0])
        except ValueError as e:
            return str(e)
        address, words = words[0], words[1:]
    if not words:
        return _listing(connector, templates)
    template, params = pick(templates, words[0], words[1:])
    if template is None:
        return f"No approved template {words[0]!r}. " + _listing(connector, templates)
    origin = Origin(ctx.room_id, ctx.event_id, ctx.sender)
    await ctx.services.template_to(account, chat, address, template, params, origin)
    return ""  # answered once it was sent (or why not)


def _listing(connector: NetworkConnector, templates: list[Template]) -> str:
    if not templates:
        return f"{connector.title} has no approved templates."
    lines = [f"Approved templates of {connector.account_id}:"]
    for t in templates:
        lines.append(f"• {t.name} ({t.language}, {t.parameters} parameter(s)): {t.text}")
    return "\n".join(lines)


def pick(
    templates: list[Template], name: str, rest: list[str]
) -> tuple[Template | None, list[str]]:
    """The template ``name`` (in the language ``rest`` starts with, if one is), and the rest:
    its parameters."""
    candidates = [t for t in templates if t.name == name]
    if rest:
        by_language = [t for t in candidates if t.language == rest[0]]
        if by_language:
            return by_language[0], rest[1:]
    return (candidates[0] if candidates else None), rest


COMMANDS = (
    Command(
        "template",
        "[account] [phone] [name] [language] [parameters…]",
        "staff",
        "list or send pre-approved templates (WhatsApp), also to start a conversation",
        template_command,
    ),
)
