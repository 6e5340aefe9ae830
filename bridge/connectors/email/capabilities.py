"""What a mail can carry. Mail has no edits, deletions or reactions and no length limit worth
splitting for; the largest mail the account takes comes from its config."""

from __future__ import annotations

import dataclasses

from ...connector import Capabilities
from .config import EmailConfig

EMAIL_CAPABILITIES = Capabilities(
    html=True,
    max_text_length=None,
    max_file_size={"*": 25 * 1024 * 1024},
    delivery_deadline=24 * 3600.0,
)


def capabilities_for(config: EmailConfig) -> Capabilities:
    """The capabilities of one account: the class constant with its configured limits."""
    return dataclasses.replace(
        EMAIL_CAPABILITIES,
        max_file_size={"*": config.max_size},
        delivery_deadline=config.delivery_deadline,
    )
