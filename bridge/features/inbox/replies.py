"""The team's automatic replies to a customer message: a welcome on the first contact, a
message when a resolved or snoozed conversation is reopened, and an away message while the
team's business hours say closed (at most once per conversation within the team's
``away_interval``). Each in the customer's language where the channel says it
(``metadata["routing"]["language"]``), else the team's ``default`` text.

They go out as bridge-initiated messages: queued after the customer's message, once (a
retried hook queues nothing new: the dedup key is derived from the event), and shown in the
room as the customer got them. An automatic message is never answered: not a notice (the
email connector marks automatic mail, RFC 3834, and bounces so) and not a mail the connector
found automatic (``metadata["portal"]["last_automatic"]``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from ...db import Conversation
from ...events import RemoteEvent, RemoteMessage
from ...seams import Inbound, Services
from .config import InboxConfig, TeamConfig
from .hours import BusinessHours

AWAY_AT = "inbox.away_at"
"""Conversation data: when (seconds since the epoch) the last away message was queued."""


def is_automatic(message: RemoteMessage) -> bool:
    """Whether ``message`` was sent by a machine (never answered automatically)."""
    portal = message.metadata.get("portal")
    return message.notice or (isinstance(portal, Mapping) and bool(portal.get("last_automatic")))


def language_of(event: RemoteEvent) -> str | None:
    routing = event.metadata.get("routing")
    language = routing.get("language") if isinstance(routing, Mapping) else None
    return language if isinstance(language, str) else None


class AutoReplies:
    def __init__(
        self,
        services: Services,
        config: InboxConfig,
        hours: Mapping[str, BusinessHours | None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.services = services
        self.config = config
        self.hours = hours
        self.clock = clock

    async def after_inbound(
        self, inbound: Inbound, team: str, *, first_contact: bool, reopened: bool
    ) -> None:
        """Queue the replies ``inbound`` (bridged into a conversation of ``team``) calls for."""
        event = inbound.event
        settings = self.config.teams.get(team)
        if settings is None or not isinstance(event, RemoteMessage) or is_automatic(event):
            return
        if first_contact:
            await self._send(inbound, settings, "welcome")
        if reopened:
            await self._send(inbound, settings, "reopened")
        hours = self.hours.get(team)
        now = self.clock()
        if hours is not None and not hours.is_open(datetime.fromtimestamp(now, UTC)):
            await self._away(inbound, settings, now)

    async def _away(self, inbound: Inbound, settings: TeamConfig, now: float) -> None:
        conversation = inbound.conversation
        data = await Conversation.data(conversation.account, conversation.chat)
        last = data.get(AWAY_AT)
        if isinstance(last, int | float) and 0 <= now - last < settings.away_interval:
            return
        # Queued before it is recorded: a crash in between queues nothing twice (dedup).
        if await self._send(inbound, settings, "away") is not None:
            await Conversation.put_data(conversation.account, conversation.chat, {AWAY_AT: now})

    async def _send(self, inbound: Inbound, settings: TeamConfig, kind: str) -> bool | None:
        """Queue ``settings``' reply of ``kind``; None when the team has none."""
        text = settings.reply(kind, language_of(inbound.event))
        if not text:
            return None
        conversation = inbound.conversation
        dedup = f"inbox:{kind}:{conversation.chat}:{inbound.event.dedup_key()}"
        return await self.services.send_text(conversation, text, reason=kind, dedup=dedup)
