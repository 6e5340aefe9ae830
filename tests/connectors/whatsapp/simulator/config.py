"""The documented limits the simulator enforces (its clock is ``sim_base.SimClock``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..payloads import is_animated_webp

KiB = 1 << 10
MiB = 1 << 20


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
