"""The ``m.bridge`` state event (MSC2346) of portal rooms, so that clients which understand it
show which channel a room bridges.

Every portal room carries it twice, as ``m.bridge`` and as the older ``uk.half-shot.bridge``
(as the mautrix bridges do), with the same content: the bridge bot, the protocol (the
connector type), the network (the channel account) and the channel (the remote chat). The
state key is the bridge's and the account's; the data protection erasure redacts the event
with the room's other state that names the person.

New portal rooms get it in their initial state. Rooms made before the bridge knew the event
get it once, in background work at start-up: the portals are read in pages, and each one
whose marker (a digest of the content, in the portal's metadata) is missing or different is
sent the event, paced; a room that could not be reached is tried again later in the run, one
whose homeserver refused it at the next start; a success is not repeated (until the content
changes, e.g. the channel account's title)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mautrix.errors import MatrixRequestError

from ..config import Config
from ..connector import NetworkConnector
from ..db import Portal
from ..logsafe import pii
from .sender import MatrixSender
from .util import MAX_ID_BYTES, escape_localpart, fit_localpart

log = logging.getLogger("bridge.portals.info")

EVENT_TYPES = ("m.bridge", "uk.half-shot.bridge")
MARKER = "bridge_info"
"""The portal metadata key holding the digest of the content last sent to its room."""
PAGE = 200
"""Portals read per query by the start-up work."""
PACE = 0.05
"""Seconds between two rooms sent the event by the start-up work."""
RETRY_DELAY = 60.0
RETRY_MAX = 3600.0


def content(
    config: Config, connector: NetworkConnector, chat: str, name: str | None
) -> dict[str, Any]:
    """The content of the state event of the portal of ``chat`` on ``connector``'s account."""
    kind = type(connector)
    return {
        "bridgebot": config.bot_mxid,
        "creator": config.bot_mxid,
        "protocol": {"id": kind.channel, "displayname": kind.title},
        "network": {"id": connector.account_id, "displayname": connector.title},
        "channel": {"id": chat, "displayname": name or chat},
    }


def state_key(config: Config, account: str) -> str:
    """``<appservice id>/<account>``, each part escaped as a localpart (so ``/`` only
    separates). A portal room bridges one chat, so bridge and account make it unique; the chat
    id is left out because a state key can never be redacted (an erasure could not take a
    phone number or address out of it again)."""
    head = f"{escape_localpart(config.as_id)}/"
    return head + fit_localpart(escape_localpart(account), MAX_ID_BYTES - len(head))


def initial_state(
    config: Config, connector: NetworkConnector, chat: str, name: str | None
) -> tuple[list[dict[str, Any]], str]:
    """The state events for a new portal room and the marker to store with the portal."""
    body = content(config, connector, chat, name)
    key = state_key(config, connector.account_id)
    events = [{"type": t, "state_key": key, "content": body} for t in EVENT_TYPES]
    return events, marker(body)


def marker(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Pass:
    """What one pass over the portals did."""

    sent: int = 0
    refused: int = 0
    """Rooms the homeserver refused the event for (the bot not in them, or without the power
    to send state): tried again at the next start, not sooner."""
    failed: int = 0
    """Rooms that could not be reached now: tried again in this run."""
    first_error: str = ""


class BridgeInfoUpdater:
    """Sends the state event to the portal rooms that lack it (or an outdated one), one room
    at a time and at most ``1 / PACE`` rooms a second, so the homeserver hardly notices."""

    def __init__(
        self, config: Config, sender: MatrixSender, connectors: Mapping[str, NetworkConnector]
    ) -> None:
        self.config = config
        self.sender = sender
        self.connectors = connectors

    async def run(self) -> None:
        """Pass over every portal until one pass had no failure, waiting longer between
        passes (up to an hour) while some room cannot be reached."""
        delay = RETRY_DELAY
        while True:
            try:
                done = await self.update_all()
            except Exception:  # the database: the next pass tries again
                log.exception("Could not go through the portals for their bridge info")
                done = Pass(failed=1)
            if done.sent or done.refused or done.failed:
                log.info(
                    "Bridge info sent to %d portal room(s); refused in %d, failed in %d%s",
                    done.sent, done.refused, done.failed,
                    f" (first: {done.first_error})" if done.first_error else "",
                )  # fmt: skip
            if not done.failed:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def update_all(self) -> Pass:
        """One pass over every portal."""
        done = Pass()
        after = ""
        while True:
            page = await Portal.page_by_room(after, PAGE)
            if not page:
                return done
            for portal, raw_metadata in page:
                if await self._update(portal, raw_metadata, done):
                    await asyncio.sleep(PACE)
            after = page[-1][0].room_id or ""

    async def _update(self, portal: Portal, raw_metadata: str, done: Pass) -> bool:
        """Send the event to the room of ``portal`` if its marker differs, counting the
        outcome in ``done``; whether the homeserver was asked."""
        connector = self.connectors.get(portal.account)
        if connector is None or not portal.room_id:
            return False  # an account no longer configured
        body = content(self.config, connector, portal.chat, portal.name)
        mark = marker(body)
        if portal.metadata.get(MARKER) == mark:
            return False
        key = state_key(self.config, portal.account)
        try:
            for event_type in EVENT_TYPES:
                await self.sender.set_state(portal.room_id, event_type, key, body)
        except Exception as e:
            log.debug("Could not send the bridge info to %s: %s", portal.room_id, pii(e))
            refused = isinstance(e, MatrixRequestError) and e.http_status in (403, 404)
            if refused:
                done.refused += 1
            else:
                done.failed += 1
            done.first_error = done.first_error or f"{portal.room_id}: {pii(e)}"
            return True
        # Only if nothing else changed the row meanwhile: else the next start sends it again.
        await portal.set_metadata(raw_metadata, {**portal.metadata, MARKER: mark})
        done.sent += 1
        return True
