"""A local VK API server for tests.

It answers the way ``api.vk.com`` does for a community token - ``/method/<name>`` with
``access_token`` and ``v``, ``{"response": ...}`` or ``{"error": {"error_code", "error_msg",
"request_params"}}`` - for the methods the connector uses, and plays VK towards the bridge:
Callback API events posted with the community's ``secret`` (retried with ``X-Retry-Counter``
until the bridge answers ``ok``), the ``confirmation`` request, and a Bots Long Poll server
(``groups.getLongPollServer``, ``a_check`` with ``ts``, ``failed`` 1 and 2).

VK's rules it keeps: 20 calls a second per token (error 6 beyond); a community writes only to
people who wrote to it or allowed its messages (901; 900 for a blacklist); text up to 4096
characters (914); a repeat of ``messages.send`` with a ``random_id`` used for the same peer
within the last hour (and its last 100 messages) is dropped and answered with the first
message's id; edits and deletions for everyone within 24 hours (909, 924).

Split like the connector: ``records`` (what tests inspect), ``state`` (VK's side, limits,
errors), ``api`` (the methods and uploads), ``events`` (the customer side) and ``server``.
"""

from __future__ import annotations

from .records import CallbackDelivery, CustomerMessage, Rejection, SentMessage, StoredFile
from .server import VKSimulator
from .state import CHAT_OFFSET, DEDUP_SECONDS

__all__ = [
    "CHAT_OFFSET",
    "DEDUP_SECONDS",
    "CallbackDelivery",
    "CustomerMessage",
    "Rejection",
    "SentMessage",
    "StoredFile",
    "VKSimulator",
]
