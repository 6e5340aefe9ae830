"""``help``, ``ping``, ``channels`` and ``portals``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...seams import Command
from ..services.errors import allowed

if TYPE_CHECKING:
    from . import CommandContext


async def _help(ctx: CommandContext, _: list[str]) -> str:
    level = ctx.level()
    lines = [f"Commands (prefix them with {ctx.prefix} in portal rooms):"]
    for cmd in ctx.commands.values():
        if allowed(level, cmd.level):
            lines.append(f"• {cmd.name} {cmd.args}".rstrip() + f" — {cmd.help}")
    return "\n".join(lines)


async def _channels(ctx: CommandContext, _: list[str]) -> str:
    channels = await ctx.services.channels(ctx.sender)
    if not channels:
        return "No channel accounts are configured for you."
    lines = ["Channel accounts:"]
    for c in channels:
        detail = f" ({c.state.message})" if c.state.message else ""
        lines.append(
            f"• {c.account} — {c.title}, {c.state.kind.value}{detail}, {c.portals} portal(s)"
        )
    return "\n".join(lines)


async def _portals(ctx: CommandContext, args: list[str]) -> str:
    account = args[0] if args else None
    portals = await ctx.services.conversations(ctx.sender, account)
    if not portals:
        return "No portals" + (f" for {account}." if account else ".")
    lines = [f"{len(portals)} portal(s):"]
    for p in portals[:100]:
        lines.append(f"• {p.account} / {p.chat} — {p.name or '(no name)'} — {p.room_id}")
    if len(portals) > 100:
        lines.append(f"… and {len(portals) - 100} more")
    return "\n".join(lines)


async def _ping(ctx: CommandContext, _: list[str]) -> str:
    try:
        duration, took = await ctx.services.ping()
    except Exception as e:
        return f"Pong. The homeserver could not reach the bridge: {e}"
    return f"Pong. Homeserver → bridge round trip {duration} ms (request {took:.0f} ms)."


COMMANDS = (
    Command("help", "", "staff", "this list", _help),
    Command(
        "ping", "", "staff", "check that the homeserver and the bridge reach each other", _ping
    ),
    Command("channels", "", "staff", "channel accounts and their state", _channels),
    Command("portals", "[account]", "staff", "bridged conversations", _portals),
)
