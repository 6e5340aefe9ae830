"""Typed identifiers shared by the core and the connectors."""

from __future__ import annotations

from typing import NamedTuple, NewType

AccountID = NewType("AccountID", str)
"""The id of a channel account, as configured under ``channels:`` (e.g. ``support-webhook``)."""

RemoteChatID = NewType("RemoteChatID", str)
"""A chat on the remote network, unique within one channel account."""

RemoteUserID = NewType("RemoteUserID", str)
"""A user on the remote network, unique within one channel account."""

MessageID = NewType("MessageID", str)
"""A message on the remote network, unique within one remote chat."""


class PortalKey(NamedTuple):
    """Identifies a portal: one remote chat of one channel account."""

    account: AccountID
    chat: RemoteChatID

    def __str__(self) -> str:
        return f"{self.account}/{self.chat}"


SAFE_LOCALPART_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-/+")
"""Kept as they are in a Matrix localpart by ``core.util.escape_localpart``; everything else
is escaped."""
