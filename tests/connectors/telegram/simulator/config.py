"""The documented limits the simulator enforces (its clock is ``sim_base.SimClock``)."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1 << 20


@dataclass
class RateLimits:
    """Flood control as documented in the Bot FAQ. Private chats: a token bucket of
    ``private_per_second`` with ``private_burst``; groups/channels: ``group_per_minute`` in any
    60 s; all chats: ``global_per_second`` in any second."""

    enabled: bool = True
    private_per_second: float = 1.0
    private_burst: int = 3
    group_per_minute: int = 20
    global_per_second: int = 30
    count_edits: bool = False


@dataclass
class Limits:
    """The documented size limits; tests may lower them to keep payloads small."""

    text_length: int = 4096
    caption_length: int = 1024
    raw_text_bytes: int = 1 << 15
    download_max: int = 20 * MiB
    upload_max: int = 50 * MiB
    photo_max: int = 10 * MiB
    delete_window: float = 48 * 3600
