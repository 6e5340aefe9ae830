"""The services layer: what staff can do with the bridge, as plain functions over the core.

The bot's commands call these, and so will the provisioning API, so that both take one code
path with the same permission checks. A service refuses with ``ServiceError`` (its message is
for the person who asked). Feature modules get the part they need through ``bridge.seams``.
"""

from __future__ import annotations

from .admin import AdminServices
from .conversations import ConversationServices
from .direct import DirectServices
from .errors import ServiceError
from .history import HistoryServices
from .messages import MessageServices
from .privacy import PrivacyServices
from .rooms import RoomServices
from .templates import TemplateServices


class Services(
    TemplateServices, ConversationServices, MessageServices, AdminServices, RoomServices,
    HistoryServices, DirectServices, PrivacyServices,
):  # fmt: skip
    """Every service, in one object."""


__all__ = ["ServiceError", "Services"]
