"""Stand-ins for the parts of the inbox written beside this one (automatic replies, the note
and canned-reply gates, the canned-reply commands), with their interfaces, so the module can
be wired and tested before they are merged. ``module.py`` imports the real ones when present;
delete this file once they are."""

from __future__ import annotations

from collections.abc import Mapping

from ...seams import PASS, Command, Inbound, Outgoing, Services, Verdict
from .config import InboxConfig
from .hours import BusinessHours


class AutoReplies:
    def __init__(
        self,
        services: Services,
        config: InboxConfig,
        hours: Mapping[str, BusinessHours | None],
    ) -> None:
        self.services = services
        self.config = config
        self.hours = hours

    async def after_inbound(
        self, inbound: Inbound, team: str, *, first_contact: bool, reopened: bool
    ) -> None:
        return None


class CannedGate:
    def __init__(self, services: Services, config: InboxConfig) -> None:
        self.services = services
        self.config = config

    async def check(self, outgoing: Outgoing) -> Verdict:
        return PASS


class NoteGate:
    async def check(self, outgoing: Outgoing) -> Verdict:
        return PASS


CANNED_COMMANDS: tuple[Command, ...] = ()
