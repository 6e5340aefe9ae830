"""The WhatsApp Business Cloud API connector."""

from .config import WhatsAppConfig
from .connector import WhatsAppConnector

__all__ = ["WhatsAppConfig", "WhatsAppConnector"]
