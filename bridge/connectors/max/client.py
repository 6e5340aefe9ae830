"""The MAX Bot API client for one bot: requests with the token in ``Authorization``, the
documented rates applied before each send, MAX errors mapped to delivery errors."""

from __future__ import annotations

from collections.abc import Mapping
from json import loads
from typing import Any

import aiohttp

from ...connector import PermanentDeliveryError, TemporaryDeliveryError
from ...logsafe import REDACTED
from ...media import FileTooLarge, MediaFile
from ..http import read_limited
from ..whatsapp.client import PairLimiter
from .config import MaxConfig

MIB = 1024 * 1024
MAX_ANSWER = 4 * MIB
"""Bot API answers are small JSON; more is not read."""
RETRY_AFTER = {429: 1.0, 503: 5.0}
NOT_READY = "attachment.not.ready"
"""An uploaded file MAX is still processing: the send is retried shortly."""
NOT_READY_REASON = "MAX is still processing the file"
EXPLAIN = {
    "chat.denied": "MAX does not let the bot write in this chat (blocked, or not a member)",
    "chat.not.found": "the MAX chat does not exist (any more)",
    "message.not.found": "the MAX message does not exist (any more)",
    "access.denied": "MAX does not let the bot do this here",
}


class MaxClient:
    def __init__(
        self, config: MaxConfig, http: aiohttp.ClientSession, rates: Mapping[str, float]
    ) -> None:
        self.config = config
        self.http = http
        # Per chat and for the whole bot: the same token buckets as WhatsApp's pair rate.
        self.limiter = PairLimiter(
            config.chat_burst, per_user=1 / rates["chat"], per_number=1 / rates["global"]
        )
        self.timeout = aiohttp.ClientTimeout(total=config.request_timeout)

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": self.config.token}

    def scrub(self, text: str) -> str:
        """``text`` without the token (it travels only in a header, but an error text could
        quote it)."""
        return text.replace(self.config.token, REDACTED)

    async def send(self, chat: str, method: str, path: str, **kw: Any) -> dict[str, Any]:
        """A rate-limited call that writes into ``chat``."""
        await self.limiter.acquire(chat)
        return await self.request(method, path, **kw)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        url = f"{self.config.api_url}{path}"
        client_timeout = self.timeout if timeout is None else aiohttp.ClientTimeout(total=timeout)
        try:
            async with self.http.request(
                method, url, json=json, params=params, headers=self._auth, timeout=client_timeout
            ) as resp:
                body, over = await read_limited(resp.content, MAX_ANSWER)
                if over:
                    raise TemporaryDeliveryError(
                        f"MAX answered HTTP {resp.status} with over {MAX_ANSWER // MIB} MB"
                    )
                try:
                    answer = loads(body) if body else None
                except (ValueError, RecursionError):
                    answer = None
                if 200 <= resp.status < 300 and isinstance(answer, dict):
                    return answer
                raise _error(resp.status, answer, resp.headers.get("Retry-After"), self.scrub)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise TemporaryDeliveryError(
                f"MAX unreachable: {self.scrub(str(e) or type(e).__name__)}"
            ) from e

    async def upload(self, kind: str, file: MediaFile, filename: str, mimetype: str) -> str:
        """Upload a file the documented way: ``POST /uploads?type=…`` gives a one-time URL
        (and, for video and audio, the token), the file goes there as multipart ``data``, and
        the token comes back. Returns the token for the attachment."""
        slot = await self.request("POST", "/uploads", params={"type": kind})
        url, token = slot.get("url"), slot.get("token")
        if not isinstance(url, str) or not url:
            raise TemporaryDeliveryError("MAX gave no upload URL")
        form = aiohttp.FormData()
        form.add_field("data", file.fileobj(), filename=filename, content_type=mimetype)
        try:
            async with self.http.post(url, data=form, timeout=self.timeout) as resp:
                body, _ = await read_limited(resp.content, MAX_ANSWER)
                if resp.status >= 500 or resp.status == 429:
                    raise TemporaryDeliveryError(f"the MAX upload server answered {resp.status}")
                if resp.status >= 300:
                    raise PermanentDeliveryError(f"MAX refused the upload (HTTP {resp.status})")
        except (aiohttp.ClientError, TimeoutError) as e:
            raise TemporaryDeliveryError(f"MAX upload unreachable: {type(e).__name__}") from e
        try:
            answer = loads(body) if body else {}
        except (ValueError, RecursionError):
            answer = {}
        found = _token_in(answer)
        token = found or token
        if not isinstance(token, str) or not token:
            raise PermanentDeliveryError("MAX gave no token for the uploaded file")
        return token

    async def download(self, url: str, limit: int, mimetype: str) -> tuple[MediaFile, str]:
        """Fetch a file MAX named in an update, up to ``limit`` bytes, in chunks into a
        ``MediaFile`` (the caller closes it), with its type: the one the file server names,
        else ``mimetype``. The URLs are signed: no token is sent along."""
        try:
            async with self.http.get(url, timeout=self.timeout) as resp:
                if resp.status >= 500 or resp.status == 429:
                    raise TemporaryDeliveryError(f"the MAX file server answered {resp.status}")
                if resp.status != 200:
                    raise PermanentDeliveryError(f"the MAX file server answered {resp.status}")
                served = resp.content_type
                if served and served != "application/octet-stream" and "/" in served:
                    mimetype = served
                media = await MediaFile.from_response(resp, limit=limit, mimetype=mimetype)
                return media, mimetype
        except FileTooLarge as e:
            raise PermanentDeliveryError(
                f"the file is over the {limit / MIB:g} MB the bridge takes from MAX"
            ) from e
        except (aiohttp.ClientError, TimeoutError) as e:
            raise TemporaryDeliveryError(f"MAX file unreachable: {type(e).__name__}") from e


def _token_in(answer: Any) -> str | None:
    """The token in an upload answer: ``{"token": …}`` for files, ``{"photos": {<id>:
    {"token": …}}}`` for images."""
    if not isinstance(answer, dict):
        return None
    token = answer.get("token")
    if isinstance(token, str) and token:
        return token
    photos = answer.get("photos")
    if isinstance(photos, dict):
        for photo in photos.values():
            if isinstance(photo, dict) and isinstance(photo.get("token"), str):
                return str(photo["token"])
    return None


def _error(status: int, answer: Any, retry_after: str | None, scrub: Any) -> Exception:
    code = answer.get("code") if isinstance(answer, dict) else None
    code = code if isinstance(code, str) else ""
    message = answer.get("message") if isinstance(answer, dict) else None
    text = scrub(str(message or f"HTTP {status}"))[:300]
    reason = f"{EXPLAIN.get(code, text)} (MAX {status} {code})".replace(" )", ")")
    if status == 429 or code == "too.many.requests":
        return TemporaryDeliveryError(reason, retry_after=_seconds(retry_after) or 1.0)
    if code == NOT_READY:
        return TemporaryDeliveryError(NOT_READY_REASON, retry_after=1.0)
    if status >= 500 or status == 401:
        return TemporaryDeliveryError(reason, retry_after=RETRY_AFTER.get(status))
    return PermanentDeliveryError(reason)


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 < seconds < 3600 else None
