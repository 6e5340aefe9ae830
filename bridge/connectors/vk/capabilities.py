"""What a VK conversation can carry (VK API limits, see shared/CHANNELS.md)."""

from __future__ import annotations

import dataclasses

from ...connector import Capabilities
from .config import VKConfig

MIB = 1024 * 1024
TEXT_LIMIT = 4096
"""``messages.send``: a longer ``message`` is refused (error 914)."""
PHOTO_LIMIT = 50 * MIB
DOC_LIMIT = 200 * MIB
DOWNLOAD_LIMIT = 200 * MIB
EDIT_WINDOW = 24 * 3600.0
"""``messages.edit`` refuses older messages (error 909)."""
DELETE_WINDOW = 24 * 3600.0
"""``messages.delete`` with ``delete_for_all`` works for a day (error 924 after)."""
REQUESTS_PER_SECOND = 20.0
"""A community token may call the API 20 times a second (error 6 beyond)."""

VK_CAPABILITIES = Capabilities(
    html=False,  # community messages are plain text
    max_text_length=TEXT_LIMIT,
    max_file_size={"m.image": PHOTO_LIMIT, "*": DOC_LIMIT},
    edit_window=EDIT_WINDOW,
    delete_window=DELETE_WINDOW,
    rate_limits={"global": REQUESTS_PER_SECOND},
    delivery_deadline=24 * 3600.0,
    max_buttons=6,  # an inline keyboard of callback buttons, one a row (at most 6 rows)
    max_button_title=40,  # a button's label
    max_button_id=64,  # with the title, in the button's payload (at most 255 characters)
)


def capabilities_for(config: VKConfig) -> Capabilities:
    return dataclasses.replace(VK_CAPABILITIES, delivery_deadline=config.delivery_deadline)
