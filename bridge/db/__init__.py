"""Database access: one module per table, an attrs row class each."""

from __future__ import annotations

from mautrix.util.async_db import Database

from .account import ChannelAccount
from .as_txn import ASTransaction
from .broadcast import Broadcast, Recipient
from .consent import ConsentContact, ConsentEvent, ConsentIdentity, ConsentText
from .conversation import Conversation
from .crypto_waiting import WaitingEvent
from .dead_letter import DeadLetter
from .ghost import Ghost
from .inbox import InboxAgent, InboxConversation, InboxTeam
from .inbox_canned import InboxCanned
from .inbox_figures import InboxPause, InboxResponse
from .message import Message
from .portal import Portal
from .postgres import BridgePostgres
from .privacy import AuditEntry, PrivacyJob, Suppression
from .queue import QueueItem
from .reaction import Reaction
from .remote_dedup import RemoteDedup
from .spool import Spool
from .timeline import RoomTimeline
from .upgrade import upgrade_table

ROW_CLASSES = (
    ChannelAccount,
    ASTransaction,
    AuditEntry,
    Broadcast,
    ConsentContact,
    ConsentEvent,
    ConsentIdentity,
    ConsentText,
    Conversation,
    DeadLetter,
    Ghost,
    InboxAgent,
    InboxCanned,
    InboxConversation,
    InboxPause,
    InboxResponse,
    InboxTeam,
    Message,
    Portal,
    PrivacyJob,
    QueueItem,
    Reaction,
    Recipient,
    RemoteDedup,
    RoomTimeline,
    Spool,
    Suppression,
    WaitingEvent,
)


def init(db: Database) -> None:
    """Point every row class at ``db``."""
    for cls in ROW_CLASSES:
        cls.db = db


__all__ = [
    "ChannelAccount", "ASTransaction", "Broadcast", "Recipient", "ConsentContact",
    "ConsentEvent", "ConsentIdentity", "ConsentText", "Conversation", "DeadLetter", "Ghost",
    "InboxAgent", "InboxCanned", "InboxConversation", "InboxPause", "InboxResponse",
    "InboxTeam", "Message", "Portal", "QueueItem", "Reaction", "RemoteDedup", "Spool",
    "AuditEntry", "PrivacyJob", "Suppression", "upgrade_table", "init", "Database",
    "BridgePostgres", "WaitingEvent", "RoomTimeline",
]  # fmt: skip
