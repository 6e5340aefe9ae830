"""The team inbox as a feature module: its ``features.inbox`` section checked at start-up, and
its hooks, gates, commands, periodic job and room namer (the status in the room list)
registered with the seams::

    features:
      inbox:
        teams:
          support: {members: ["@ann:example.com"], assignment: round_robin, bot: helpbot}
        accounts: {support-webhook: support}
        routing: [{keywords: [invoice], team: billing}]
        tick: 30s                  # how often snoozes end and waiting conversations are assigned
        bots:                      # bots answering first (see bot.py): a Matrix user or a URL
          helpbot: {matrix_user: "@helpbot:example.com"}
          faq: {url: "https://faq.example.com/bridge", secret: "s3cret", timeout: 10s}
        account_bots: {support-webhook: faq}   # a channel account's bot (before its team's)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from ...config import Config
from ...seams import PeriodicJob, Seams
from .api import add_operations
from .assignment import Assignment
from .bot import Bots
from .bot_commands import BotCommands
from .canned_commands import canned_commands
from .commands import InboxCommands
from .config import InboxConfig, parse_inbox_config
from .desk import Desk
from .gates import CannedGate, NoteGate
from .hooks import InboxHooks
from .hours import BusinessHours, parse_business_hours
from .jobs import report_counts, tick
from .replies import AutoReplies
from .rooms import TeamRoomDesk
from .service_commands import ServiceCommands
from .transcript import Transcripts


@dataclass(frozen=True)
class InboxOptions:
    config: InboxConfig
    hours: Mapping[str, BusinessHours | None]
    """Team -> its business hours; None: always open."""


class Inbox:
    name = "inbox"

    def parse_config(self, section: Any, config: Config) -> InboxOptions | None:
        inbox = parse_inbox_config(section, config)
        if inbox is None:
            return None
        hours = {
            name: None
            if team.hours_raw is None
            else parse_business_hours(team.hours_raw, f"features.inbox.teams.{name}.hours")
            for name, team in inbox.teams.items()
        }
        return InboxOptions(inbox, hours)

    def setup(self, seams: Seams, options: InboxOptions) -> None:
        services, config = seams.services, options.config
        rooms = TeamRoomDesk(services, config, seams.config.hs_domain)
        desk = Desk(services, config, Assignment(config.teams.values()), rooms)
        seams.set_room_namer(rooms.namer)
        bots = Bots(desk)
        hooks = InboxHooks(desk, AutoReplies(services, config, options.hours), bots)
        seams.add_inbound_hook(hooks)
        seams.add_delivered_hook(hooks)
        prefix = seams.config.sender_prefix_template
        seams.add_outbound_gate(NoteGate(prefix))  # first: a note never reaches another gate
        seams.add_outbound_gate(CannedGate(services, config, prefix))
        inbox_commands = InboxCommands(desk, bots)
        add_operations(seams, desk, inbox_commands)
        commands = (
            *inbox_commands.commands(),
            *ServiceCommands(desk).commands(),
            *canned_commands(config),
            *BotCommands(bots).commands(),
            Transcripts(desk, seams.config).command(),
        )
        for command in commands:
            seams.add_command(command)
        seams.add_job(PeriodicJob("inbox", config.tick, partial(tick, desk), at_start=True))
        hooks.metrics = seams.metrics
        if seams.config.metrics is not None:
            report = partial(report_counts, seams.metrics, list(config.teams))
            seams.add_job(PeriodicJob("inbox-metrics", seams.config.metrics.refresh, report, True))


INBOX = Inbox()
