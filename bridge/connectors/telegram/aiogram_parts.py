"""The parts of the Telegram connector built on aiogram, in the one module the connector
imports lazily, as ``tg`` (``bridge.connectors.lazy``): importing aiogram takes seconds, and the
bridge is to be up and serving before."""

from __future__ import annotations

from typing import Any

from aiogram.methods import GetUpdates
from aiogram.types import CallbackQuery, Update

from .buttons import answerable, press_events
from .client import BotBlocked, TelegramClient
from .handle_matrix import TelegramSender, parse_chat
from .handle_remote import FILE_PREFIX, UnreadableUpdate, update_to_events


class RawUpdates(GetUpdates):
    """getUpdates with the updates left as plain JSON: aiogram reads a whole batch at once, so
    one update it cannot read would make every later one unreachable; read one by one instead,
    the unreadable one is skipped."""

    __returning__ = list[Any]  # type: ignore[assignment]


__all__ = [
    "FILE_PREFIX",
    "BotBlocked",
    "CallbackQuery",
    "RawUpdates",
    "TelegramClient",
    "TelegramSender",
    "UnreadableUpdate",
    "Update",
    "answerable",
    "parse_chat",
    "press_events",
    "update_to_events",
]
