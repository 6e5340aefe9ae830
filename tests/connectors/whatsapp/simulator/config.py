"""The simulator's clock and the documented limits it enforces."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..payloads import is_animated_webp

KiB = 1 << 10
MiB = 1 << 20


class SimClock:
    """The simulator's "now": wall time plus ``offset``. The 24-hour window, media URL expiry
    and the rate limits read it, so ``advance`` ages everything at once."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._frozen: float | None = None

    def now(self) -> float:
        return (time.time() if self._frozen is None else self._frozen) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def freeze(self) -> None:
        """Stop time (``advance`` still moves it) so rate-limit tests do not race the wall."""
        self._frozen = time.time()

    def unfreeze(self) -> None:
        if self._frozen is not None:
            self.offset -= time.time() - self._frozen
            self._frozen = None


@dataclass
class Limits:
    """The documented limits; tests may lower them to keep payloads small."""

    text_length: int = 4096
    caption_length: int = 1024
    image_bytes: int = 5 * MiB
    audio_bytes: int = 16 * MiB
    video_bytes: int = 16 * MiB
    document_bytes: int = 100 * MiB
    sticker_bytes: int = 100 * KiB
    animated_sticker_bytes: int = 500 * KiB
    media_url_ttl: float = 300.0
    service_window: float = 24 * 3600.0

    def media_bytes(self, kind: str, data: bytes) -> int:
        if kind == "sticker" and is_animated_webp(data):
            return self.animated_sticker_bytes
        return int(getattr(self, f"{kind}_bytes"))


@dataclass
class RateLimits:
    """Throughput per business number (130429) and the pair rate to one user (131056): a token
    bucket of ``pair_burst`` refilled with one message every ``pair_interval`` seconds."""

    enabled: bool = True
    messages_per_second: int = 80
    pair_interval: float = 6.0
    pair_burst: int = 45
