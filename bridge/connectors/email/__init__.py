"""The email connector: a company mailbox (IMAP, SMTP) as conversations."""

from .config import EmailConfig
from .connector import EmailConnector

__all__ = ["EmailConfig", "EmailConnector"]
