"""What the core gives each connector: the ``BridgeHost`` of one channel account."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from ..connector import ConnectorState, StateKind
from ..db import ChannelAccount, Conversation, Message, Spool
from ..events import RemoteEvent
from ..media import MediaFile
from ..types import AccountID, RemoteChatID

if TYPE_CHECKING:
    from .bridge import Bridge


class ConnectorHost:
    def __init__(self, bridge: Bridge, account: AccountID) -> None:
        self._bridge = bridge
        self.account = account
        self.log = logging.getLogger(f"bridge.channel.{account}")
        self.state = ConnectorState(StateKind.STARTING)

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._bridge.http is not None
        return self._bridge.http

    async def handle_remote_event(self, event: RemoteEvent) -> bool:
        return await self._bridge.pipeline.record_remote(self.account, event)

    def add_route(
        self,
        method: str,
        path: str,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> str:
        return self._bridge.listener.add_route(self.account, method, path, handler)

    def set_state(self, state: ConnectorState) -> None:
        if state != self.state:
            detail = f" ({state.message})" if state.message else ""
            self.log.info("State: %s%s", state.kind.value, detail)
        self.state = state

    async def load_data(self) -> dict[str, Any]:
        account = await ChannelAccount.get(self.account)
        return dict(account.data) if account else {}

    async def find_chat(self, message_ids: list[str]) -> RemoteChatID | None:
        chat = await Message.chat_of(self.account, message_ids)
        return RemoteChatID(chat) if chat else None

    async def portal_metadata(self, chat: RemoteChatID) -> dict[str, Any]:
        return await Conversation.data(self.account, chat)

    async def spool(self, data: bytes) -> str:
        return await Spool.put(self.account, data)

    async def open_spooled(self, key: str, mimetype: str) -> MediaFile | None:
        return await Spool.open(self.account, key, mimetype)

    async def unspool(self, key: str) -> None:
        if key.startswith(f"{self.account}/"):
            await Spool.delete(key)

    async def save_data(self, data: dict[str, Any]) -> None:
        account = await ChannelAccount.get(self.account)
        if account is None:
            raise RuntimeError(f"channel account {self.account} is not in the database")
        account.data = data
        await account.save()
