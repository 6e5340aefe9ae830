"""Management commands answered by the bridge bot."""

from __future__ import annotations

import html
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mautrix.types import EventID, Membership, MemberStateEventContent, RoomID

from ..db import Portal
from .deadletters import deadletters_command
from .templates import template_command

if TYPE_CHECKING:
    from .bridge import Bridge


@dataclass(frozen=True)
class Command:
    name: str
    args: str
    level: str
    help: str
    run: Callable[[CommandContext, list[str]], Awaitable[str]]


@dataclass
class CommandContext:
    bridge: Bridge
    room_id: RoomID
    event_id: EventID
    sender: str
    portal: Portal | None

    def level(self, account: str | None = None) -> str:
        """The sender's level on ``account`` (without one: their highest on any account)."""
        return self.bridge.config.permission_level(self.sender, account)

    def refusal(self, account: str, needed: str = "staff") -> str | None:
        """Why the sender may not run a command on ``account``, or None if they may. An
        account they may not see is answered like one that does not exist."""
        level = self.level(account)
        if account not in self.bridge.connectors or level == "none":
            return f"There is no channel account {account!r} you may use. See `channels`."
        if not _allowed(level, needed):
            return f"You need the {needed} permission on {account} for this."
        return None


async def _help(ctx: CommandContext, _: list[str]) -> str:
    level = ctx.level()
    prefix = ctx.bridge.config.command_prefix
    lines = [f"Commands (prefix them with {prefix} in portal rooms):"]
    for cmd in COMMANDS.values():
        if _allowed(level, cmd.level):
            lines.append(f"• {cmd.name} {cmd.args}".rstrip() + f" — {cmd.help}")
    return "\n".join(lines)


async def _channels(ctx: CommandContext, _: list[str]) -> str:
    visible = ctx.bridge.config.visible_accounts(ctx.sender)
    connectors = [(a, c) for a, c in ctx.bridge.connectors.items() if a in visible]
    if not connectors:
        return "No channel accounts are configured for you."
    lines = ["Channel accounts:"]
    for account, connector in connectors:
        state = connector.state
        count = len(await Portal.all(account))
        detail = f" ({state.message})" if state.message else ""
        lines.append(
            f"• {account} — {connector.title}, {state.kind.value}{detail}, {count} portal(s)"
        )
    return "\n".join(lines)


async def _portals(ctx: CommandContext, args: list[str]) -> str:
    account = args[0] if args else None
    if account is not None:
        refused = ctx.refusal(account)
        if refused:
            return refused
        portals = await Portal.all(account)
    else:
        visible = ctx.bridge.config.visible_accounts(ctx.sender)
        portals = [p for p in await Portal.all(None) if p.account in visible]
    if not portals:
        return "No portals" + (f" for {account}." if account else ".")
    lines = [f"{len(portals)} portal(s):"]
    for p in portals[:100]:
        lines.append(f"• {p.account} / {p.chat} — {p.name or '(no name)'} — {p.room_id}")
    if len(portals) > 100:
        lines.append(f"… and {len(portals) - 100} more")
    return "\n".join(lines)


async def _link(ctx: CommandContext, args: list[str]) -> str:
    if len(args) != 2:
        return "Usage: link <account> <remote chat id>"
    account, chat = args
    refused = ctx.refusal(account, "admin")
    if refused:
        return refused
    if ctx.portal is not None:
        return f"This room is already linked to {ctx.portal.account} / {ctx.portal.chat}."
    existing = await Portal.get(account, chat)
    if existing is not None and existing.room_id:
        return f"{account} / {chat} is already bridged to {existing.room_id}; unlink it first."
    # Linking brings the conversation to everyone in the room, as an invite would.
    try:
        members = await ctx.bridge.bot.get_members(ctx.room_id)
    except Exception as e:
        return f"Not linked: the members of this room could not be listed: {e}"
    unseen = sorted(
        str(m.state_key)
        for m in members
        if isinstance(m.content, MemberStateEventContent)
        and m.content.membership in (Membership.JOIN, Membership.INVITE)
        and not ctx.bridge.is_own(m.state_key)
        and ctx.bridge.config.permission_level(m.state_key, account) == "none"
    )
    if unseen:
        return (
            f"Not linked: {', '.join(unseen)} may not see the conversations of {account};"
            " remove them from this room first."
        )
    if existing is None:
        now = int(time.time() * 1000)
        await Portal(
            account, chat, ctx.room_id, metadata={"linked": True}, created_at=now
        ).insert()
    else:
        existing.room_id = ctx.room_id
        existing.metadata["linked"] = True
        await existing.save()
    return f"Linked this room to {account} / {chat}."


async def _unlink(ctx: CommandContext, _: list[str]) -> str:
    portal = ctx.portal
    if portal is None:
        return "This room is not a portal."
    refused = ctx.refusal(portal.account, "admin")
    if refused:
        return refused
    bridge = ctx.bridge
    # The portal alias would lead the next message of the chat back to this room.
    try:
        await bridge.bot.remove_room_alias(
            bridge.portals.alias_localpart(portal.account, portal.chat)
        )
    except Exception as e:
        return f"Not unlinked: the room alias of the conversation could not be removed: {e}"
    await portal.delete()
    answer = (
        f"Unlinked this room from {portal.account} / {portal.chat}. Nothing is bridged here any"
        " more; the next message of that conversation opens a new room."
    )
    try:
        members = await bridge.bot.get_joined_members(ctx.room_id)
    except Exception as e:
        return f"{answer} (The customer's Matrix users could not be listed to leave: {e})"
    for user in members:
        if bridge.ghosts.is_ghost(user):
            try:
                await bridge.ghosts.intent(user).leave_room(ctx.room_id)
            except Exception as e:
                answer += f" ({user} could not leave: {e})"
    return answer


async def _ping(ctx: CommandContext, _: list[str]) -> str:
    started = time.monotonic()
    try:
        duration = await ctx.bridge.bot.appservice_ping(ctx.bridge.config.as_id)
    except Exception as e:
        return f"Pong. The homeserver could not reach the bridge: {e}"
    took = (time.monotonic() - started) * 1000
    return f"Pong. Homeserver → bridge round trip {duration} ms (request {took:.0f} ms)."


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("help", "", "staff", "this list", _help),
        Command(
            "ping", "", "staff", "check that the homeserver and the bridge reach each other", _ping
        ),
        Command("channels", "", "staff", "channel accounts and their state", _channels),
        Command("portals", "[account]", "staff", "bridged conversations", _portals),
        Command(
            "link", "<account> <remote chat>", "admin", "bridge this room to a remote chat", _link
        ),
        Command("unlink", "", "admin", "stop bridging this room", _unlink),
        Command(
            "template",
            "[account] [phone] [name] [language] [parameters…]",
            "staff",
            "list or send pre-approved templates (WhatsApp), also to start a conversation",
            template_command,
        ),
        Command(
            "deadletters",
            "[retry <id>|all]",
            "admin",
            "list what the bridge gave up on, or queue it again",
            deadletters_command,
        ),
    )
}

_LEVELS = {"none": 0, "staff": 1, "admin": 2}


def _allowed(level: str, needed: str) -> bool:
    return _LEVELS.get(level, 0) >= _LEVELS[needed]


async def run_command(ctx: CommandContext, text: str) -> None:
    """Run ``text`` (without prefix) and answer in the room, replying to the command."""
    words = text.split()
    if not words:
        words = ["help"]
    cmd = COMMANDS.get(words[0].lower())
    level = ctx.bridge.config.permission_level(ctx.sender)
    if cmd is None:
        answer = f"Unknown command {words[0]!r}. Try `help`."
    elif not _allowed(level, cmd.level):
        answer = f"You need the {cmd.level} permission for {cmd.name}."
    else:
        answer = await cmd.run(ctx, words[1:])
    await ctx.bridge.notices.send(
        ctx.room_id,
        answer,
        reply_to=ctx.event_id,
        html_text=html.escape(answer).replace("\n", "<br>"),
    )
