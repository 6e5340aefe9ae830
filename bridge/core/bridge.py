"""The bridge core: wires config, database, homeserver API, connectors and queues together."""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import Any, TypeGuard, cast

import aiohttp
from mautrix.appservice import AppServiceAPI, IntentAPI
from mautrix.appservice.state_store import ASStateStore
from mautrix.client.state_store.memory import MemoryStateStore
from mautrix.types import EventID, RoomID, StateEvent, UserID
from mautrix.util.async_db import Database

from .. import db as dbm
from ..config import Config
from ..connector import NetworkConnector
from ..db import Portal, QueueItem
from ..db.keys import digest
from ..events import RemoteEvent
from ..tasks import cancel_and_wait
from ..types import AccountID
from . import deadletters
from .appservice import AppServiceServer
from .commands import CommandContext, run_command
from .dispatcher import Dispatcher, GiveUp, RetryLimits
from .ghosts import GhostManager
from .host import ConnectorHost
from .matrix import MatrixHandler
from .notices import Notices
from .portals import PortalManager
from .remote import RemoteHandler

log = logging.getLogger("bridge")

STARTUP_RETRY_MAX = 30.0
DEDUP_RETENTION_MS = 30 * 24 * 3600 * 1000
"""How long remote delivery keys and appservice transaction ids are remembered. Remote systems
retry for at most days (WhatsApp: 7); Synapse retries a transaction until it succeeds."""
HOUSEKEEPING_INTERVAL = 3600.0
DATABASE_PROBE_INTERVAL = 0.5
"""Seconds between checks whether the database is back after transactions were refused."""


class StateStore(ASStateStore, MemoryStateStore):
    def __init__(self) -> None:
        ASStateStore.__init__(self)
        MemoryStateStore.__init__(self)


def remote_queue_key(account: str, chat: str) -> str:
    key = f"rm:{account}/{chat}"
    # A fixed size for chat ids of any length: the queue key is indexed.
    return (
        key
        if len(key.encode("utf-8", "surrogatepass")) <= 200
        else f"rm:{account}/#{digest(chat)}"
    )


class Bridge:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.db = Database.create(
            config.db_url,
            upgrade_table=dbm.upgrade_table,
            db_args=_db_args(config),
            log=logging.getLogger("bridge.db"),
        )
        dbm.init(self.db)
        self.state_store = StateStore()
        self.session: aiohttp.ClientSession | None = None
        self.http: aiohttp.ClientSession | None = None
        self.api: AppServiceAPI | None = None
        self._refused = asyncio.Event()
        self.server = AppServiceServer(
            config.hs_token, config.max_body_size, self._submit_all, skip=self._is_echo,
            on_refused=self._refused.set, limits=config.as_limits,
            webhooks=config.webhook_listener,
        )  # fmt: skip
        self.dispatcher = Dispatcher(
            self._process,
            partial(deadletters.announce, self),
            RetryLimits(config.queue_max_attempts, config.queue_max_age),
        )
        self.connectors: dict[str, NetworkConnector] = {}
        self._hosts: dict[str, ConnectorHost] = {}
        self._ping_task: asyncio.Task[None] | None = None
        self._housekeeping_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.db.start()
        ssl = bool(self.config.hs_verify_ssl)
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100, ssl=ssl))
        self.http = aiohttp.ClientSession()
        self.api = AppServiceAPI(
            base_url=self.config.hs_address,
            bot_mxid=UserID(self.config.bot_mxid),
            token=self.config.as_token,
            state_store=self.state_store,
            client_session=self.session,
            log=logging.getLogger("bridge.api"),  # type: ignore[arg-type]
        )
        self.bot: IntentAPI = self.api.bot_intent()
        self.notices = Notices(self.bot)
        self.ghosts = GhostManager(self.config, self.api)
        self.portals = PortalManager(self.config, self.api, self.connectors)
        self.matrix = MatrixHandler(self.config, self.bot, self.connectors, self.notices)
        self.remote = RemoteHandler(self.portals, self.ghosts, self.connectors, self.notices)
        for account_id, account in self.config.channels.items():
            await dbm.ChannelAccount.ensure(account_id, account.type)
            host = ConnectorHost(self, account_id)
            self._hosts[account_id] = host
            connector_cls: Any = account.connector
            self.connectors[account_id] = connector_cls(account_id, account.options, host)
        # Older work first: what was queued before the last stop is submitted before anything
        # new can arrive, so per-conversation order holds across restarts.
        pending = await self.dispatcher.load_pending()
        if pending:
            log.info("Resuming %d queued event(s) from before the last stop", pending)
        await self.server.start(self.config.as_hostname, self.config.as_port)
        log.info("Listening on %s:%d", self.config.as_hostname, self.config.as_port)
        if self.config.webhook_listener is not None:
            hooks = self.config.webhook_listener
            log.info("Connector webhooks listen on %s:%d", hooks.hostname, hooks.port)
        await self._wait_for_homeserver()
        for account_name, connector in self.connectors.items():
            try:
                await connector.start()
            except Exception:
                log.exception("Channel account %s failed to start", account_name)
        self._ping_task = asyncio.create_task(self._ping_homeserver())
        self._housekeeping_task = asyncio.create_task(self._housekeeping())

    async def _wait_for_homeserver(self) -> None:
        assert self.api is not None
        delay = 1.0
        while True:
            try:
                await self.bot.versions()
                await self.bot.ensure_registered()
                break
            except Exception as e:
                log.warning("Homeserver not reachable yet (%s); retrying in %.0fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, STARTUP_RETRY_MAX)
        try:
            await self.bot.set_displayname(self.config.bot_displayname)
        except Exception as e:
            log.warning("Could not set the bot's display name: %s", e)

    async def _ping_homeserver(self) -> None:
        """Ping at start, and again once the database works after the bridge had to refuse
        transactions. A homeserver backs off on an appservice that failed (Synapse: 2, 4, 8 s
        ... up to 8.5 minutes); a successful ping makes it retry what it holds at once."""
        await self._ping()
        while True:
            await self._refused.wait()
            self._refused.clear()
            await self._wait_for_database()
            await self._ping()

    async def _ping(self) -> None:
        delay = 1.0
        while True:
            try:
                took = await self.bot.appservice_ping(self.config.as_id)
                log.info("Homeserver ping OK (%s ms)", took)
                return
            except Exception as e:
                log.warning("Homeserver ping failed (%s); retrying in %.0fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, STARTUP_RETRY_MAX)

    async def _wait_for_database(self) -> None:
        while True:
            try:
                await self.db.fetchval("SELECT 1")
                return
            except Exception as e:
                log.debug("Database not back yet: %s", e)
                await asyncio.sleep(DATABASE_PROBE_INTERVAL)

    async def _housekeeping(self) -> None:
        while True:
            try:
                cutoff = int(time.time() * 1000) - DEDUP_RETENTION_MS
                await dbm.RemoteDedup.prune(cutoff)
                await dbm.ASTransaction.prune(cutoff)
            except Exception as e:
                log.warning("Housekeeping failed: %s", e)
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)

    async def stop(self) -> None:
        await cancel_and_wait([self._ping_task, self._housekeeping_task])
        for account_id, connector in self.connectors.items():
            try:
                await connector.stop()
            except Exception:
                log.exception("Channel account %s failed to stop cleanly", account_id)
        await self.server.stop()
        await self.dispatcher.stop()
        for session in (self.session, self.http):
            if session:
                await session.close()
        await self.db.stop()

    # ------------------------------------------------------------------ queue

    def _submit_all(self, items: list[QueueItem]) -> None:
        for item in items:
            self.dispatcher.submit(item)

    async def record_remote(self, account: AccountID, event: RemoteEvent) -> bool:
        item = await QueueItem.record_remote(
            account,
            # Remote ids are unique per chat only (Telegram numbers messages per chat).
            f"{event.chat.id}/{event.dedup_key()}",
            remote_queue_key(account, event.chat.id),
            {"account": account, "event": event.to_json()},
        )
        if item is None:
            return False
        self.dispatcher.submit(item)
        return True

    async def _process(self, item: QueueItem) -> None:
        if item.kind == "remote":
            try:
                event = RemoteEvent.from_json(item.payload["event"])
            except (KeyError, TypeError, ValueError) as e:
                raise GiveUp(f"unreadable remote event: {e}") from e
            await self.remote.handle(item.payload["account"], event)
        elif item.kind == "matrix":
            await self._matrix_event(item, item.payload)

    # ------------------------------------------------------------------ Matrix events

    def is_own(self, user: str) -> bool:
        return user == self.config.bot_mxid or self.ghosts.is_ghost(user)

    def _is_echo(self, evt: dict[str, Any]) -> bool:
        """An event of the bot or a ghost that is no state: the bridge's own messages coming
        back, which ``_matrix_event`` ignores, so they are not even queued."""
        sender = evt.get("sender")
        return "state_key" not in evt and isinstance(sender, str) and self.is_own(sender)

    async def _matrix_event(self, item: QueueItem, evt: dict[str, Any]) -> None:
        etype = evt.get("type")
        room_id = evt.get("room_id")
        content = evt.get("content", {})
        # Fields of the wrong type make an event nothing the bridge can act on.
        if not isinstance(etype, str) or not isinstance(content, dict):
            return
        if not _is_id(room_id, "!"):
            return  # no room to act in (nor to answer in)
        if etype == "m.receipt":
            await self._receipts(RoomID(room_id), content)
            return
        if etype == "m.typing":
            portal = await Portal.get_by_room(room_id)
            users = content.get("user_ids")
            if portal and isinstance(users, list):
                for user in users:
                    if isinstance(user, str) and self._may_act(user, portal):
                        await self.matrix.typing(portal, user, True)
            return
        sender = evt.get("sender")
        event_id = evt.get("event_id")
        if not (_is_id(sender, "@") and _is_id(event_id, "$")):
            return
        if "state_key" in evt:
            await self._state_event(evt)
        if self.is_own(sender):
            return
        if etype == "m.room.member":
            await self._member(evt)
            return
        if etype not in ("m.room.message", "m.reaction", "m.room.redaction"):
            return
        portal = await Portal.get_by_room(room_id)
        if etype == "m.room.message":
            body: str = content["body"] if isinstance(content.get("body"), str) else ""
            prefix = self.config.command_prefix
            is_command = body == prefix or body.startswith(prefix + " ")
            if portal is None or is_command:
                # Commands check the account they concern themselves.
                if self.config.permission_level(sender) == "none":
                    return
                if is_command:
                    await self._command(evt, portal, body[len(prefix) :].strip())
                elif await self._is_management_room(RoomID(room_id)):
                    await self._command(evt, portal, body.strip())
                return
        if portal is None:
            return
        if not self._may_act(sender, portal):
            # Redactions and reactions too: what is not bridged leaves a notice.
            await self.notices.failure(
                RoomID(room_id), EventID(evt["event_id"]),
                f"you are not allowed to use the bridge for {portal.account}",
            )  # fmt: skip
            return
        if etype == "m.room.message":
            await self.matrix.message(item, portal, evt)
        elif etype == "m.reaction":
            await self.matrix.reaction(item, portal, evt)
        elif etype == "m.room.redaction":
            await self.matrix.redaction(item, portal, evt)

    async def _state_event(self, evt: dict[str, Any]) -> None:
        try:
            await self.state_store.update_state(StateEvent.deserialize(cast(Any, evt)))
        except Exception as e:
            log.debug("Ignoring unreadable state event %s: %s", evt.get("event_id"), e)

    def _may_act(self, user: str, portal: Portal) -> bool:
        """Whether ``user`` may see and act in the conversations of ``portal``'s account."""
        return not self.is_own(user) and (
            self.config.permission_level(user, portal.account) != "none"
        )

    async def _member(self, evt: dict[str, Any]) -> None:
        content = evt.get("content") or {}
        membership = content.get("membership")
        target = evt.get("state_key")
        if membership in ("invite", "join") and isinstance(target, str):
            portal = await Portal.get_by_room(evt["room_id"])
            if portal is not None and not self.is_own(target):
                if not self._may_act(target, portal):
                    await self._refuse_member(portal, target)
                return
        if target != self.config.bot_mxid or membership != "invite":
            return
        room_id = RoomID(evt["room_id"])
        if self.config.permission_level(evt["sender"]) == "none":
            log.info("Ignoring invite to %s from %s (no permission)", room_id, evt["sender"])
            return
        await self.bot.join_room(room_id)
        if content.get("is_direct"):
            await self.notices.send(
                room_id, "Hello! I am the bridge bot. Send `help` to see what I can do."
            )

    async def _refuse_member(self, portal: Portal, user: str) -> None:
        """Take back an invite (or membership) of a user who may not see the conversations of
        the portal's account: a portal room's history is the customer's conversation."""
        room_id = RoomID(portal.room_id or "")
        reason = f"no permission for the conversations of {portal.account}"
        try:
            await self.bot.kick_user(room_id, UserID(user), reason)
        except Exception as e:
            log.warning("Could not remove %s from %s: %s", user, room_id, e)
            await self.notices.send(
                room_id, f"⚠️ {user} has {reason} but could not be removed from this room: {e}"
            )
            return
        await self.notices.send(room_id, f"ℹ️ {user} was removed: {reason}.")

    async def _is_management_room(self, room_id: RoomID) -> bool:
        try:
            members = await self.bot.get_joined_members(room_id)
        except Exception:
            return False
        return len(members) == 2

    async def _command(self, evt: dict[str, Any], portal: Portal | None, text: str) -> None:
        ctx = CommandContext(
            self, RoomID(evt["room_id"]), EventID(evt["event_id"]), evt["sender"], portal
        )
        await run_command(ctx, text)

    async def _receipts(self, room_id: RoomID, content: dict[str, Any]) -> None:
        portal = await Portal.get_by_room(room_id)
        if portal is None or not isinstance(content, dict):
            return
        for event_id, receipts in content.items():
            readers = (receipts or {}).get("m.read") if isinstance(receipts, dict) else None
            if not isinstance(readers, dict):
                continue
            for user in readers:
                if isinstance(user, str) and self._may_act(user, portal):
                    await self.matrix.receipt(portal, room_id, event_id, user)


def _is_id(value: Any, sigil: str) -> TypeGuard[str]:
    """Whether ``value`` is a Matrix identifier with ``sigil`` (``!room``, ``@user``,
    ``$event``): anything else in an event's id fields is nothing the bridge can act on."""
    return isinstance(value, str) and len(value) > 1 and value.startswith(sigil)


def _db_args(config: Config) -> dict[str, Any]:
    args = dict(config.db_args)
    if config.db_url.startswith("sqlite"):
        init = list(args.pop("init_commands", []))
        if not any("synchronous" in c for c in init):
            # FULL: a transaction the homeserver was told is recorded survives a power cut.
            init.append("PRAGMA synchronous = FULL")
        args["init_commands"] = init
    elif config.db_url.startswith(("postgres", "cockroach")):
        # asyncpg's default clean-up of a connection taken back into the pool is one more
        # round trip per query; the bridge sets no session state (no SET, LISTEN, advisory
        # locks or cursors), so the rollback of an open transaction, which asyncpg always
        # does, is all that is needed.
        args.setdefault("reset", _no_session_reset)
    return args


async def _no_session_reset(conn: Any) -> None:
    return None
