"""The bridge core's wiring and lifecycle: config, database, homeserver API, connectors,
queues, and the feature modules plugged into the seams (``bridge.seams``). What happens to
an event is elsewhere: ``pipeline.py`` and the handlers behind it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

import aiohttp
from mautrix.appservice import AppServiceAPI
from mautrix.appservice.state_store import ASStateStore
from mautrix.client.state_store.memory import MemoryStateStore
from mautrix.errors import MatrixRequestError
from mautrix.types import UserID
from mautrix.util.async_db import Database

from .. import db as dbm
from .. import logsafe
from ..config import Config
from ..connector import NetworkConnector
from ..db import QueueItem
from ..metrics.listener import MetricsListener
from ..metrics.registry import BridgeMetrics
from ..provisioning import api as provisioning
from ..seams import PeriodicJob, Seams
from ..tasks import cancel_and_wait
from . import deadletters
from .appservice import AppServiceListener
from .bridgeinfo import BridgeInfoUpdater
from .catchup import FLUSH_INTERVAL as ACTIVITY_FLUSH
from .catchup import CatchUp
from .commands import CommandRunner
from .dispatcher import Dispatcher, RetryLimits
from .encrypted import CryptoFlow
from .ghosts import GhostManager
from .host import ConnectorHost
from .incoming import StaffMessage
from .jobs import JobRunner
from .notices import Notices
from .outbound import OutboundHandler
from .pipeline import Pipeline
from .portals import PortalManager
from .remote import RemoteHandler
from .routing import MatrixRouter
from .sender import MatrixSender
from .services import Services
from .staff import StaffHandler

if TYPE_CHECKING:
    from .crypto.machine import Encryption

log = logging.getLogger("bridge")

STARTUP_RETRY_MAX = 30.0
DEDUP_RETENTION_MS = 30 * 24 * 3600 * 1000
"""How long remote delivery keys and appservice transaction ids are remembered. Remote systems
retry for at most days (WhatsApp: 7); Synapse retries a transaction until it succeeds."""
HOUSEKEEPING_INTERVAL = 3600.0
DATABASE_PROBE_INTERVAL = 0.5
"""Seconds between checks whether the database is back after transactions were refused."""

Feature = Callable[[Seams], None]
"""A feature module's ``setup``: registers its hooks, gates, jobs and commands."""


class EncryptionUnavailable(Exception):
    """Encryption is allowed in the config, but the homeserver does not let the bridge work
    in encrypted rooms."""


class StateStore(ASStateStore, MemoryStateStore):
    def __init__(self) -> None:
        ASStateStore.__init__(self)
        MemoryStateStore.__init__(self)


class Bridge:
    def __init__(self, config: Config, features: Iterable[Feature] = ()) -> None:
        self.config = config
        self.features = list(features)
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
        self._refused = asyncio.Event()
        self.metrics = BridgeMetrics()
        self.dispatcher = Dispatcher(
            self._process,
            self._announce,
            RetryLimits(config.queue_max_attempts, config.queue_max_age),
            metrics=self.metrics,
        )
        self.metrics.live.queue = self.dispatcher.figures
        self.metrics.live.states = self._states
        self.metrics.accounts(config.channels)
        self.metrics_listener = MetricsListener(self.metrics, self.channel_status)
        self.listener = AppServiceListener(
            config.hs_token, config.max_body_size, self._submit_all, skip=self._is_echo,
            on_refused=self._refused.set, limits=config.as_limits,
            webhooks=config.webhook_listener, queue_key=Pipeline.matrix_key,
        )  # fmt: skip
        self.connectors: dict[str, NetworkConnector] = {}
        self._hosts: dict[str, ConnectorHost] = {}
        self._ping_task: asyncio.Task[None] | None = None
        self.jobs = JobRunner()
        self.encryption: Encryption | None = None
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    def _wire(self, api: AppServiceAPI) -> None:
        config = self.config
        self.sender = MatrixSender(api, UserID(config.bot_mxid), self.metrics)
        self.notices = Notices(self.sender)
        self.ghosts = GhostManager(config, self.sender)
        self.portals = PortalManager(config, self.sender, self.connectors)
        self.services = Services(
            config, self.connectors, self.sender, self.portals, self.ghosts, self.notices,
            self.dispatcher,
        )  # fmt: skip
        self.seams = Seams(config, self.services, metrics=self.metrics)
        self.seams.add_job(PeriodicJob("housekeeping", HOUSEKEEPING_INTERVAL, _housekeeping, True))
        for setup in self.features:
            setup(self.seams)
        self.portals.namer = self.seams.room_namer
        for route in self.seams.routes:
            self.listener.add_feature_route(route.method, route.full_path, route.handler)
        if config.provisioning is not None:
            served = provisioning.build(config, self.services, self.seams.api, self._http)
            self.listener.add_api(config.provisioning.prefix, served.app)
        self.commands = CommandRunner(
            self.services, self.notices, self.seams.commands, self.seams.audit
        )
        staff = StaffHandler(
            config, self.sender, self.connectors, self.notices, self.seams, self.metrics
        )
        self.router = MatrixRouter(
            config, self.sender, self.ghosts, self.notices, staff, self.state_store,
            self._command, self.seams,
        )  # fmt: skip
        if config.encryption.allow:
            from .crypto.machine import Encryption  # mautrix.crypto: only with encryption

            assert self.session is not None
            self.encryption = Encryption(config, self.db, self.session, self.ghosts.is_own)
            self.sender.crypto = self.encryption
            self.router.crypto = CryptoFlow(
                config.encryption, self.encryption, self.sender, self.notices, self.ghosts.is_own,
                Pipeline.matrix_key, self.dispatcher.submit,
            )  # fmt: skip
            self.listener.on_otk_counts = self._otk_counts
        remote = RemoteHandler(
            self.sender, self.portals, self.ghosts, self.connectors, self.notices
        )
        outbound = OutboundHandler(
            config, self.sender, self.connectors, self.notices, self.seams, self.metrics
        )
        self.catchup = CatchUp(
            config.catch_up, self.sender, self.dispatcher, self.notices,
            is_own=self.ghosts.is_own, queue_key=Pipeline.matrix_key, deadline=self._deadline,
            metrics=self.metrics,
        )  # fmt: skip
        self.sender.on_sent = self.catchup.sent
        self.listener.before_record = self.catchup.before_record
        every = config.catch_up.interval
        self.seams.add_job(PeriodicJob("catch-up", every, self.catchup.periodic))
        self.seams.add_job(PeriodicJob("room-activity", ACTIVITY_FLUSH, self.catchup.flush))
        self.pipeline = Pipeline(
            self.dispatcher, self.router, remote, outbound, self.seams, self.metrics,
            catchup=self.catchup,
        )  # fmt: skip

    async def start(self) -> None:
        logsafe.log_personal_data(self.config.log_personal_data)
        await self.db.start()
        ssl = bool(self.config.hs_verify_ssl)
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100, ssl=ssl))
        self.http = aiohttp.ClientSession()
        api = AppServiceAPI(
            base_url=self.config.hs_address,
            bot_mxid=UserID(self.config.bot_mxid),
            token=self.config.as_token,
            state_store=self.state_store,
            client_session=self.session,
            log=logging.getLogger("bridge.api"),  # type: ignore[arg-type]
        )
        self._wire(api)
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
        # The homeserver may have lost events while the bridge was away: the active rooms are
        # read back, ahead of anything it pushes from now on.
        await self.catchup.start()
        self.metrics.reachability.watch(self.catchup.watch)
        await self.listener.start(self.config.as_hostname, self.config.as_port)
        log.info("Listening on %s:%d", self.config.as_hostname, self.config.as_port)
        if self.config.webhook_listener is not None:
            hooks = self.config.webhook_listener
            log.info("Connector webhooks listen on %s:%d", hooks.hostname, hooks.port)
        if self.config.metrics is not None:
            await self.metrics_listener.start(
                self.config.metrics.hostname, self.config.metrics.port
            )
        await self._wait_for_homeserver()
        if self.encryption is not None:
            await self._start_encryption(self.encryption)
        for account_name, connector in self.connectors.items():
            try:
                await connector.start()
            except Exception:
                log.exception("Channel account %s failed to start", account_name)
        self._ping_task = asyncio.create_task(self._ping_homeserver())
        self.jobs.start(self.seams.jobs)
        info = BridgeInfoUpdater(self.config, self.sender, self.connectors)
        self._spawn(info.run(), "bridge-info")  # rooms made before the bridge sent m.bridge

    async def _wait_for_homeserver(self) -> None:
        delay = 1.0
        while True:
            try:
                await self.sender.versions()
                await self.sender.ensure_registered()
                break
            except Exception as e:
                log.warning("Homeserver not reachable yet (%s); retrying in %.0fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, STARTUP_RETRY_MAX)
        try:
            await self.sender.set_displayname(self.config.bot_displayname)
        except Exception as e:
            log.warning("Could not set the bot's display name: %s", e)

    async def _start_encryption(self, encryption: Encryption) -> None:
        try:
            await encryption.start()
        except MatrixRequestError as e:
            raise EncryptionUnavailable(
                f"encryption.allow is on, but the homeserver refused the bridge's device "
                f"({e.errcode}: {e.message}). The homeserver must support appservice device "
                "management (MSC4190), to-device messages in transactions (MSC2409) and device "
                "lists in transactions (MSC3202), and the registration must be generated again "
                "(bridge -g) so it carries io.element.msc4190 and org.matrix.msc3202."
            ) from e

    def _http(self) -> aiohttp.ClientSession:
        assert self.http is not None
        return self.http

    def _otk_counts(self, counts: dict[str, Any]) -> None:
        if self.encryption is not None:
            self._spawn(self.encryption.otk_counts(counts), "crypto:otk")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` in the background until it ends or the bridge stops."""
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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
                took = await self.sender.ping(self.config.as_id)
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

    async def stop(self) -> None:
        await cancel_and_wait([self._ping_task, *self._background])
        await self.jobs.stop()
        try:
            await self.catchup.flush()
        except Exception as e:
            log.warning("Could not store the rooms' recent activity: %s", e)
        for account_id, connector in self.connectors.items():
            try:
                await connector.stop()
            except Exception:
                log.exception("Channel account %s failed to stop cleanly", account_id)
        await self.listener.stop()
        await self.metrics_listener.stop()
        await self.dispatcher.stop()
        if self.encryption is not None:
            await self.encryption.stop()
        for session in (self.session, self.http):
            if session:
                await session.close()
        await self.db.stop()

    def _states(self) -> dict[str, str]:
        return {account: host.state.kind.value for account, host in self._hosts.items()}

    def channel_status(self) -> dict[str, dict[str, Any]]:
        """Each channel account's type, title and connector state (``/status``)."""
        status: dict[str, dict[str, Any]] = {}
        for account, channel in self.config.channels.items():
            host, connector = self._hosts.get(account), self.connectors.get(account)
            state = host.state if host is not None else None
            status[account] = {
                "type": channel.type,
                "title": connector.title if connector is not None else channel.type,
                "state": state.kind.value if state is not None else "stopped",
                "message": state.message if state is not None else "",
            }
        return status

    # ------------------------------------------------------------------ queue

    def _submit_all(self, items: list[QueueItem]) -> None:
        self.catchup.recorded(items)
        for item in items:
            self.dispatcher.submit(item)

    async def _process(self, item: QueueItem) -> None:
        await self.pipeline.process(item)

    async def _announce(self, dead: dbm.DeadLetter) -> None:
        await deadletters.announce(self.notices, self.portals.channel_title, dead)

    async def _deadline(self, room_id: str) -> float | None:
        """The delivery deadline of the channel account of ``room_id`` (None: no portal)."""
        portal = await dbm.Portal.get_by_room(room_id)
        connector = self.connectors.get(portal.account) if portal is not None else None
        return connector.capabilities.delivery_deadline if connector is not None else None

    def _is_echo(self, evt: dict[str, Any]) -> bool:
        return self.router.is_echo(evt)

    async def _command(self, evt: StaffMessage, portal: dbm.Portal | None, text: str) -> None:
        await self.commands.run(evt.room_id, evt.event_id, evt.sender, portal, text)


async def _housekeeping() -> None:
    cutoff = int(time.time() * 1000) - DEDUP_RETENTION_MS
    await dbm.RemoteDedup.prune(cutoff)
    await dbm.ASTransaction.prune(cutoff)
    await dbm.QueueItem.prune_seen(cutoff)


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
