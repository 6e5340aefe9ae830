"""What a WhatsApp conversation can carry (Cloud API limits, see shared/CHANNELS.md)."""

from __future__ import annotations

import dataclasses

from ...connector import Capabilities
from .config import WhatsAppConfig

MIB = 1024 * 1024
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
BUTTON_BODY_LIMIT = 1024
"""An interactive message's body text: the text above reply buttons."""
WINDOW = 24 * 3600.0
"""Free-form messages are allowed this long after the customer's last message."""
UPLOAD_LIMITS = {
    "image": 5 * MIB,
    "audio": 16 * MIB,
    "video": 16 * MIB,
    "document": 100 * MIB,
    "sticker": 100 * 1024,
}

WHATSAPP_CAPABILITIES = Capabilities(
    html=True,  # formatting goes out as WhatsApp's markup (*bold*, _italic_, ```code```)
    max_text_length=TEXT_LIMIT,
    max_file_size={
        "m.image": UPLOAD_LIMITS["image"],
        "m.audio": UPLOAD_LIMITS["audio"],
        "m.video": UPLOAD_LIMITS["video"],
        "m.file": UPLOAD_LIMITS["document"],
    },
    edit_window=None,
    delete_window=None,
    rate_limits={"number": 80.0, "pair": 1 / 6},
    delivery_deadline=24 * 3600.0,
    max_buttons=3,  # interactive "button" messages: 1-3 reply buttons
    max_button_title=20,
    max_button_id=256,
)


def capabilities_for(config: WhatsAppConfig) -> Capabilities:
    return dataclasses.replace(WHATSAPP_CAPABILITIES, delivery_deadline=config.delivery_deadline)
