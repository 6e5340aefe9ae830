"""``link`` and ``unlink``: bridge an existing room to a remote chat, or stop; ``start``: a new
conversation with an address."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...seams import Command

if TYPE_CHECKING:
    from . import CommandContext


async def _link(ctx: CommandContext, args: list[str]) -> str:
    if len(args) != 2:
        return "Usage: link <account> <remote chat id>"
    account, chat = args
    return await ctx.services.link(ctx.sender, ctx.room_id, account, chat)


async def _unlink(ctx: CommandContext, _: list[str]) -> str:
    if ctx.portal is None:
        return "This room is not a portal."
    return await ctx.services.unlink(ctx.sender, ctx.portal)


async def _start(ctx: CommandContext, args: list[str]) -> str:
    if len(args) != 2:
        return "Usage: start <account> <address>"
    account, address = args
    portal, visible = await ctx.services.start_by_address(ctx.sender, account, address)
    if not visible:
        return "Started; you may not see that conversation."
    return f"The conversation with {address} is in {portal.room_id}; you are invited."


COMMANDS = (
    Command(
        "start",
        "<account> <address>",
        "staff",
        "start a conversation with a phone number or mail address",
        _start,
    ),  # fmt: skip
    Command(
        "link", "<account> <remote chat>", "admin", "bridge this room to a remote chat", _link
    ),
    Command("unlink", "", "admin", "stop bridging this room", _unlink),
)
