"""The VK API client for one community: methods called with the community token, the
documented request rate kept before each call, "too many requests" (error 6) retried with
backoff, and VK's errors mapped to delivery errors."""

from __future__ import annotations

import asyncio
import time
from json import loads
from typing import Any

import aiohttp

from ...connector import PermanentDeliveryError, TemporaryDeliveryError
from ...logsafe import REDACTED
from ...media import FileTooLarge, MediaFile
from ..http import read_limited
from .config import VKConfig

MIB = 1024 * 1024
MAX_ANSWER = 4 * MIB
"""VK API answers are small JSON; more is not read."""
TOO_MANY = 6
FLOOD = 9
TRANSIENT_CODES = {1, 10, 603}
"""Unknown error, internal server error, "some error occurred"."""
AUTH_FAILED = 5
NO_PERMISSION = 901
RETRIES = 3
"""Error 6 is retried this often in place (0.5, 1, 2 s apart) before the core's backoff."""
BACKOFF = 0.5
EXPLAIN = {
    NO_PERMISSION: (
        "VK lets a community write only to people who wrote to it first or allowed its"
        " messages; this customer has done neither"
    ),
    900: "the customer has put the community on their blacklist",
    902: "the customer's privacy settings do not let the community write to them",
    909: "VK no longer lets this message be edited (it is over a day old)",
    914: "the message is too long for VK",
    917: "the community has no access to this chat",
    924: "VK no longer lets this message be deleted for everyone",
}


MARGIN = 0.9
"""Calls are spaced for 90 % of the documented rate: VK counts them as they arrive, and the
network does not keep the spacing exactly."""


class Pacer:
    """One call per ``interval`` seconds for the whole community token."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1 / (per_second * MARGIN)
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)


class VKError(Exception):
    """An error answer of the VK API."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"VK error {code}: {message}")
        self.code = code
        self.message = message


class VKClient:
    def __init__(self, config: VKConfig, http: aiohttp.ClientSession, rate: float) -> None:
        self.config = config
        self.http = http
        self.pacer = Pacer(rate)
        self.timeout = aiohttp.ClientTimeout(total=config.request_timeout)
        self.backoff = BACKOFF

    def scrub(self, text: str) -> str:
        """``text`` without the access token."""
        token = self.config.access_token
        return text.replace(token, REDACTED) if token else text

    async def call(self, method: str, **params: Any) -> Any:
        """Call ``method`` and return its ``response``; delivery errors for VK's errors."""
        delay = self.backoff
        for attempt in range(RETRIES + 1):
            try:
                return await self.raw_call(method, params)
            except VKError as e:
                if e.code == TOO_MANY and attempt < RETRIES:
                    await asyncio.sleep(delay)
                    delay *= 2
                    continue
                raise self.delivery_error(e) from e
        raise AssertionError("unreachable")

    async def raw_call(self, method: str, params: dict[str, Any]) -> Any:
        """One API request; VKError for an error answer, TemporaryDeliveryError when VK
        cannot be reached."""
        await self.pacer.acquire()
        form = {k: _value(v) for k, v in params.items() if v is not None}
        # The token in the form body, never in the URL (which logs and proxies keep).
        form["access_token"] = self.config.access_token
        form["v"] = self.config.api_version
        url = f"{self.config.base_url}/method/{method}"
        try:
            async with self.http.post(url, data=form, timeout=self.timeout) as resp:
                return self._answer(resp.status, *await read_limited(resp.content, MAX_ANSWER))
        except (aiohttp.ClientError, TimeoutError) as e:
            error = self.scrub(str(e) or type(e).__name__)
            raise TemporaryDeliveryError(f"VK unreachable: {error}") from e

    def _answer(self, status: int, body: bytes, over: bool) -> Any:
        if over:
            raise TemporaryDeliveryError(f"VK answered HTTP {status} with over 4 MB")
        if status >= 500 or status == 429:
            raise TemporaryDeliveryError(f"VK answered HTTP {status}")
        try:
            answer = loads(body)
        except (ValueError, RecursionError):
            answer = None
        if not isinstance(answer, dict):
            raise TemporaryDeliveryError(f"VK answered HTTP {status} without JSON")
        error = answer.get("error")
        if isinstance(error, dict):
            code = error.get("error_code")
            code = code if isinstance(code, int) and not isinstance(code, bool) else -1
            raise VKError(code, self.scrub(str(error.get("error_msg") or "")))
        if "response" not in answer:
            raise TemporaryDeliveryError("VK answered without a response")
        return answer["response"]

    def delivery_error(self, e: VKError) -> Exception:
        reason = (
            f"{EXPLAIN.get(e.code, e.message or 'VK refused the request')} (VK error {e.code})"
        )
        if e.code == TOO_MANY:
            return TemporaryDeliveryError(reason, retry_after=1.0)
        if e.code == FLOOD:
            return TemporaryDeliveryError(reason, retry_after=60.0)
        if e.code in TRANSIENT_CODES:
            return TemporaryDeliveryError(reason)
        if e.code == AUTH_FAILED:
            return TemporaryDeliveryError(f"VK refused the access token: {e.message}")
        return PermanentDeliveryError(reason)

    async def upload(self, url: str, field: str, file: MediaFile, name: str, mime: str) -> Any:
        """POST a file to an upload server VK named (multipart, one field); its JSON."""
        form = aiohttp.FormData()
        form.add_field(field, file.fileobj(), filename=name, content_type=mime)
        try:
            async with self.http.post(url, data=form, timeout=self.timeout) as resp:
                body, over = await read_limited(resp.content, MAX_ANSWER)
                if resp.status >= 500 or over:
                    raise TemporaryDeliveryError(f"VK upload server answered {resp.status}")
                answer = loads(body) if body else None
        except (aiohttp.ClientError, TimeoutError) as e:
            raise TemporaryDeliveryError(f"VK upload failed: {self.scrub(str(e))}") from e
        except (ValueError, RecursionError) as e:
            raise TemporaryDeliveryError("VK's upload server answered without JSON") from e
        if not isinstance(answer, dict) or "error" in answer:
            raise PermanentDeliveryError(f"VK refused the upload: {str(answer)[:200]}")
        return answer

    async def download(self, url: str, limit: int, mimetype: str) -> MediaFile:
        """Fetch a file VK hosts (photo sizes, documents, voice messages) up to ``limit``."""
        try:
            async with self.http.get(url, timeout=self.timeout) as resp:
                if resp.status >= 500:
                    raise TemporaryDeliveryError(f"VK file server answered {resp.status}")
                if resp.status != 200:
                    raise PermanentDeliveryError(f"VK file server answered {resp.status}")
                return await MediaFile.from_response(resp, limit=limit, mimetype=mimetype)
        except FileTooLarge as e:
            raise PermanentDeliveryError(
                f"the file is over the {limit / MIB:g} MB the bridge takes from VK"
            ) from e
        except (aiohttp.ClientError, TimeoutError) as e:
            raise TemporaryDeliveryError(f"VK file server unreachable: {e}") from e


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)
