"""The simulator's clock and the documented limits it enforces."""

from __future__ import annotations

import time
from dataclasses import dataclass

MiB = 1 << 20


class SimClock:
    """The simulator's notion of "now": wall time plus ``offset`` seconds. Message dates, the
    48-hour delete rule and flood-limit buckets all read it, so ``advance`` ages everything."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._frozen: float | None = None

    def now(self) -> float:
        base = time.time() if self._frozen is None else self._frozen
        return base + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def freeze(self) -> None:
        """Stop time (until ``unfreeze``) so flood-limit tests do not depend on test speed;
        ``advance`` still moves it."""
        self._frozen = time.time()

    def unfreeze(self) -> None:
        if self._frozen is not None:
            self.offset -= time.time() - self._frozen
            self._frozen = None


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
