"""Signed, expiring tokens for the links the bridge mails and prints: an email confirmation
link (``confirm``), a broadcast's unsubscribe link (``unsubscribe``).

A token is ``<payload>.<signature>``, both base64url: the payload a small JSON object with the
purpose, an id (random, 128 bits), the expiry (seconds since the epoch) and the purpose's own
fields; the signature HMAC-SHA256 of the payload under the operator's secret. ``verify``
refuses with a ``TokenError`` whose ``reason`` is for the person who opened the link: a forged
or altered token, one for another purpose, an expired one, or anything malformed (bounded: a
token over ``MAX_TOKEN`` characters is not even decoded). Single use is the caller's: the id
is the cause of the ledger step it records, and the ledger records a cause once."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

MAX_TOKEN = 1024


class TokenError(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def derive_secret(as_token: str) -> bytes:
    """The signing key when the config names none: derived from the appservice token (a
    secret already), so a restart keeps the links valid."""
    return hmac.new(as_token.encode(), b"bridge consent links v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("a signing secret has at least 16 bytes")
        self._secret = secret
        self.clock = clock

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, purpose: str, fields: dict[str, Any], ttl: float) -> tuple[str, str]:
        """A token for ``purpose`` carrying ``fields`` (JSON values), valid ``ttl`` seconds;
        returns it and its id."""
        token_id = secrets.token_urlsafe(16)
        body = {"p": purpose, "i": token_id, "e": int(self.clock() + ttl), "f": fields}
        payload = _b64(json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode())
        token = f"{payload}.{self._sign(payload)}"
        if len(token) > MAX_TOKEN:
            raise ValueError("the token's fields are too long")
        return token, token_id

    def verify(self, token: str, purpose: str) -> tuple[str, dict[str, Any]]:
        """The id and fields of a valid token for ``purpose``; ``TokenError`` otherwise."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN:
            raise TokenError("This link is not valid.")
        payload, dot, signature = token.partition(".")
        if not dot or not payload or not signature or not payload.isascii():
            raise TokenError("This link is not valid.")
        if not hmac.compare_digest(
            self._sign(payload).encode(), signature.encode("ascii", "replace")
        ):
            raise TokenError("This link is not valid: it was changed or not made by us.")
        try:
            body = json.loads(_unb64(payload))
        except (ValueError, binascii.Error):  # signed but unreadable: not ours either
            raise TokenError("This link is not valid.") from None
        if not isinstance(body, dict) or not isinstance(body.get("f"), dict):
            raise TokenError("This link is not valid.")
        token_id, expires = body.get("i"), body.get("e")
        if not isinstance(token_id, str) or not isinstance(expires, int):
            raise TokenError("This link is not valid.")
        if body.get("p") != purpose:
            raise TokenError("This link is not meant for this page.")
        if self.clock() > expires:
            raise TokenError("This link has expired.")
        return token_id, body["f"]
