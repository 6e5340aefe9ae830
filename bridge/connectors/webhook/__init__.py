"""The generic webhook connector: an in-house system or a chatbot talks to the bridge over
signed JSON HTTP requests, in both directions."""

from __future__ import annotations

from .config import WebhookConfig
from .connector import WebhookConnector

__all__ = ["WebhookConfig", "WebhookConnector"]
