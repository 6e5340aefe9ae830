"""The registry of channel connectors, imported lazily by config ``type``."""

from __future__ import annotations

import importlib

from ..connector import NetworkConnector

CONNECTORS: dict[str, str] = {
    "webhook": "bridge.connectors.webhook:WebhookConnector",
    "telegram": "bridge.connectors.telegram:TelegramConnector",
    "whatsapp": "bridge.connectors.whatsapp:WhatsAppConnector",
    "email": "bridge.connectors.email:EmailConnector",
    "vk": "bridge.connectors.vk:VKConnector",
    "max": "bridge.connectors.max:MaxConnector",
}


def connector_class(channel_type: str) -> type[NetworkConnector] | None:
    """The connector class for a config ``type``, or None if there is no such channel."""
    target = CONNECTORS.get(channel_type)
    if target is None:
        return None
    module, _, name = target.partition(":")
    cls: type[NetworkConnector] = getattr(importlib.import_module(module), name)
    return cls
