"""Ids, timestamps and signatures shaped like Meta's, and the Graph API's error bodies with the
Cloud API error codes. ``payloads`` re-exports all of it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]

PRODUCT = "whatsapp"
ERROR_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"


# -- ids, times, signatures -----------------------------------------------------------------------


def new_wamid(wa_id: str = "") -> str:
    """A message id shaped like Meta's: ``wamid.`` and base64 of a small binary record that
    carries the user's number and a random hex id (so it starts ``wamid.HBg``)."""
    number = wa_id.encode()[:255]
    raw = (
        b"\x1c\x18"
        + bytes([len(number)])
        + number
        + b"\x15\x02\x00\x11\x18\x12"
        + secrets.token_hex(9).upper().encode()
        + b"\x00"
    )
    return "wamid." + base64.b64encode(raw).decode()


def new_media_id() -> str:
    """Media ids are numeric strings of 15-16 digits."""
    return str(secrets.randbelow(9 * 10**15) + 10**15)


def new_fbtrace_id() -> str:
    return "A" + secrets.token_urlsafe(16)[:22]


def ts(value: float | None = None) -> str:
    """Webhook timestamps are Unix seconds as a *string*."""
    return str(int(time.time() if value is None else value))


def signature(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def sha256_b64(data: bytes) -> str:
    """Inbound media webhooks carry the file hash base64-encoded."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# -- Graph API errors -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorSpec:
    http_status: int
    title: str
    details: str
    subcode: int | None = None


ERRORS: dict[int, ErrorSpec] = {
    # Graph / authorization errors.
    1: ErrorSpec(500, "An unknown error occurred", "An unknown error occurred"),
    2: ErrorSpec(503, "Service temporarily unavailable", "Service temporarily unavailable"),
    100: ErrorSpec(400, "Invalid parameter", "Invalid parameter"),
    190: ErrorSpec(401, "Invalid OAuth access token - Cannot parse access token", ""),
    # Throttling. Meta's table gives 400 for both; the documented 130429 example has a subcode.
    130429: ErrorSpec(
        400, "Rate limit hit", "Cloud API message throughput has been reached.", 2494055
    ),
    131056: ErrorSpec(
        400,
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone number "
        "to the same phone number in a short period of time.",
    ),
    # Sending.
    131000: ErrorSpec(
        500, "Something went wrong", "Message failed to send due to an unknown error."
    ),
    131009: ErrorSpec(400, "Parameter value is not valid", "Parameter value is not valid"),
    131016: ErrorSpec(500, "Service unavailable", "A service is temporarily unavailable."),
    131026: ErrorSpec(400, "Message Undeliverable", "Message Undeliverable."),
    131047: ErrorSpec(
        400,
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last "
        "replied to this number.",
    ),
    131051: ErrorSpec(400, "Unsupported message type", "Message type is not currently supported."),
    131053: ErrorSpec(
        400, "Media upload error", "Unable to upload the media used in the message."
    ),
    # Templates.
    132000: ErrorSpec(
        400,
        "Number of parameters does not match the expected number of params",
        "Number of parameters does not match the expected number of params",
    ),
    132001: ErrorSpec(
        404,
        "Template name does not exist in the translation",
        "Template name does not exist in the translation",
    ),
    132015: ErrorSpec(400, "Template is Paused", "Template is paused due to low quality."),
    132016: ErrorSpec(400, "Template is Disabled", "Template is disabled due to low quality."),
}


def graph_error(
    code: int,
    *,
    details: str | None = None,
    message: str | None = None,
    error_type: str = "OAuthException",
    subcode: int | None = None,
    fbtrace_id: str | None = None,
) -> Json:
    """A Graph API error body: ``{"error": {message, type, code, error_data, fbtrace_id}}``.
    ``message`` defaults to ``(#code) title`` as Cloud API answers; ``details`` to the
    catalogue's text. Code 190 carries no ``error_data`` (it is not a WhatsApp error)."""
    spec = ERRORS.get(code, ErrorSpec(400, "Unknown error", "Unknown error"))
    error: Json = {"message": message or f"(#{code}) {spec.title}", "type": error_type}
    error["code"] = code
    if code != 190:
        error["error_data"] = {"messaging_product": PRODUCT, "details": details or spec.details}
    if subcode is None:
        subcode = spec.subcode
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = fbtrace_id or new_fbtrace_id()
    return {"error": error}


def webhook_error(
    code: int, *, title: str | None = None, details: str | None = None, href: bool = True
) -> Json:
    """An entry of ``errors[]`` in webhooks (statuses, messages, value): code, title, message
    (the same text as title), ``error_data.details`` and the error-codes ``href``."""
    spec = ERRORS.get(code, ErrorSpec(400, "Unknown error", "Unknown error"))
    text = title or spec.title
    error: Json = {
        "code": code,
        "title": text,
        "message": text,
        "error_data": {"details": details or spec.details},
    }
    if href:
        error["href"] = ERROR_HREF
    return error


class ApiError(Exception):
    """A Graph error answer: ``status`` and the ``{"error": ...}`` body."""

    def __init__(
        self,
        code: int,
        *,
        details: str | None = None,
        message: str | None = None,
        status: int | None = None,
        subcode: int | None = None,
        error_type: str = "OAuthException",
        error_data: bool = True,
    ) -> None:
        spec = ERRORS.get(code)
        self.code = code
        self.status = status or (spec.http_status if spec else 400)
        self.body = graph_error(
            code, details=details, message=message, error_type=error_type, subcode=subcode
        )
        if not error_data:
            self.body["error"].pop("error_data", None)
        super().__init__(self.body["error"]["message"])


def param_error(details: str) -> ApiError:
    return ApiError(100, details=details)


def no_object_error(node: str, method: str) -> ApiError:
    return ApiError(
        100,
        message=(
            f"Unsupported {method} request. Object with ID '{node}' does not exist, cannot be "
            "loaded due to missing permissions, or does not support this operation. Please read "
            "the Graph API documentation at https://developers.facebook.com/docs/graph-api"
        ),
        subcode=33,
        error_type="GraphMethodException",
        error_data=False,
    )
