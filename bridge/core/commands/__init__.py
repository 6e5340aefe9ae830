"""Management commands answered by the bridge bot: one module per group, each calling the
services layer (``core/services``), never the core's handlers. Feature modules add commands
through ``bridge.seams.Seams.add_command``."""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from ...db import Portal
from ...seams import AuditRecord, Command, ConversationRef
from ...types import AccountID, RemoteChatID
from ..notices import Notices
from ..services import ServiceError, Services
from ..services.errors import allowed
from . import deadletters, general, rooms, templates


@dataclass
class CommandContext:
    services: Services
    room_id: str
    event_id: str
    sender: str
    portal: Portal | None
    commands: dict[str, Command]

    @property
    def conversation(self) -> ConversationRef | None:
        portal = self.portal
        if portal is None:
            return None
        return ConversationRef(
            AccountID(portal.account), RemoteChatID(portal.chat), portal.room_id
        )

    @property
    def prefix(self) -> str:
        return self.services.config.command_prefix

    def level(self, account: str | None = None) -> str:
        """The sender's level on ``account`` (without one: their highest on any account)."""
        return self.services.level(self.sender, account)


CORE_COMMANDS: tuple[Command, ...] = (
    *general.COMMANDS,
    *rooms.COMMANDS,
    *templates.COMMANDS,
    *deadletters.COMMANDS,
)


class CommandRunner:
    def __init__(
        self,
        services: Services,
        notices: Notices,
        extra: Iterable[Command],
        audit: Callable[[AuditRecord], Awaitable[None]] | None = None,
    ) -> None:
        self.services = services
        self.notices = notices
        self.commands = {c.name: c for c in (*CORE_COMMANDS, *extra)}
        self.audit = audit

    async def run(self, room_id: str, event_id: str, sender: str, portal: Portal | None,
                  text: str) -> None:  # fmt: skip
        """Run ``text`` (without prefix) and answer in the room, replying to the command. A
        command that answers later itself (a template, once sent) returns an empty answer."""
        ctx = CommandContext(self.services, room_id, event_id, sender, portal, self.commands)
        words = text.split() or ["help"]
        cmd = self.commands.get(words[0].lower())
        level = self.services.level(sender)
        if cmd is None:
            answer = f"Unknown command {words[0]!r}. Try `help`."
        elif not allowed(level, cmd.level):
            answer = f"You need the {cmd.level} permission for {cmd.name}."
        else:
            try:
                answer = await cmd.run(ctx, words[1:])
            except ServiceError as e:
                answer = str(e)
            if cmd.level == "admin" and not cmd.audited and self.audit is not None:
                await self.audit(_record(sender, cmd, words[1:], portal))
        if not answer:
            return
        await self.notices.send(
            room_id, answer, reply_to=event_id, html_text=html.escape(answer).replace("\n", "<br>")
        )


_ANGLED = re.compile(r"<[^>]*>")
_LITERAL = re.compile(r"[a-z][a-z-]*")


def _record(sender: str, cmd: Command, args: list[str], portal: Portal | None) -> AuditRecord:
    """An admin command for the audit log: its name, the words of its arguments that are its
    own sub-commands (the literal words of ``Command.args``: ``merge`` of ``merge <contact>
    <other>``; every other word, which may be a number, an address or a name, is left out, and
    so is the answer, which may echo them), and the room's customer as the person concerned."""
    literal = set(_LITERAL.findall(_ANGLED.sub(" ", cmd.args)))
    words = [w if w.lower() in literal else "…" for w in args[:6]]
    people = ((portal.account, portal.chat),) if portal is not None else ()
    return AuditRecord(sender, f"command {cmd.name}", people, {"args": " ".join(words)})
