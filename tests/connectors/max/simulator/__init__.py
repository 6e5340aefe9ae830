"""A local MAX Bot API server for tests.

It speaks the documented HTTP API the way ``platform-api2.max.ru`` does (the token in
``Authorization``, JSON answers, errors as ``{"code", "message"}``, 429 beyond the rates, long
polling with a marker, webhook subscriptions with a secret, one-time upload URLs) so that the
connector runs unchanged against it. Split as: ``records`` (what tests inspect, the limits),
``updates`` (the update payloads), ``api`` (the Bot API methods), ``server`` (the simulator,
MAX's users and delivery).
"""

from __future__ import annotations

from .records import Limits, SentMessage, Upload, WebhookDelivery
from .server import BOT_ID, SECRET_HEADER, TOKEN, MaxSimulator

__all__ = [
    "BOT_ID",
    "SECRET_HEADER",
    "TOKEN",
    "Limits",
    "MaxSimulator",
    "SentMessage",
    "Upload",
    "WebhookDelivery",
]
