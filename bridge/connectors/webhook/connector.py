"""``WebhookConnector``: one signed-JSON webhook endpoint as a channel account."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...connector import BridgeHost, NetworkConnector, StateKind
from ...events import (
    MatrixEdit,
    MatrixMessage,
    MatrixReaction,
    MatrixReactionRemove,
    MatrixRedaction,
    RemoteAttachment,
    SentMessage,
)
from ...media import MediaFile
from ...types import AccountID
from .capabilities import WEBHOOK_CAPABILITIES, capabilities_for
from .client import WebhookClient
from .config import WebhookConfig, parse_config
from .handle_matrix import WebhookSender
from .handle_remote import InboundEndpoint

EVENTS_PATH = "/events"


class WebhookConnector(NetworkConnector):
    """Receives events on ``POST /connectors/<account>/events`` and POSTs staff messages to
    ``outbound_url``. Implements every optional capability except read receipts and typing."""

    channel = "webhook"
    title = "Webhook"
    capabilities = WEBHOOK_CAPABILITIES
    config: WebhookConfig

    def __init__(self, account_id: AccountID, config: WebhookConfig, host: BridgeHost) -> None:
        super().__init__(account_id, config, host)
        self.capabilities = capabilities_for(config)
        self.title = config.title
        self.client = WebhookClient(config, host)
        self.matrix = WebhookSender(config, self.client)
        self.endpoint = InboundEndpoint(config, host)
        self.inbound_path: str | None = None
        """The full path the host serves inbound events on, once started."""

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], key: str) -> WebhookConfig:
        return parse_config(raw, key)

    async def start(self) -> None:
        if self.inbound_path is None:
            self.inbound_path = self.host.add_route("POST", EVENTS_PATH, self.endpoint.handle)
        self.endpoint.open = True
        note = "" if self.config.outbound_enabled else "outbound delivery is not configured"
        self.set_state(StateKind.CONNECTED, note)

    async def stop(self) -> None:
        # The route stays registered (the host has no way to remove it) but answers 503, so
        # senders keep their events and retry once the account runs again.
        self.endpoint.open = False
        await self.client.close()
        self.set_state(StateKind.STOPPED)

    async def send_message(self, msg: MatrixMessage) -> SentMessage:
        return await self.matrix.send_message(msg)

    async def send_reply(self, msg: MatrixMessage) -> SentMessage:
        return await self.matrix.send_message(msg)

    async def send_media(self, msg: MatrixMessage) -> SentMessage:
        return await self.matrix.send_media(msg)

    async def handle_matrix_edit(self, edit: MatrixEdit) -> None:
        await self.matrix.edit(edit)

    async def handle_matrix_redaction(self, redaction: MatrixRedaction) -> None:
        await self.matrix.redact(redaction)

    async def handle_matrix_reaction(self, reaction: MatrixReaction) -> None:
        await self.matrix.react(reaction)

    async def handle_matrix_reaction_remove(self, removal: MatrixReactionRemove) -> None:
        await self.matrix.unreact(removal)

    async def download_attachment(self, attachment: RemoteAttachment) -> tuple[MediaFile, str]:
        return await self.client.download(attachment)
