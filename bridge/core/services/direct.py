"""Direct messages: a message to a remote chat straight through its connector, without a
portal room or a queue item (``Services.send_direct``; a broadcast's per-recipient sends)."""

from __future__ import annotations

from ...connector import (
    MediaSender,
    PermanentDeliveryError,
    TemplateHandler,
    button_problem,
)
from ...events import MatrixMedia, MatrixMessage
from ...seams import DirectMessage, MediaRef
from ...types import AccountID, PortalKey, RemoteChatID
from .common import ServiceBase


class DirectServices(ServiceBase):
    def channel_title(self, account: str) -> str:
        return self.portals.channel_title(account)

    def public_address(self, account: str) -> str | None:
        connector = self.connectors.get(account)
        return connector.public_address if connector is not None else None

    def chat_for_address(self, account: str, address: str) -> str:
        connector = self.connectors.get(account)
        find = getattr(connector, "chat_for_address", None)
        if connector is None or find is None:
            raise ValueError(f"{self.channel_title(account)} has no addresses to write to")
        return str(find(address))

    async def send_direct(self, account: str, chat: str, message: DirectMessage) -> str:
        connector = self.connectors.get(account)
        if connector is None:
            raise PermanentDeliveryError(f"channel account {account} is not configured")
        capabilities = connector.capabilities
        if message.template is not None:
            if not isinstance(connector, TemplateHandler):
                raise PermanentDeliveryError(f"{connector.title} has no templates")
            found = {t.name: t for t in await connector.list_templates()}.get(message.template)
            if found is None:
                raise PermanentDeliveryError(f"there is no template {message.template!r}")
            sent = await connector.send_template(
                RemoteChatID(chat), found, list(message.template_params)
            )
            return str(sent.message_id)
        problem = button_problem(message.buttons, capabilities, connector.title)
        if problem is not None:
            raise PermanentDeliveryError(problem)
        msgtype = message.media.msgtype if message.media is not None else "m.text"
        outgoing = MatrixMessage(
            portal=PortalKey(AccountID(account), RemoteChatID(chat)),
            event_id=message.key or f"direct:{account}:{chat}",
            sender=self.config.bot_mxid,
            sender_name="",
            msgtype=msgtype,
            text=message.text,
            html=message.html if capabilities.html else None,
            media=self._media(message.media) if message.media is not None else None,
            automatic=True,
            buttons=message.buttons,
            headers=message.headers,
        )
        if outgoing.media is not None:
            if not isinstance(connector, MediaSender):
                raise PermanentDeliveryError(f"{connector.title} cannot carry files")
            sent = await connector.send_media(outgoing)
        else:
            sent = await connector.send_message(outgoing)
        return str(sent.message_id)

    def _media(self, media: MediaRef) -> MatrixMedia:
        return self.sender.media(media.url, media.filename, media.mimetype, media.size, media.file)
