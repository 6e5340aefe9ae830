"""Where files live on "Telegram's servers", and image sizes read from file headers."""

from __future__ import annotations

import contextlib
import struct

_FILE_DIRS = {
    "photo": ("photos", ".jpg"), "document": ("documents", ""), "audio": ("music", ".mp3"),
    "voice": ("voice", ".oga"), "video": ("videos", ".mp4"), "video_note": ("video_notes", ".mp4"),
    "sticker": ("stickers", ".webp"), "animation": ("animations", ".mp4"),
    "profile_photo": ("profile_photos", ".jpg"),
}  # fmt: skip
_DEFAULT_MIME = {"voice": "audio/ogg", "video_note": "video/mp4", "sticker": "image/webp"}


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, GIF, WebP or JPEG image, read from its header."""
    with contextlib.suppress(struct.error, IndexError):
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            w, h = struct.unpack(">II", data[16:24])
            return int(w), int(h)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", data[6:10])
            return int(w), int(h)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                w = 1 + int.from_bytes(data[24:27], "little")
                return w, 1 + int.from_bytes(data[27:30], "little")
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return int(w) & 0x3FFF, int(h) & 0x3FFF
            if chunk == b"VP8L":
                b = data[21:25]
                w = 1 + (((b[1] & 0x3F) << 8) | b[0])
                return w, 1 + (((b[3] & 0xF) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
        if data[:2] == b"\xff\xd8":
            i = 2
            while i + 9 < len(data):
                if data[i] != 0xFF:
                    i += 1
                    continue
                marker = data[i + 1]
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                    return int(w), int(h)
                i += 2 + int(struct.unpack(">H", data[i + 2 : i + 4])[0])
    return None
