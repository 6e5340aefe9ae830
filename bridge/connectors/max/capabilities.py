"""What a MAX chat can carry (Bot API limits, see shared/CHANNELS.md and the package
docstring)."""

from __future__ import annotations

import dataclasses

from ...connector import Capabilities
from .config import MaxConfig

MIB = 1024 * 1024
TEXT_LIMIT = 4000
"""Characters of ``text`` in one message."""
UPLOAD_LIMIT = 4 * 1024 * MIB
"""Files up to 4 GB can be uploaded."""
DOWNLOAD_LIMIT = 100 * MIB
"""What the bridge fetches from MAX for Matrix (the Matrix media repository's usual limit)."""
BUTTON_ROWS = 30
"""Inline keyboards: up to 30 rows (one button a row here)."""

MAX_CAPABILITIES = Capabilities(
    html=True,  # formatting goes out with ``format: html`` (MAX's subset of tags)
    max_text_length=TEXT_LIMIT,
    max_file_size={"*": UPLOAD_LIMIT},
    edit_window=None,
    delete_window=24 * 3600.0,
    rate_limits={"chat": 2.0, "global": 30.0},
    delivery_deadline=24 * 3600.0,
    max_buttons=BUTTON_ROWS,
    max_button_title=128,
    max_button_id=1024,
)


def capabilities_for(config: MaxConfig) -> Capabilities:
    return dataclasses.replace(MAX_CAPABILITIES, delivery_deadline=config.delivery_deadline)
