"""The WhatsApp Business Cloud API connector: one business phone number per channel account."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

from ...connector import (
    BridgeHost,
    NetworkConnector,
    PermanentDeliveryError,
    StateKind,
    Template,
)
from ...events import (
    MatrixMessage,
    MatrixReaction,
    MatrixReactionRemove,
    MatrixReadReceipt,
    RemoteAttachment,
    SentMessage,
)
from ...media import MediaFile
from ...types import AccountID, RemoteChatID
from .capabilities import UPLOAD_LIMITS, WHATSAPP_CAPABILITIES, capabilities_for
from .client import GraphClient
from .config import WhatsAppConfig, parse_config
from .handle_matrix import WhatsAppSender
from .handle_remote import Webhook, media_id_of
from .templates import Templates, chat_for_address

WEBHOOK_PATH = "/webhook"
DOWNLOAD_LIMIT = UPLOAD_LIMITS["document"]


class WhatsAppConnector(NetworkConnector):
    """Receives Meta's webhooks on ``/connectors/<account>/webhook`` and sends through the
    Graph API. WhatsApp has no edits or deletions by businesses: the core tells staff so."""

    channel = "whatsapp"
    title = "WhatsApp"
    capabilities = WHATSAPP_CAPABILITIES
    config: WhatsAppConfig

    def __init__(self, account_id: AccountID, config: WhatsAppConfig, host: BridgeHost) -> None:
        super().__init__(account_id, config, host)
        self.public_address = config.display_number
        self.capabilities = capabilities_for(config)
        self.title = config.title
        self.webhook = Webhook(config, host)
        self._client: GraphClient | None = None
        self._matrix: WhatsAppSender | None = None
        self._routes = False

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], key: str) -> WhatsAppConfig:
        return parse_config(raw, key)

    @property
    def client(self) -> GraphClient:
        if self._client is None:
            self._client = GraphClient(self.config, self.host.http, self.capabilities.rate_limits)
        return self._client

    @property
    def matrix(self) -> WhatsAppSender:
        # One handler for the connector's life: it remembers the parts of long messages sent.
        if self._matrix is None:
            self._matrix = WhatsAppSender(
                self.client, self.host, self.webhook.last_inbound, self.capabilities
            )
        return self._matrix

    async def start(self) -> None:
        if not self._routes:
            self.host.add_route("GET", WEBHOOK_PATH, self.webhook.verify)
            self.host.add_route("POST", WEBHOOK_PATH, self.webhook.receive)
            self._routes = True
        self.templates = Templates(self.client, self.config.template_cache)
        self.webhook.open = True
        self.set_state(StateKind.CONNECTED, f"number id {self.config.phone_number_id}")

    async def stop(self) -> None:
        self.webhook.open = False
        await self.webhook.buffer.close()
        self.set_state(StateKind.STOPPED)

    # ------------------------------------------------------------------ WhatsApp -> Matrix

    async def download_attachment(self, attachment: RemoteAttachment) -> tuple[MediaFile, str]:
        media_id = media_id_of(attachment.url)
        info = await self.client.request("GET", media_id)
        url = info.get("url")
        if not isinstance(url, str):
            raise PermanentDeliveryError("WhatsApp gave no download URL for the media")
        mimetype = info.get("mime_type") if isinstance(info.get("mime_type"), str) else None
        mimetype = (mimetype or attachment.mimetype or "application/octet-stream").split(";")[0]
        media = await self.client.download(url, DOWNLOAD_LIMIT, mimetype)
        expected = info.get("sha256") or attachment.extra.get("sha256")
        if isinstance(expected, str) and not await _matches(media, expected):
            media.close()
            raise PermanentDeliveryError("the downloaded media does not match its checksum")
        return media, mimetype

    # ------------------------------------------------------------------ Matrix -> WhatsApp

    async def send_message(self, msg: MatrixMessage) -> SentMessage:
        return await self.matrix.send_message(msg)

    async def send_reply(self, msg: MatrixMessage) -> SentMessage:
        return await self.matrix.send_message(msg)

    async def send_media(self, msg: MatrixMessage) -> SentMessage:
        return await self.matrix.send_media(msg)

    async def handle_matrix_reaction(self, reaction: MatrixReaction) -> None:
        await self.matrix.react(reaction)

    async def handle_matrix_reaction_remove(self, removal: MatrixReactionRemove) -> None:
        await self.matrix.unreact(removal)

    async def handle_matrix_read_receipt(self, receipt: MatrixReadReceipt) -> None:
        await self.matrix.read(receipt)

    async def list_templates(self) -> list[Template]:
        return await self.templates.fetch()

    async def send_template(
        self, chat: RemoteChatID, template: Template, params: list[str]
    ) -> SentMessage:
        return await self.templates.send(chat, template, params)

    def chat_for_address(self, address: str) -> RemoteChatID:
        return chat_for_address(address)


async def _matches(media: MediaFile, expected: str) -> bool:
    """The Graph API gives the SHA-256 in hex, webhooks in base64: accept either."""
    sha = hashlib.sha256()
    async for chunk in media.chunks():
        sha.update(chunk)
    digest = sha.digest()
    return expected.strip().lower() == digest.hex() or expected.strip() == base64.b64encode(
        digest
    ).decode("ascii")
