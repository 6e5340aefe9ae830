"""``link`` and ``unlink``: bridge an existing room to a remote chat, or stop."""

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


COMMANDS = (
    Command(
        "link", "<account> <remote chat>", "admin", "bridge this room to a remote chat", _link
    ),
    Command("unlink", "", "admin", "stop bridging this room", _unlink),
)
