"""The wire format shared by both directions: JSON bodies signed with HMAC-SHA256.

A request carries ``X-Bridge-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw body under
the account's shared secret. Outbound requests also carry ``Idempotency-Key: <Matrix event id>``
so that the receiver can drop a repeat sent after a crash or a lost answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

SIGNATURE_HEADER = "X-Bridge-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    """The ``X-Bridge-Signature`` value for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is a valid signature of ``body``, compared in constant time."""
    if not header:
        return False
    given = header.strip()
    if given[: len(SIGNATURE_PREFIX)].lower() == SIGNATURE_PREFIX:
        given = SIGNATURE_PREFIX + given[len(SIGNATURE_PREFIX) :].lower()
    # Header values are decoded with surrogateescape; compare bytes so odd input cannot raise.
    return hmac.compare_digest(
        sign(secret, body).encode(), given.encode("utf-8", "surrogateescape")
    )


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed) for ``payload``."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
