"""The Telegram connector: a company's Telegram bot, through aiogram."""

from .config import TelegramConfig
from .connector import TelegramConnector

__all__ = ["TelegramConfig", "TelegramConnector"]
