"""The MAX connector: one bot per channel account, by long polling or by webhook."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ...connector import (
    BridgeHost,
    DeliveryError,
    NetworkConnector,
    PermanentDeliveryError,
    StateKind,
)
from ...events import (
    MatrixEdit,
    MatrixMessage,
    MatrixReadReceipt,
    MatrixRedaction,
    MatrixTyping,
    RemoteAttachment,
    RemoteButtonPress,
    SentMessage,
)
from ...logsafe import add_secrets, pii
from ...media import MediaFile
from ...tasks import cancel_and_wait
from ...types import AccountID
from ..bot_loop import connect_and_poll, first_connect, open_webhook, secret_matches
from ..http import BodyTooLarge, read_body
from .capabilities import DOWNLOAD_LIMIT, MAX_CAPABILITIES, capabilities_for
from .client import MaxClient
from .config import SECRET_PATTERN, MaxConfig, parse_config
from .handle_matrix import MaxSender
from .handle_remote import UPDATE_TYPES, UnreadableUpdate, update_events

WEBHOOK_PATH = "/webhook"
SECRET_HEADER = "X-Max-Bot-Api-Secret"
MAX_UPDATE_SIZE = 1024 * 1024
CONNECT_TIMEOUT = 10.0
POLL_LIMIT = 100


class MaxConnector(NetworkConnector):
    """Bridges the dialogs and group chats of one MAX bot."""

    channel = "max"
    title = "MAX"
    capabilities = MAX_CAPABILITIES
    config: MaxConfig

    def __init__(self, account_id: AccountID, config: MaxConfig, host: BridgeHost) -> None:
        super().__init__(account_id, config, host)
        self.capabilities = capabilities_for(config)
        self.title = config.title
        self._client: MaxClient | None = None
        self._matrix: MaxSender | None = None
        self._poller: asyncio.Task[None] | None = None
        self._route: str | None = None
        self._secret: str | None = None
        self._open = False
        self.bot_id: int | None = None
        self._batch: tuple[list[Any], Any] | None = None
        """A polled batch not yet recorded in full, and the marker after it."""

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], key: str) -> MaxConfig:
        return parse_config(raw, key)

    @property
    def client(self) -> MaxClient:
        if self._client is None:
            self._client = MaxClient(self.config, self.host.http, self.capabilities.rate_limits)
        return self._client

    @property
    def matrix(self) -> MaxSender:
        if self._matrix is None:
            self._matrix = MaxSender(self.client, self.capabilities)
        return self._matrix

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        add_secrets(self.config.token)
        if self.config.mode == "webhook":
            self._secret, self._route = await open_webhook(
                self,
                self._secret,
                self._route,
                configured=self.config.webhook_secret,
                pattern=SECRET_PATTERN,
                handler=self._handle_webhook,
            )
        self._open = True
        connected = await first_connect(
            self, self._connect, lambda e: _reason(e, self.client), CONNECT_TIMEOUT
        )
        self._poller = asyncio.create_task(self._run(connected), name=f"max:{self.account_id}")

    async def stop(self) -> None:
        self._open = False
        await cancel_and_wait([self._poller])
        self._poller = None
        self.set_state(StateKind.STOPPED)

    async def _connect(self) -> None:
        """Check the token (``GET /me``), then subscribe the webhook, or for polling remove
        the bridge's subscription (MAX delivers no polled updates while one is set)."""
        me = await self.client.request("GET", "/me")
        bot_id = me.get("user_id")
        self.bot_id = bot_id if isinstance(bot_id, int) else None
        username = me.get("username")
        self.public_address = username if isinstance(username, str) and username else None
        name = f"@{username}" if self.public_address else str(me.get("name") or "bot")
        if self.config.mode == "webhook":
            assert self._route is not None and self.config.webhook_url
            body = {
                "url": self.config.webhook_url + self._route,
                "update_types": UPDATE_TYPES,
                "secret": self._secret,
            }
            await self.client.request("POST", "/subscriptions", json=body)
            self.set_state(StateKind.CONNECTED, f"{name}, webhook")
        else:
            if self.config.webhook_url:
                url = self.config.webhook_url + f"/connectors/{self.account_id}{WEBHOOK_PATH}"
                await self.client.request("DELETE", "/subscriptions", params={"url": url})
            self.set_state(StateKind.CONNECTED, f"{name}, polling")

    async def _run(self, connected: bool) -> None:
        await connect_and_poll(
            self,
            name="MAX",
            connected=connected,
            connect=self._connect,
            poll=None if self.config.mode == "webhook" else self._poll,
            describe=lambda e: _reason(e, self.client),
        )

    # ------------------------------------------------------------------ MAX -> Matrix

    async def _poll(self) -> None:
        data = await self.host.load_data()
        marker = data.get("marker")
        while True:
            if self._batch is None:
                self._batch = await self._fetch(marker)
            updates, new_marker = self._batch
            for update in updates:
                try:
                    await self._handle_update(update)
                except UnreadableUpdate as e:  # raised before anything is recorded
                    self.host.log.warning("Skipping an unreadable update: %s", pii(e))
            # A batch that failed is handled again (the dedup keys keep what was recorded
            # from doubling), so the first batch, fetched without a marker, is not lost either.
            self._batch = None
            if isinstance(new_marker, int) and not isinstance(new_marker, bool):
                if new_marker != marker:
                    # Only once every event of the batch is recorded: a crash before this
                    # line fetches the batch again with the saved marker.
                    marker = new_marker
                    data = {**data, "marker": marker}
                    await self.host.save_data(data)
            self.set_state(StateKind.CONNECTED, self._state.message)

    async def _fetch(self, marker: Any) -> tuple[list[Any], Any]:
        params: dict[str, str | int] = {
            "timeout": int(self.config.poll_timeout),
            "limit": POLL_LIMIT,
            "types": ",".join(UPDATE_TYPES),
        }
        if isinstance(marker, int) and not isinstance(marker, bool):
            params["marker"] = marker
        answer = await self.client.request(
            "GET",
            "/updates",
            params=params,
            timeout=self.config.poll_timeout + self.config.request_timeout,
        )
        updates = answer.get("updates")
        return (updates if isinstance(updates, list) else []), answer.get("marker")

    async def _handle_webhook(self, request: web.Request) -> web.StreamResponse:
        if not secret_matches(request, SECRET_HEADER, self._secret):
            self.host.log.warning("Refused a webhook request with a wrong secret")
            return web.json_response({"error": "wrong secret"}, status=401)
        if not self._open:
            return web.json_response({"error": "not running"}, status=503)
        try:
            body = await read_body(request, MAX_UPDATE_SIZE)
        except BodyTooLarge:
            return web.json_response({"error": "update too large"}, status=413)
        try:
            update = json.loads(body)
            await self._handle_update(update)
        except RecursionError:
            return web.json_response({"error": "not a MAX update: nested too deeply"}, status=400)
        except ValueError as e:  # UnreadableUpdate and JSON errors, before anything is recorded
            return web.json_response({"error": f"not a MAX update: {e}"[:500]}, status=400)
        except Exception:
            self.host.log.exception("Could not record a MAX update")
            return web.json_response({"error": "try again later"}, status=503)
        return web.json_response({"ok": True})

    async def _handle_update(self, update: Any) -> None:
        for event in update_events(update, bot_id=self.bot_id):
            await self.host.handle_remote_event(event)
            if isinstance(event, RemoteButtonPress):
                await self._answer(event.press_id)

    async def _answer(self, callback_id: str) -> None:
        """Answer a press so that the customer's app stops waiting. A courtesy: the press is
        recorded already, so a failed answer is only logged."""
        try:
            await self.client.request(
                "POST", "/answers", params={"callback_id": callback_id}, json={"notification": ""}
            )
        except DeliveryError as e:
            self.host.log.info("Could not answer callback %s: %s", callback_id, pii(e.reason))

    async def download_attachment(self, attachment: RemoteAttachment) -> tuple[MediaFile, str]:
        name = attachment.filename or "file"
        if attachment.size and attachment.size > DOWNLOAD_LIMIT:
            raise PermanentDeliveryError(
                f"{name} is over the {DOWNLOAD_LIMIT // 1024 // 1024} MB the bridge takes from MAX"
            )
        mimetype = attachment.mimetype or "application/octet-stream"
        return await self.client.download(attachment.url, DOWNLOAD_LIMIT, mimetype)

    # ------------------------------------------------------------------ Matrix -> MAX

    async def send_message(self, msg: MatrixMessage) -> SentMessage:
        return await self.matrix.send_message(msg)

    async def send_reply(self, msg: MatrixMessage) -> SentMessage:
        return await self.matrix.send_message(msg)

    async def send_media(self, msg: MatrixMessage) -> SentMessage:
        return await self.matrix.send_media(msg)

    async def handle_matrix_edit(self, edit: MatrixEdit) -> None:
        await self.matrix.edit(edit)

    async def handle_matrix_redaction(self, redaction: MatrixRedaction) -> None:
        await self.matrix.delete(redaction)

    async def handle_matrix_typing(self, typing: MatrixTyping) -> None:
        if typing.typing:  # MAX's typing shows for a few seconds; it has no "stopped typing"
            await self.matrix.action(typing.portal.chat, "typing_on")

    async def handle_matrix_read_receipt(self, receipt: MatrixReadReceipt) -> None:
        if receipt.target.sender is not None:  # a customer's message: the chat is read
            await self.matrix.action(receipt.portal.chat, "mark_seen")


def _reason(error: Exception, client: MaxClient) -> str:
    if isinstance(error, DeliveryError):
        return client.scrub(error.reason)
    return client.scrub(str(error) or type(error).__name__)
