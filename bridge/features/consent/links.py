"""The links the bridge gives people: the email confirmation link and a broadcast's
unsubscribe link (both signed ``tokens``, served by the consent feature's pages under
``<public_url>/features/consent/``), the Telegram deep link and the WhatsApp click-to-chat
link of a list.

A token names the contact by its id and by an identity of it (account and remote user): ids
may be reused after an erasure (SQLite hands out a deleted row's id again), so a page checks,
when the link is used, that the identity still belongs to that contact."""

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

    def confirm(self, contact: int, remote_user: str, list_: str, account: str) -> tuple[str, str]:
        """A confirmation link for a request, valid ``confirm_hours``; and the token's id."""
        fields = {"c": contact, "u": remote_user, "l": list_, "a": account}
        token, token_id = self.signer.issue(CONFIRM, fields, self.config.confirm_hours * 3600)
        return self.page(f"/confirm/{token}"), token_id

    def unsubscribe(self, contact: int, remote_user: str, list_: str, account: str) -> str:
        """The link (and ``List-Unsubscribe`` URL, RFC 8058) that withdraws ``contact``'s
        consent to ``list_`` on ``account``; ``remote_user`` names its identity there (or the
        chat a broadcast went to, on email the address)."""
        fields = {"c": contact, "u": remote_user, "l": list_, "a": account}
        token, _ = self.signer.issue(UNSUBSCRIBE, fields, UNSUBSCRIBE_TTL)
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
