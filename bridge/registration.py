"""The appservice registration file the homeserver loads (``-g``)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from .config import Config
from .core.util import template_regex


def new_token() -> str:
    return secrets.token_urlsafe(48)


def build(config: Config) -> dict[str, Any]:
    """The registration for ``config``: ghost and bot users, portal aliases, our tokens."""
    domain = re.escape(config.hs_domain)
    # Fields never hold a ":" (escape_localpart escapes it); anchored at both ends, as homeservers
    # apply the regexes with re.match: unanchored, "@bridge_x_y:example.com.evil.tld" matched.
    ghost_local = template_regex(config.ghost_username_template, account="", user="").replace(
        ".+", "[^:]+"
    )
    registration: dict[str, Any] = {
        "id": config.as_id,
        "url": str(config.as_address),
        "as_token": config.as_token,
        "hs_token": config.hs_token,
        "sender_localpart": config.bot_username,
        "rate_limited": False,
        "receive_ephemeral": True,
        "de.sorunome.msc2409.push_ephemeral": True,
        "namespaces": {
            "users": [
                {"exclusive": True, "regex": f"^@{ghost_local}:{domain}$"},
                {"exclusive": True, "regex": f"^@{re.escape(config.bot_username)}:{domain}$"},
            ],
            "aliases": [
                {
                    "exclusive": True,
                    "regex": f"^#{re.escape(config.bot_username)}_[^:]+:{domain}$",
                }
            ],
            "rooms": [],
        },
    }
    if config.encryption.allow:
        # Appservice-mode encryption: device lists and one-time key counts in transactions
        # (MSC3202), and the bot's device created without a login (MSC4190).
        registration["org.matrix.msc3202"] = True
        registration["io.element.msc4190"] = True
    return registration
