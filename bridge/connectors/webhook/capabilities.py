"""What a webhook channel can carry. The receiver is our own integrator's code, so it takes
everything Matrix can express; only the deadline and file size come from the account config."""

from __future__ import annotations

import dataclasses

from ...connector import Capabilities
from .config import WebhookConfig

WEBHOOK_CAPABILITIES = Capabilities(
    html=True,
    max_text_length=None,
    max_file_size={"*": 20 * 1024 * 1024},
    edit_window=None,
    delete_window=None,
    rate_limits={},
    delivery_deadline=3600.0,
    # Buttons go out in the payload; a press comes back as an inbound "button" event, whose
    # ids and title the inbound schema takes up to 255 (bytes for ids, characters for titles).
    max_buttons=10,
    max_button_title=255,
    max_button_id=255,
)


def capabilities_for(config: WebhookConfig) -> Capabilities:
    """The capabilities of one account: the class constant with its configured limits."""
    return dataclasses.replace(
        WEBHOOK_CAPABILITIES,
        max_file_size={"*": config.max_file_size},
        delivery_deadline=config.delivery_deadline,
    )
