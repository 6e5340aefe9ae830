"""A local WhatsApp Business Cloud API (Graph API) server for tests.

It answers the way ``graph.facebook.com`` does for Cloud API - ``/{version}/{phone-number-id}/
messages`` and ``/media``, ``/{version}/{media-id}``, ``/{version}/{waba-id}/message_templates``,
bearer-token auth, Graph error bodies with Cloud API codes - and it plays Meta towards the bridge:
it verifies the webhook (``hub.challenge``) and POSTs signed ``messages`` webhooks
(``X-Hub-Signature-256``), retrying non-2xx answers, so that a production connector runs against
it with only its base URL changed.

Tests drive it from the customer side (``receive``, ``media_message``, ``emit_statuses``), bend
it (``clock``, ``storm``, ``fail_next``, ``set_undeliverable``, ``limits``, ``rate_limits``), then
inspect what the bot did (``sent``, ``read_receipts``, ``uploads``, ``rejected``,
``webhook_deliveries``) or await it (``wait_for_*``). Payload builders live in ``payloads.py``.

The simulator is split the way the connector is: ``config`` (clock and limits), ``records``
(what tests inspect), ``state`` (Meta's side and waiting), ``limits`` (throughput, pair rate,
forced failures), ``webhooks`` (the customer side), ``http`` (auth and error answers), the Graph
endpoints by area (``messages``, ``media``) and ``server`` (routes and lifecycle).
"""

from __future__ import annotations

from tests.connectors.sim_base import LOOPBACK, SimClock

from .config import KiB, Limits, MiB, RateLimits
from .http import REQUEST_JSON
from .messages import UNAVAILABLE_TEMPLATE
from .records import (
    InboundMessage,
    ReadReceipt,
    Rejection,
    SentMessage,
    StoredMedia,
    WebhookAttempt,
    WebhookDelivery,
)
from .server import VERSION, WhatsAppSimulator
from .webhooks import SIGNATURE_HEADER

__all__ = [
    "LOOPBACK",
    "REQUEST_JSON",
    "SIGNATURE_HEADER",
    "UNAVAILABLE_TEMPLATE",
    "VERSION",
    "InboundMessage",
    "KiB",
    "Limits",
    "MiB",
    "RateLimits",
    "ReadReceipt",
    "Rejection",
    "SentMessage",
    "SimClock",
    "StoredMedia",
    "WebhookAttempt",
    "WebhookDelivery",
    "WhatsAppSimulator",
]
