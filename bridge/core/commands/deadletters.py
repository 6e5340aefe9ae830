"""``deadletters``: list what the bridge gave up on, or queue it again."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ...seams import Command
from ..deadletters import short

if TYPE_CHECKING:
    from . import CommandContext

LISTED = 50
"""Dead letters shown by ``deadletters``."""


async def deadletters_command(ctx: CommandContext, args: list[str]) -> str:
    if not args:
        return await _list(ctx)
    if args[0].lower() == "retry" and len(args) == 2:
        return await _retry(ctx, args[1])
    return "Usage: deadletters (list them) or deadletters retry <id>|all"


async def _list(ctx: CommandContext) -> str:
    dead_letters = await ctx.services.dead_letters(ctx.sender)
    if not dead_letters:
        return "No dead letters."
    lines = [f"{len(dead_letters)} dead letter(s):"]
    for dead in dead_letters[:LISTED]:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(dead.failed_at / 1000))
        where = dead.room_id or dead.queue_key
        lines.append(
            f"• {dead.id} — {dead.kind} in {where}, {when}, {dead.attempts} attempt(s): "
            f"{short(dead.error, 300)}"
        )
    if len(dead_letters) > LISTED:
        lines.append(f"… and {len(dead_letters) - LISTED} more")
    return "\n".join(lines)


async def _retry(ctx: CommandContext, which: str) -> str:
    visible = await ctx.services.dead_letters(ctx.sender)
    if which.lower() == "all":
        targets = visible
    elif which.isdigit():
        targets = [dead for dead in visible if dead.id == int(which)]
        if not targets:
            return f"There is no dead letter {which}. See `deadletters`."
    else:
        return "Usage: deadletters retry <id>|all"
    retried = await ctx.services.retry_dead_letters(targets)
    if not retried:
        return "Nothing to retry."
    return f"Queued again: {', '.join(str(i) for i in retried)}."


COMMANDS = (
    Command(
        "deadletters",
        "[retry <id>|all]",
        "admin",
        "list what the bridge gave up on, or queue it again",
        deadletters_command,
    ),
)
