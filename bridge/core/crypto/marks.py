"""The names the rest of the core needs from encryption, without the Olm machine: importing
``mautrix.crypto`` is a tenth of the start-up, and a bridge without encryption never needs it
(``machine`` is imported only when the config allows encryption)."""

from __future__ import annotations

import hashlib

TO_DEVICE = "net.business_bridge.to_device"
"""Marks a to-device event recorded in the queue (it has no room)."""
DEVICE_LISTS = "net.business_bridge.device_lists"
"""The ``type`` of a recorded device list change."""
QUEUE_KEY = "crypto:"
"""The ordering domain of to-device events and device list changes: one at a time, in the
order the homeserver sent them (Olm sessions advance with every message)."""


class Undecryptable(Exception):
    """An encrypted event the bridge cannot read; ``session_id`` is set when its key may still
    arrive (the event then waits for it)."""

    def __init__(self, reason: str, session_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.session_id = session_id


def txn_mark(txn: str) -> str:
    """What an encrypted event shows of its transaction id outside the ciphertext: a hash, so
    that a retry finds the stored event without the id (which may name a chat) in the clear."""
    return hashlib.sha256(txn.encode()).hexdigest()[:32]
