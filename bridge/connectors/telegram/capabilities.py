"""What a Telegram chat can carry (Bot API limits, see shared/CHANNELS.md)."""

from __future__ import annotations

import dataclasses

from ...connector import Capabilities
from .config import TelegramConfig

MIB = 1024 * 1024
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
DOWNLOAD_LIMIT = 20 * MIB
"""getFile refuses larger files: they cannot be bridged from Telegram."""

TELEGRAM_CAPABILITIES = Capabilities(
    html=True,
    max_text_length=TEXT_LIMIT,
    max_file_size={"m.image": 10 * MIB, "*": 50 * MIB},
    edit_window=None,
    delete_window=48 * 3600.0,
    rate_limits={"chat": 1.0, "group": 20 / 60, "global": 30.0},
    delivery_deadline=24 * 3600.0,
    max_buttons=100,  # an inline keyboard of callback buttons (buttons.py)
    max_button_id=64,  # callback_data: 1-64 bytes
)


def capabilities_for(config: TelegramConfig) -> Capabilities:
    return dataclasses.replace(TELEGRAM_CAPABILITIES, delivery_deadline=config.delivery_deadline)
