"""Outbound HTTP: signed POSTs to the receiver and attachment downloads, with every HTTP
outcome mapped to a temporary or permanent delivery error. No retries here: the core retries
temporary errors with backoff until the delivery deadline. Downloads go through the address
guard of ``..http``: payload URLs never reach the bridge's own network unless allow-listed."""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ...connector import BridgeHost, PermanentDeliveryError, TemporaryDeliveryError
from ...events import RemoteAttachment
from ...media import FileTooLarge, MediaFile
from ..http import (
    AddressPolicy,
    BlockedAddress,
    TooManyRedirects,
    guarded_get,
    guarded_session,
    read_limited,
)
from .config import WebhookConfig
from .protocol import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, Body, encode, sign

NOT_CONFIGURED = "outbound delivery is not configured for this channel"
MAX_RESPONSE_SIZE = 64 * 1024
"""Longest answer body read from the receiver (it only needs to carry a message id)."""
EXCERPT_LENGTH = 200
MAX_REMOTE_ID_LENGTH = 255
RETRYABLE_STATUSES = frozenset({408, 429})


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _excerpt(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    text = " ".join(text.split())
    if len(text) > EXCERPT_LENGTH:
        text = text[: EXCERPT_LENGTH - 1] + "…"
    return text


def _is_temporary(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


class WebhookClient:
    def __init__(self, config: WebhookConfig, host: BridgeHost) -> None:
        self.config = config
        self.host = host
        self.policy = AddressPolicy(config.fetch_allow_hosts)
        self._session: aiohttp.ClientSession | None = None

    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.config.request_timeout)

    async def post(self, payload: dict[str, Any] | Body, idempotency_key: str) -> str | None:
        """POST ``payload`` (or a ``Body`` that carries a file) to the receiver. Returns the
        remote message id if the receiver answered one (a JSON object with a string ``id``),
        else None."""
        if self.config.outbound_url is None:
            raise PermanentDeliveryError(NOT_CONFIGURED)
        data: bytes | AsyncIterator[bytes]
        if isinstance(payload, Body):
            signature = await payload.sign(self.config.secret)
            data, length = payload.chunks(), payload.length
        else:
            data = encode(payload)
            signature, length = sign(self.config.secret, data), len(data)
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(length),
            SIGNATURE_HEADER: signature,
            IDEMPOTENCY_HEADER: idempotency_key,
        }
        try:
            async with self.host.http.post(
                self.config.outbound_url,
                data=data,
                headers=headers,
                timeout=self._timeout(),
                allow_redirects=False,
            ) as resp:
                if 200 <= resp.status < 300:
                    return await self._remote_id(resp)
                answer, _ = await self._read_quietly(resp)
                reason = f"webhook receiver answered HTTP {resp.status}"
                if answer:
                    reason += f": {_excerpt(answer)}"
                if _is_temporary(resp.status):
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    raise TemporaryDeliveryError(reason, retry_after=retry_after)
                raise PermanentDeliveryError(reason)
        except TimeoutError as e:
            raise TemporaryDeliveryError(
                f"webhook receiver did not answer within {self.config.request_timeout:g} seconds"
            ) from e
        except aiohttp.ClientError as e:
            raise TemporaryDeliveryError(f"webhook receiver unreachable: {_describe(e)}") from e

    async def _read_quietly(self, resp: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        try:
            return await read_limited(resp.content, MAX_RESPONSE_SIZE)
        except (TimeoutError, aiohttp.ClientError):
            return b"", False

    async def _remote_id(self, resp: aiohttp.ClientResponse) -> str | None:
        # The receiver has the message once it answered 2xx: a broken answer body is no
        # reason to send it again, so read problems only lose the optional id.
        body, over = await self._read_quietly(resp)
        if over or not body:
            return None
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return None
        remote_id = data.get("id") if isinstance(data, dict) else None
        if isinstance(remote_id, str) and 0 < len(remote_id) <= MAX_REMOTE_ID_LENGTH:
            return remote_id
        return None

    async def download(self, attachment: RemoteAttachment) -> tuple[MediaFile, str]:
        """Fetch an inbound attachment in chunks into a ``MediaFile`` (the caller closes it),
        refusing more than ``max_file_size`` bytes."""
        limit = self.config.max_file_size
        if attachment.size is not None and attachment.size > limit:
            raise PermanentDeliveryError(_too_large(attachment, attachment.size, limit))
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.config.request_timeout,
            sock_read=self.config.request_timeout,
        )
        try:
            async with guarded_get(
                self._fetch_session(), attachment.url, self.policy, client_timeout=timeout
            ) as resp:
                if resp.status >= 300:
                    raise _download_error(attachment, resp)
                mimetype = attachment.mimetype or resp.content_type or "application/octet-stream"
                media = await MediaFile.from_response(resp, limit=limit, mimetype=mimetype)
                return media, mimetype
        except FileTooLarge as e:
            raise PermanentDeliveryError(_too_large(attachment, e.size, limit)) from e
        except BlockedAddress as e:
            raise PermanentDeliveryError(
                f"refused to download attachment {_name(attachment)}: {e} "
                "(fetch_allow_hosts in the account's config)"
            ) from e
        except TooManyRedirects as e:
            raise PermanentDeliveryError(
                f"could not download attachment {_name(attachment)}: {e}"
            ) from e
        except (TimeoutError, aiohttp.ClientError) as e:
            raise TemporaryDeliveryError(
                f"could not download attachment {_name(attachment)}: {_describe(e)}"
            ) from e

    def _fetch_session(self) -> aiohttp.ClientSession:
        # Its own session: URLs from payloads go through the address guard, and the shared
        # session (host.http) stays free for the configured outbound_url.
        if self._session is None or self._session.closed:
            self._session = guarded_session(self.policy)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _name(attachment: RemoteAttachment) -> str:
    return repr(attachment.filename) if attachment.filename else "from the webhook"


def _too_large(attachment: RemoteAttachment, size: int | None, limit: int) -> str:
    actual = f"{size} bytes" if size is not None else f"more than {limit} bytes"
    return (
        f"attachment {_name(attachment)} is too large ({actual}; "
        f"this channel accepts at most {limit} bytes)"
    )


def _download_error(
    attachment: RemoteAttachment, resp: aiohttp.ClientResponse
) -> TemporaryDeliveryError | PermanentDeliveryError:
    reason = f"could not download attachment {_name(attachment)}: HTTP {resp.status}"
    if _is_temporary(resp.status):
        return TemporaryDeliveryError(
            reason, retry_after=parse_retry_after(resp.headers.get("Retry-After"))
        )
    if resp.status in (404, 410):
        reason += " (the file is no longer available)"
    return PermanentDeliveryError(reason)


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__
