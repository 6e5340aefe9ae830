"""Welcome messages: the customer's first message in a new conversation is answered with a
configured text, per channel account::

    features:
      welcome:
        support-webhook: "Thank you for writing! We answer within one working day."

An inbound hook queues it as a bridge-initiated message: after the customer's message, once
(the hook is called again when the event is retried; the dedup key keeps it to one), and
shown in the room exactly as the customer got it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..connector import ConfigError
from ..seams import Inbound, Seams, Services

MAX_TEXT = 4000


@dataclass(frozen=True)
class WelcomeHook:
    texts: Mapping[str, str]
    """Channel account -> the welcome text."""
    services: Services

    async def on_inbound(self, inbound: Inbound) -> None:
        text = self.texts.get(inbound.conversation.account)
        if not inbound.first_contact or not text:
            return
        chat = inbound.conversation.chat
        await self.services.send_text(
            inbound.conversation, text, reason="welcome", dedup=f"welcome:{chat}"
        )


class Welcome:
    name = "welcome"

    def parse_config(self, section: Any, config: Config) -> dict[str, str] | None:
        if section is None:
            return None
        if not isinstance(section, Mapping):
            raise ConfigError("features.welcome", "must map channel accounts to texts")
        texts = {}
        for account, text in section.items():
            key = f"features.welcome.{account}"
            if account not in config.channels:
                raise ConfigError(key, f"there is no channel account {account!r}")
            if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
                raise ConfigError(key, f"must be a text of 1 to {MAX_TEXT} characters")
            texts[str(account)] = text
        return texts

    def setup(self, seams: Seams, options: dict[str, str]) -> None:
        seams.add_inbound_hook(WelcomeHook(options, seams.services))


FEATURE = Welcome()
