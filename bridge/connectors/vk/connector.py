"""The VK community messages connector: one community per channel account.

Receiving: the Callback API (VK posts each event to ``/connectors/<account>/callback``; the
bridge answers ``confirmation`` with the community's code, checks every request's ``secret``
in constant time, and answers ``ok`` only once the event is recorded, so VK retries it, with
``X-Retry-Counter``, otherwise), or the Bots Long Poll API (``groups.getLongPollServer``,
then ``a_check`` with ``ts``, saved with the account's data after each batch is recorded).
Sending: ``messages.send``/``edit``/``delete`` and the upload servers (``handle_matrix``)."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web

from ...connector import BridgeHost, NetworkConnector, StateKind, TemporaryDeliveryError
from ...events import (
    MatrixEdit,
    MatrixMessage,
    MatrixRedaction,
    RemoteAttachment,
    RemoteButtonPress,
    RemoteEvent,
    SentMessage,
)
from ...logsafe import add_secrets, pii
from ...media import MediaFile
from ...tasks import cancel_and_wait
from ...types import AccountID
from ..http import BodyTooLarge, read_body
from .capabilities import DOWNLOAD_LIMIT, VK_CAPABILITIES, capabilities_for
from .client import VKClient, VKError
from .config import VKConfig, parse_config
from .handle_matrix import VKSender
from .handle_remote import Names, PayloadError, parse_event

CALLBACK_PATH = "/callback"
MAX_BODY = 1024 * 1024
"""A Callback API event is one message with its attachments' descriptions."""
OK = "ok"
CONNECT_TIMEOUT = 10.0
"""How long ``start`` waits for the long poll server before going on in the background."""


class VKConnector(NetworkConnector):
    """A VK community's messages, received by Callback API or Bots Long Poll, answered with the
    community token."""

    channel = "vk"
    title = "VK"
    capabilities = VK_CAPABILITIES
    config: VKConfig

    def __init__(self, account_id: AccountID, config: VKConfig, host: BridgeHost) -> None:
        super().__init__(account_id, config, host)
        self.capabilities = capabilities_for(config)
        self.title = config.title
        if config.screen_name:
            self.public_address = f"https://vk.me/{config.screen_name}"
        self._client: VKClient | None = None
        self._matrix: VKSender | None = None
        self._names: Names | None = None
        self._route: str | None = None
        self._poller: asyncio.Task[None] | None = None
        self._open = False
        add_secrets(config.access_token, *(s for s in (config.secret,) if s))

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], key: str) -> VKConfig:
        return parse_config(raw, key)

    @property
    def client(self) -> VKClient:
        if self._client is None:
            rate = self.capabilities.rate_limits["global"]
            self._client = VKClient(self.config, self.host.http, rate)
        return self._client

    @property
    def matrix(self) -> VKSender:
        if self._matrix is None:
            self._matrix = VKSender(self.client, self.capabilities)
        return self._matrix

    @property
    def names(self) -> Names:
        if self._names is None:
            self._names = Names(lambda ids: self.client.call("users.get", user_ids=ids))
        return self._names

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._open = True
        if self.config.mode == "callback":
            if self._route is None:
                self._route = self.host.add_route("POST", CALLBACK_PATH, self._callback)
            self.set_state(StateKind.CONNECTED, f"community {self.config.group_id}, callback")
            return
        server = None
        try:
            server = await asyncio.wait_for(self._server(), CONNECT_TIMEOUT)
            self.set_state(StateKind.CONNECTED, f"community {self.config.group_id}, long poll")
        except Exception as e:
            # Not fatal: the background task keeps trying, the state says why meanwhile.
            self.set_state(StateKind.DISCONNECTED, self.client.scrub(str(e) or type(e).__name__))
        self._poller = asyncio.create_task(self._run(server), name=f"vk:{self.account_id}")

    async def stop(self) -> None:
        self._open = False
        await cancel_and_wait([self._poller])
        self._poller = None
        self.set_state(StateKind.STOPPED)

    # ------------------------------------------------------------------ VK -> Matrix

    async def _hand_over(self, raw: Any) -> None:
        """Record the events of one VK event; PayloadError if it is unreadable."""
        events = parse_event(raw, self.config.group_id)
        if events:
            for event in await self.names.fill(events):
                await self.host.handle_remote_event(event)
                if isinstance(event, RemoteButtonPress):
                    await self._answer_press(event)

    async def _answer_press(self, press: RemoteButtonPress) -> None:
        """Tell VK the press was taken (else the button spins on the customer's screen)."""
        vk_event = press.metadata.get("vk_event", {})
        try:
            await self.client.call(
                "messages.sendMessageEventAnswer",
                event_id=vk_event.get("event_id"),
                user_id=vk_event.get("user_id"),
                peer_id=press.chat.id,
            )
        except Exception as e:  # the press is recorded; only the spinner stays a while
            self.host.log.warning("Could not answer a button press: %s", pii(e))

    async def _callback(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await read_body(request, MAX_BODY)
        except BodyTooLarge:
            return web.Response(status=413, text="too large")
        try:
            raw = json.loads(body)
        except (ValueError, RecursionError):
            return web.Response(status=400, text="not JSON")
        if not isinstance(raw, dict):
            return web.Response(status=400, text="not an event")
        given = raw.get("secret")
        given_bytes = given.encode("utf-8", "surrogatepass") if isinstance(given, str) else b""
        right = hmac.compare_digest(given_bytes, self.config.secret.encode())
        if raw.get("type") == "confirmation" and (right or given is None):
            # The code only proves the address to VK; a confirmation may come without secret.
            if raw.get("group_id") != self.config.group_id:
                return web.Response(status=400, text="another community")
            return web.Response(text=self.config.confirmation_code)
        if not right:
            self.host.log.warning("Refused a Callback API request with a wrong secret")
            return web.Response(status=403, text="wrong secret")
        if not self._open:
            return web.Response(status=503, text="not running")
        try:
            await self._hand_over(raw)
        except PayloadError as e:
            # Answered ok: VK would repeat an unreadable event forever, and pause the server.
            self.host.log.warning("Skipping an unreadable VK event: %s", pii(e))
        except Exception:
            # Not stored: anything but "ok" makes VK deliver the event again.
            self.host.log.exception("Could not record VK event %s", pii(raw.get("event_id")))
            return web.Response(status=500, text="not stored")
        retry = request.headers.get("X-Retry-Counter")
        if retry:
            self.host.log.info(
                "VK delivered event %s again (retry %s)", raw.get("event_id"), retry
            )
        return web.Response(text=OK)

    async def _run(self, server: dict[str, Any] | None) -> None:
        delay = 1.0
        while self._open:
            try:
                await self._poll(server or await self._server())
            except asyncio.CancelledError:
                raise
            except Exception as e:
                error = self.client.scrub(str(e) or type(e).__name__)
                server = None
                self.set_state(StateKind.DISCONNECTED, error)
                self.host.log.warning("VK long poll failed (%s); retrying in %.0fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    async def _server(self) -> dict[str, Any]:
        server = await self.client.call("groups.getLongPollServer", group_id=self.config.group_id)
        if not isinstance(server, dict) or not all(k in server for k in ("server", "key", "ts")):
            raise TemporaryDeliveryError("groups.getLongPollServer gave no server")
        return server

    async def _poll(self, server: dict[str, Any]) -> None:
        data = await self.host.load_data()
        ts = str(data.get("ts") or server["ts"])
        self.set_state(StateKind.CONNECTED, f"community {self.config.group_id}, long poll")
        while True:
            params = {"act": "a_check", "key": server["key"], "ts": ts}
            params["wait"] = str(int(self.config.poll_wait))
            answer = await self._check(str(server["server"]), params)
            failed = answer.get("failed")
            if failed == 1:  # events were lost to history: go on from the ts VK gives
                ts = str(answer.get("ts", ts))
                continue
            if failed in (2, 3):  # the key expired (2) or the session is lost (3)
                server = await self._server()
                ts = ts if failed == 2 else str(server["ts"])
                continue
            updates = answer.get("updates")
            for raw in updates if isinstance(updates, list) else []:
                try:
                    await self._hand_over(raw)
                except PayloadError as e:
                    self.host.log.warning("Skipping an unreadable VK event: %s", pii(e))
            new_ts = answer.get("ts")
            if new_ts is not None and str(new_ts) != ts:
                ts = str(new_ts)
                # Only once every event of the batch is recorded: after a crash before this
                # line the batch comes again, and the dedup keys keep it from doubling.
                data = {**data, "ts": ts}
                await self.host.save_data(data)

    async def _check(self, url: str, params: dict[str, str]) -> dict[str, Any]:
        total = self.config.poll_wait + self.config.request_timeout
        try:
            async with self.host.http.get(
                url, params=params, timeout=aiohttp.ClientTimeout(total=total)
            ) as resp:
                if resp.status != 200:
                    raise TemporaryDeliveryError(f"VK long poll answered HTTP {resp.status}")
                answer = json.loads(await resp.read())
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise TemporaryDeliveryError(f"VK long poll failed: {e}") from e
        if not isinstance(answer, dict):
            raise TemporaryDeliveryError("VK long poll answered without an object")
        return answer

    async def download_attachment(self, attachment: RemoteAttachment) -> tuple[MediaFile, str]:
        mimetype = attachment.mimetype or "application/octet-stream"
        media = await self.client.download(attachment.url, DOWNLOAD_LIMIT, mimetype)
        return media, mimetype

    # ------------------------------------------------------------------ Matrix -> VK

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


__all__ = ["CALLBACK_PATH", "RemoteEvent", "VKConnector", "VKError"]
