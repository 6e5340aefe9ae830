"""The Graph API client for one business number: requests with the bearer token, the
documented throughput limits applied before each send, Graph errors mapped to delivery errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from json import loads
from typing import Any

import aiohttp

from ...connector import PermanentDeliveryError, TemporaryDeliveryError
from ...logsafe import REDACTED
from ...media import FileTooLarge, MediaFile
from ..http import read_limited
from .config import WhatsAppConfig

RATE_LIMIT_CODES = {4, 80007, 130429, 131048, 131056}
"""Throughput (130429), pair rate (131056), spam rate (131048), app/account limits."""
TRANSIENT_CODES = {1, 2, 131000, 131016, 133004}
"""Unknown error, service unavailable, something went wrong, server temporarily unavailable."""
WINDOW_CLOSED = 131047
MIB = 1024 * 1024
MAX_ANSWER = 4 * MIB
"""Graph API answers are small JSON; more is not read."""
RETRY_AFTER = {130429: 1.0, 131056: 6.0, 131048: 60.0, 4: 60.0, 80007: 60.0}
EXPLAIN = {
    131047: "the customer last wrote more than 24 hours ago; WhatsApp now only allows templates",
    131026: "WhatsApp cannot deliver to this number (not on WhatsApp, or an old app version)",
    131051: "WhatsApp does not support this message type",
    131052: "WhatsApp could not download the media",
    131053: "WhatsApp refused the media file (type or size)",
    132000: "the template's parameter count does not match",
    132001: "the template does not exist in this language",
    133010: "the phone number is not registered with the Cloud API",
}


class PairLimiter:
    """After a small burst, one message per ``per_user`` seconds to the same customer, and one
    per ``per_number`` seconds for the whole number (0: no spacing). ``for_rates`` takes them
    from the documented Cloud API throughput the capabilities declare.

    A customer whose bucket has refilled is the same as one never seen: when the table grows
    past ``prune_at`` those entries are dropped (the threshold doubles if most are still
    refilling), so memory follows the recent customers, not every customer ever sent to."""

    PRUNE_AT = 4096

    def __init__(self, burst: int, per_user: float, per_number: float = 0.0) -> None:
        self.burst = burst
        self.per_user = per_user
        self.per_number = per_number
        self._tokens: dict[str, tuple[float, float]] = {}
        self._next_number = 0.0
        self._lock = asyncio.Lock()
        self.prune_at = self.PRUNE_AT

    @classmethod
    def for_rates(cls, rates: Mapping[str, float], burst: int) -> PairLimiter:
        """``rates`` in messages per second: ``pair`` to one customer, ``number`` overall."""
        return cls(burst, per_user=1 / rates["pair"], per_number=1 / rates["number"])

    def _prune(self, now: float) -> None:
        full = float(self.burst)
        self._tokens = {
            user: (tokens, stamp)
            for user, (tokens, stamp) in self._tokens.items()
            if tokens + (now - stamp) / self.per_user < full
        }
        self.prune_at = max(self.PRUNE_AT, 2 * len(self._tokens))

    async def acquire(self, user: str) -> None:
        async with self._lock:
            now = time.monotonic()
            if len(self._tokens) >= self.prune_at:
                self._prune(now)
            tokens, stamp = self._tokens.get(user, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - stamp) / self.per_user)
            if tokens >= 1:
                at_user, tokens, stamp = now, tokens - 1, now
            else:
                at_user = now + (1 - tokens) * self.per_user
                tokens, stamp = 0.0, at_user
            self._tokens[user] = (tokens, stamp)
            # The number's own rate is a separate slot: a customer waiting out the pair rate
            # must not hold up messages to everyone else.
            slot = max(now, self._next_number)
            self._next_number = slot + self.per_number
            at = max(at_user, slot)
        if at > now:
            await asyncio.sleep(at - now)


class GraphClient:
    def __init__(
        self, config: WhatsAppConfig, http: aiohttp.ClientSession, rates: Mapping[str, float]
    ) -> None:
        self.config = config
        self.http = http
        self.limiter = PairLimiter.for_rates(rates, config.pair_burst)
        self.base = f"{config.base_url}/{config.api_version}"
        self.timeout = aiohttp.ClientTimeout(total=config.request_timeout)

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.access_token}"}

    async def send(self, to: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a message to ``to`` (rate limited for that customer)."""
        await self.limiter.acquire(to)
        payload = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
        return await self.request("POST", f"{self.config.phone_number_id}/messages", json={
            **payload, **body,
        })  # fmt: skip

    async def request(
        self, method: str, path: str, *, json: Any = None, data: Any = None, params: Any = None
    ) -> dict[str, Any]:
        url = f"{self.base}/{path}"
        try:
            async with self.http.request(
                method, url, json=json, data=data, params=params, headers=self._auth,
                timeout=self.timeout,
            ) as resp:  # fmt: skip
                body, over = await read_limited(resp.content, MAX_ANSWER)
                if over:
                    raise TemporaryDeliveryError(
                        f"WhatsApp answered HTTP {resp.status} with over {MAX_ANSWER // MIB} MB"
                    )
                try:
                    answer = loads(body) if body else None
                except (ValueError, RecursionError):
                    answer = None
                if 200 <= resp.status < 300 and isinstance(answer, dict):
                    return answer
                raise _error(resp.status, answer, self.config.access_token)
        except (aiohttp.ClientError, TimeoutError) as e:
            error = _scrub(str(e) or type(e).__name__, self.config.access_token)
            raise TemporaryDeliveryError(f"WhatsApp unreachable: {error}") from e

    async def download(self, url: str, limit: int, mimetype: str) -> MediaFile:
        """Fetch a media URL (valid 5 minutes, needs the bearer token) up to ``limit`` bytes,
        read to the end in chunks into a ``MediaFile`` (the caller closes it)."""
        try:
            async with self.http.get(url, headers=self._auth, timeout=self.timeout) as resp:
                if resp.status >= 500:
                    raise TemporaryDeliveryError(f"WhatsApp media server answered {resp.status}")
                if resp.status != 200:
                    raise PermanentDeliveryError(f"WhatsApp media download answered {resp.status}")
                return await MediaFile.from_response(resp, limit=limit, mimetype=mimetype)
        except FileTooLarge as e:
            raise PermanentDeliveryError(_too_big(limit)) from e
        except (aiohttp.ClientError, TimeoutError) as e:
            error = _scrub(str(e) or type(e).__name__, self.config.access_token)
            raise TemporaryDeliveryError(f"WhatsApp media unreachable: {error}") from e


def _too_big(limit: int) -> str:
    return f"the file is over the {limit / MIB:g} MB the bridge takes from WhatsApp"


def _scrub(text: str, token: str) -> str:
    """``text`` without the access token (it travels only in a header, but an error text
    could quote it)."""
    return text.replace(token, REDACTED) if token else text


def _error(status: int, answer: Any, token: str) -> Exception:
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        if status >= 500 or status == 429:
            return TemporaryDeliveryError(f"WhatsApp answered HTTP {status}")
        return PermanentDeliveryError(f"WhatsApp answered HTTP {status}")
    code = error["code"] if isinstance(error.get("code"), int) else -1
    details = (
        (error.get("error_data") or {}).get("details")
        if isinstance(error.get("error_data"), dict)
        else None
    )
    message = _scrub(str(details or error.get("message") or f"HTTP {status}"), token)
    reason = f"{EXPLAIN.get(code, message)} (WhatsApp error {code})"
    if code in RATE_LIMIT_CODES:
        return TemporaryDeliveryError(reason, retry_after=RETRY_AFTER.get(code, 5.0))
    if code in TRANSIENT_CODES or status >= 500:
        return TemporaryDeliveryError(reason)
    if code == 190 or status == 401:
        return TemporaryDeliveryError(f"WhatsApp refused the access token: {message}")
    return PermanentDeliveryError(reason)
