"""The links the bridge gives people: the email confirmation link and a broadcast's
unsubscribe link (both signed ``tokens``, served by the consent feature's pages under
``<public_url>/features/consent/``), the Telegram deep link and the WhatsApp click-to-chat
link of a list."""

from __future__ import annotations

import urllib.parse

from .config import ConsentConfig, ConsentList
from .tokens import Signer

CONFIRM = "confirm"
UNSUBSCRIBE = "unsubscribe"
UNSUBSCRIBE_TTL = 400 * 24 * 3600.0
"""An unsubscribe link works for more than a year: withdrawing must stay as easy as giving."""
PREFIX = "/features/consent"


class Links:
    def __init__(self, config: ConsentConfig, signer: Signer | None = None) -> None:
        self.config = config
        self.signer = signer or Signer(config.secret)

    def page(self, path: str) -> str:
        return f"{self.config.public_url}{PREFIX}{path}"

    def confirm(self, contact: int, list_: str, account: str) -> tuple[str, str]:
        """A confirmation link for a request, valid ``confirm_hours``; and the token's id."""
        token, token_id = self.signer.issue(
            CONFIRM, {"c": contact, "l": list_, "a": account}, self.config.confirm_hours * 3600
        )
        return self.page(f"/confirm/{token}"), token_id

    def unsubscribe(self, contact: int, list_: str, account: str) -> str:
        """The link (and ``List-Unsubscribe`` URL, RFC 8058) that withdraws ``contact``'s
        consent to ``list_`` on ``account``."""
        token, _ = self.signer.issue(
            UNSUBSCRIBE, {"c": contact, "l": list_, "a": account}, UNSUBSCRIBE_TTL
        )
        return self.page(f"/unsubscribe/{token}")

    def form(self, list_: str) -> str:
        """The sign-up form's page of ``list_``."""
        return self.page(f"/form/{urllib.parse.quote(list_)}")

    @staticmethod
    def telegram(bot_username: str, item: ConsentList) -> str:
        return f"https://t.me/{bot_username}?start={item.start}"

    @staticmethod
    def whatsapp(number: str, item: ConsentList) -> str:
        digits = "".join(c for c in number if c.isdigit())
        return f"https://wa.me/{digits}?text={urllib.parse.quote(item.keywords[0])}"
