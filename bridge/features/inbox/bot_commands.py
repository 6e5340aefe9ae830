"""``handover [team] [note...]``: the humans take over a conversation a bot answers, sent in
its room by the Matrix bot user that owns it (``!bridge handover billing wants a refund``) or
by a member or lead of its team (or an admin). A first word naming a configured team moves the
conversation there; the rest is a note for the staff. The answer is the hand-over's notice."""

from __future__ import annotations

from ...db.inbox import InboxConversation
from ...seams import Command, CommandContext
from .bot import Bots, HandOver

USAGE = "Usage: handover [team] [note...] (in the room of a conversation a bot answers)"


class BotCommands:
    def __init__(self, bots: Bots) -> None:
        self.bots = bots

    def commands(self) -> tuple[Command, ...]:
        return (
            Command("handover", "[team] [note...]", "staff",
                    "give a conversation a bot answers to the humans", self.handover),
        )  # fmt: skip

    async def handover(self, ctx: CommandContext, args: list[str]) -> str:
        ref = ctx.conversation
        if ref is None or ref.room_id is None:
            return USAGE
        row = await InboxConversation.get(ref.account, ref.chat)
        if row is None or row.with_bot is None:
            return f"No bot answers this conversation. {USAGE}"
        desk = self.bots.desk
        bot = self.bots.bot(row)
        is_bot = bot is not None and bot.matrix_user == ctx.sender
        if not is_bot and not desk.may_act(ctx.sender, row.team, row.account):
            return f"Only {row.with_bot} or the members of team {row.team} may do this."
        order = HandOver(ref, row, f"command:{ctx.event_id}")
        if args and desk.team(args[0]) is not None:
            order.team, args = args[0], args[1:]
        order.note = " ".join(args) or None
        who = await desk.name(ctx.room_id, ctx.sender)
        what = "handed over" if is_bot else f"took this conversation over from {row.with_bot}"
        text = await self.bots.hand_over(order, f"🤖 {who} {what}", post=False)
        return text or "The humans have this conversation already."
