"""Canned replies kept by the bridge, and the ``canned`` command that manages them.

A team's replies are those of its YAML ``canned`` section (read from the config as written,
never copied into the database) and those added with ``canned add``: an added one with the
code of a YAML one overrides it, and ``canned remove`` brings the YAML text back (a YAML
reply itself is changed only in the config). A staff member's own replies (``--mine``) exist
only in the database; when they send a short form, their own reply wins over their team's.

Commands, in a portal room (the conversation's team) or anywhere with ``--team <name>``::

    canned list [--team <name>]
    canned show <code> [--team <name>]
    canned add [--team <name> | --mine] <code> <text…>
    canned remove [--team <name> | --mine] <code>

Adding or removing a team's reply needs a member or lead of the team, or an admin."""

from __future__ import annotations

import time
from collections.abc import Callable

from ...db import InboxCanned, InboxConversation
from ...seams import Command, CommandContext
from .canned import CODE, PREFIX, placeholder_error
from .config import InboxConfig

USAGE = (
    "Usage: canned list [--team <name>] | canned show <code> [--team <name>] | "
    "canned add [--team <name> | --mine] <code> <text…> | "
    "canned remove [--team <name> | --mine] <code>"
)
MAX_TEXT = 4000


async def find_canned(config: InboxConfig, code: str, *, team: str, sender: str) -> str | None:
    """The text ``sender`` means by ``code`` in a conversation of ``team``: their own reply,
    else the team's added one, else the team's YAML one; None if there is none."""
    for row_team, owner in ((None, sender), (team, None)):
        row = await InboxCanned.get(code, team=row_team, owner=owner)
        if row is not None:
            return row.text
    settings = config.teams.get(team)
    return settings.canned.get(code) if settings is not None else None


async def team_canned(config: InboxConfig, team: str) -> dict[str, str]:
    """Every reply of ``team`` by code: the YAML ones, overridden by the added ones."""
    settings = config.teams.get(team)
    replies = dict(settings.canned) if settings is not None else {}
    replies.update({row.code: row.text for row in await InboxCanned.all(team=team)})
    return dict(sorted(replies.items()))


class _Usage(Exception):
    """Wrong arguments: answer with ``USAGE`` (or the message given)."""


class CannedCommand:
    def __init__(self, config: InboxConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock

    async def run(self, ctx: CommandContext, args: list[str]) -> str:
        try:
            return await self._run(ctx, args)
        except _Usage as e:
            return str(e) or USAGE

    async def _run(self, ctx: CommandContext, args: list[str]) -> str:
        if not args:
            raise _Usage
        action, rest = args[0].lower(), args[1:]
        team, mine, rest = self._options(rest, anywhere=action != "add")
        if action == "list" and not rest and not mine:
            return await self._list(ctx, await self._team(ctx, team, required=False))
        if action == "show" and len(rest) == 1 and not mine:
            return await self._show(ctx, await self._team(ctx, team, required=False), rest[0])
        if action == "add" and len(rest) >= 2:
            return await self._add(ctx, team, mine, _code(rest[0]), " ".join(rest[1:]))
        if action == "remove" and len(rest) == 1:
            return await self._remove(ctx, team, mine, _code(rest[0]))
        raise _Usage

    def _options(self, args: list[str], *, anywhere: bool) -> tuple[str | None, bool, list[str]]:
        """``--team <name>`` and ``--mine``: before the other arguments, or ``anywhere``
        (not in an added text)."""
        team, mine, words = None, False, []
        args = list(args)
        while args:
            word = args.pop(0)
            if not word.startswith("--"):
                words.append(word)
                if not anywhere:
                    return team, mine, words + args
            elif word.lower() == "--mine" and team is None and not mine:
                mine = True
            elif word.lower() == "--team" and args and not mine and team is None:
                team = args.pop(0)
            else:
                raise _Usage
        return team, mine, words

    async def _team(self, ctx: CommandContext, named: str | None, *, required: bool) -> str | None:
        if named is not None:
            if named not in self.config.teams:
                raise _Usage(
                    f"There is no team {named!r} (teams: {', '.join(self.config.teams)})."
                )
            return named
        ref = ctx.conversation
        conversation = None if ref is None else await InboxConversation.get(ref.account, ref.chat)
        if conversation is None and required:
            raise _Usage("Name the team with --team <name> (or use --mine), or run this in a "
                         "conversation's room.")  # fmt: skip
        return None if conversation is None else conversation.team

    async def _list(self, ctx: CommandContext, team: str | None) -> str:
        lines = []
        own = await InboxCanned.all(owner=ctx.sender)
        if own:
            lines.append("Your own canned replies:")
            lines += [f"• {PREFIX}{row.code} — {_short(row.text)}" for row in own]
        if team is not None:
            replies = await team_canned(self.config, team)
            lines.append(
                f"Canned replies of team {team}:" if replies else f"Team {team} has none."
            )
            lines += [f"• {PREFIX}{code} — {_short(text)}" for code, text in replies.items()]
        if not lines:
            return "You have no canned replies (name a team with --team <name>)."
        return "\n".join(lines)

    async def _show(self, ctx: CommandContext, team: str | None, code: str) -> str:
        code = _code(code)
        own = await InboxCanned.get(code, owner=ctx.sender)
        if own is not None:
            return f"{PREFIX}{code} (your own):\n{own.text}"
        if team is not None:
            text = (await team_canned(self.config, team)).get(code)
            if text is not None:
                return f"{PREFIX}{code} (team {team}):\n{text}"
        return f"No canned reply {PREFIX}{code}; see canned list."

    async def _add(
        self, ctx: CommandContext, named: str | None, mine: bool, code: str, text: str
    ) -> str:
        error = placeholder_error(text)
        if error:
            return f"Not added: {error}."
        if len(text) > MAX_TEXT:
            return f"Not added: a canned reply has at most {MAX_TEXT} characters."
        team = None if mine else await self._may_change(ctx, named)
        row = InboxCanned(
            team, ctx.sender if mine else None, code, text, ctx.sender, int(self.clock() * 1000)
        )
        await row.save()
        return f"Saved {PREFIX}{code} " + ("as your own." if mine else f"for team {team}.")

    async def _remove(self, ctx: CommandContext, named: str | None, mine: bool, code: str) -> str:
        team = None if mine else await self._may_change(ctx, named)
        removed = await InboxCanned.remove(code, team=team, owner=ctx.sender if mine else None)
        settings = self.config.teams.get(team) if team is not None else None
        in_yaml = settings is not None and code in settings.canned
        if removed:
            return f"Removed {PREFIX}{code}" + (
                " (the config's text applies again)." if in_yaml else "."
            )
        if in_yaml:
            return f"{PREFIX}{code} of team {team} is in the config; change it there."
        return f"No canned reply {PREFIX}{code} to remove; see canned list."

    async def _may_change(self, ctx: CommandContext, named: str | None) -> str:
        """The team whose replies the sender changes, if they may."""
        team = await self._team(ctx, named, required=True)
        assert team is not None
        settings = self.config.teams[team]
        if ctx.sender not in settings.staff and ctx.services.level(ctx.sender) != "admin":
            raise _Usage(f"Only members and leads of team {team} (or admins) change its replies.")
        return team


def _code(word: str) -> str:
    code = word.removeprefix(PREFIX).lower()
    if not CODE.match(code):
        raise _Usage(
            f"{word!r} is not a short code (lower-case letters, digits, '-' and '_', 32 at most)."
        )
    return code


def _short(text: str, width: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def canned_commands(config: InboxConfig) -> tuple[Command, ...]:
    """The ``canned`` command, answering from ``config``."""
    return (_command(CannedCommand(config)),)


def _command(command: CannedCommand) -> Command:
    return Command(
        "canned", "list | show | add | remove …", "staff",
        "canned replies (!code in a portal room sends one)", command.run,
    )  # fmt: skip
