"""The wire format shared by both directions: JSON bodies signed with HMAC-SHA256, with a
timestamp so that a captured request cannot be replayed later.

A request carries ``X-Bridge-Signature: t=<unix seconds>,sha256=<hex>``. ``<hex>`` is the
HMAC-SHA256, under the account's shared secret, of the timestamp as decimal ASCII, a dot and
the raw body: ``HMAC(secret, b"1700000000." + body)``. The receiver refuses a request whose
timestamp is more than the tolerance (``signature_tolerance``, default 300 seconds) away from
its own clock, in either direction, so a repeat of a captured request works only inside that
window, where the idempotency keys (outbound) and the dedup of event ids (inbound) drop it.
Each retry is signed anew with the time it is sent. Outbound requests also carry
``Idempotency-Key: <Matrix event id>`` so that the receiver can drop a repeat sent after a
crash or a lost answer.

The older form without a timestamp (``sha256=<hex>`` of the body alone) is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from ...media import MediaFile

SIGNATURE_HEADER = "X-Bridge-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_PREFIX = "sha256="
DEFAULT_TOLERANCE = 300.0
"""Seconds a signature's timestamp may differ from the receiver's clock."""
_HEADER = re.compile(r"t=([0-9]{1,12}),sha256=([0-9a-fA-F]{64})")
FORMAT = "t=<unix seconds>,sha256=<hex>"


class SignatureError(ValueError):
    """Why a signature header was refused (safe to answer to the sender)."""


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


FILE_DATA = "\ufffcbridge-file-data\ufffc"
"""Put in a payload where a file's base64 goes (``attachment.data_base64``); see ``Body``."""
_B64_READ = 3 * 64 * 1024  # a multiple of 3: each chunk's base64 has no padding


class Body:
    """An outbound request body: the JSON of ``payload``, in which the string ``FILE_DATA``
    stands for the base64 of ``file``. The base64 is made chunk by chunk as the body is
    signed and sent, so neither the file nor its base64 (a third larger) is ever held whole.
    """

    def __init__(self, payload: dict[str, Any], file: MediaFile | None = None) -> None:
        encoded = encode(payload)
        self.file = file
        if file is None:
            self.prefix, self.suffix = encoded, b""
            return
        marker = json.dumps(FILE_DATA, ensure_ascii=False).encode()[1:-1]
        self.prefix, found, self.suffix = encoded.partition(marker)
        if not found:
            raise ValueError("the payload has no FILE_DATA place for the file")

    @property
    def length(self) -> int:
        data = 4 * -(-self.file.size // 3) if self.file is not None else 0
        return len(self.prefix) + data + len(self.suffix)

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.prefix
        if self.file is not None:
            async for chunk in self.file.chunks(_B64_READ):
                yield base64.b64encode(chunk)
            yield self.suffix

    async def sign(self, secret: str, timestamp: int | None = None) -> str:
        """The ``X-Bridge-Signature`` value, as ``sign`` gives it for the whole body."""
        when = int(time.time()) if timestamp is None else timestamp
        mac = hmac.new(secret.encode(), str(when).encode() + b".", hashlib.sha256)
        async for chunk in self.chunks():
            mac.update(chunk)
        return f"t={when},{SIGNATURE_PREFIX}{mac.hexdigest()}"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Bridge-Signature`` value for ``body``, sent at ``timestamp`` (default: now)."""
    when = int(time.time()) if timestamp is None else timestamp
    return f"t={when},{SIGNATURE_PREFIX}{_digest(secret, when, body)}"


def check(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Raise ``SignatureError`` unless ``header`` signs ``body`` under ``secret`` with a
    timestamp within ``tolerance`` seconds of ``now``; the digest is compared in constant
    time."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    match = _HEADER.fullmatch(header.strip())
    if match is None:
        raise SignatureError(f"{SIGNATURE_HEADER} must have the form {FORMAT}")
    timestamp = int(match[1])
    expected = _digest(secret, timestamp, body)
    if not hmac.compare_digest(expected, match[2].lower()):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body")
    skew = (time.time() if now is None else now) - timestamp
    if abs(skew) > tolerance:
        when = "old" if skew > 0 else "far in the future"
        raise SignatureError(
            f"{SIGNATURE_HEADER} timestamp is too {when} ({abs(skew):.0f} seconds; "
            f"at most {tolerance:g} are accepted)"
        )


def verify(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether ``header`` is a valid, recent signature of ``body`` (see ``check``)."""
    try:
        check(secret, body, header, tolerance=tolerance, now=now)
    except SignatureError:
        return False
    return True


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed) for ``payload``."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
