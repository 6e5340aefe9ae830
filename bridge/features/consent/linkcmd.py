"""``consent link <list> [account]``: the links and QR codes of a list, for a poster or a web
page. For each channel account the list is offered on (or the one named): a Telegram
account's deep link (``t.me/<bot>?start=<payload>``), a WhatsApp account's click-to-chat link
(``wa.me/<number>?text=<keyword>``), an email account's sign-up form page. The answer lists
the links; each also comes as a PNG QR code posted into the room. An account whose public
address (bot username, number) the bridge does not know is named with the reason; other
channel types have no link.

It is a sub-command of ``consent`` (commands are found by their first word):
``with_link`` wraps the ``consent`` command so that ``link`` comes here and everything else
goes on as before."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterable

import segno

from ...config import Config
from ...seams import Command, CommandContext
from ...types import AccountID
from .config import ConsentConfig, ConsentList
from .links import Links

USAGE = "Usage: consent link <list> [account]"
LINKED = ("telegram", "whatsapp", "email")


def qr_png(url: str) -> bytes:
    buf = io.BytesIO()
    segno.make(url).save(buf, kind="png", scale=8)
    return buf.getvalue()


class LinkCommand:
    def __init__(self, options: ConsentConfig, config: Config) -> None:
        self.options = options
        self.config = config
        self.links = Links(options)

    def accounts(self, item: ConsentList) -> list[str]:
        """The accounts ``item`` is offered on that have a link, in config order."""
        return [
            account for account, channel in self.config.channels.items()
            if item.offered(account) and channel.type in LINKED
        ]  # fmt: skip

    def link(self, ctx: CommandContext, item: ConsentList, account: str) -> str:
        """The account's link, or the reason there is none (starting with a space)."""
        kind = self.config.channels[AccountID(account)].type
        if kind == "email":
            return self.links.form(item.name)
        address = ctx.services.public_address(account)
        if not address:
            return f" (no link: the bridge does not know the {kind} account's public address)"
        if kind == "telegram":
            return self.links.telegram(address.lstrip("@"), item)
        return self.links.whatsapp(address, item)

    async def run(self, ctx: CommandContext, args: list[str]) -> str:
        if not args or len(args) > 2:
            return USAGE
        item = self.options.lists.get(args[0])
        if item is None:
            known = ", ".join(self.options.lists) or "none"
            return f"There is no consent list {args[0]!r} (lists: {known}). {USAGE}"
        accounts = self.accounts(item)
        if len(args) == 2:
            if args[1] not in self.config.channels:
                return f"There is no channel account {args[1]!r}. {USAGE}"
            if args[1] not in accounts:
                return f"The list {item.name} has no link on {args[1]}."
            accounts = [args[1]]
        if not accounts:
            return f"The list {item.name} is offered on no Telegram, WhatsApp or email account."
        lines = [f"🔗 Links of {item.title} ({item.name}):"]
        for account in accounts:
            url = self.link(ctx, item, account)
            title = ctx.services.channel_title(account)
            if url.startswith(" "):
                lines.append(f"• {account} ({title}){url}")
                continue
            lines.append(f"• {account} ({title}): {url}")
            posted = await ctx.services.post_file(
                ctx.room_id, qr_png(url), f"{item.name}-{account}.png", "image/png",
                txn=f"consent-link:{ctx.event_id}:{account}",
            )  # fmt: skip
            if posted is None:
                lines.append("  (the homeserver refused its QR code; try again)")
        return "\n".join(lines)


def with_link(commands: Iterable[Command], link: LinkCommand) -> list[Command]:
    """``commands`` with ``consent link ...`` handled by ``link``."""

    def wrap(command: Command) -> Command:
        async def run(ctx: CommandContext, args: list[str]) -> str:
            if args and args[0].lower() == "link":
                return await link.run(ctx, args[1:])
            return await command.run(ctx, args)

        return dataclasses.replace(command, args=f"link <list> [account] | {command.args}",
                                   run=run)  # fmt: skip

    return [wrap(c) if c.name == "consent" else c for c in commands]
