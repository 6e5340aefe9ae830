"""The ``provisioning`` config section: where the API is served and its shared secret::

provisioning:
    prefix: /_matrix/provision/v1
    shared_secret: null     # null: the API is off; else at least 32 characters
    openid_cache: 60        # seconds a verified OpenID token is trusted without asking again
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..connector import ConfigError

MIN_SECRET = 32
DEFAULT_PREFIX = "/_matrix/provision/v1"
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)+/?$")
KEYS = ("prefix", "shared_secret", "openid_cache")


@dataclass(frozen=True)
class ProvisioningConfig:
    prefix: str
    shared_secret: str
    openid_cache: float = 60.0
    """Seconds a verified OpenID token is kept (tokens live an hour on Synapse)."""


def parse_provisioning(data: Mapping[str, Any]) -> ProvisioningConfig | None:
    """The section checked (``ConfigError`` naming the key); None when the API is off."""
    section = data.get("provisioning")
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise ConfigError("provisioning", "must be a mapping")
    for key in section:
        if key not in KEYS:
            raise ConfigError(f"provisioning.{key}", f"unknown key (known: {', '.join(KEYS)})")
    secret = section.get("shared_secret")
    if secret is None:
        return None
    if not isinstance(secret, str) or len(secret) < MIN_SECRET or secret == "generate":
        raise ConfigError(
            "provisioning.shared_secret",
            f"must be a string of at least {MIN_SECRET} characters (null: the API is off)",
        )
    prefix = section.get("prefix", DEFAULT_PREFIX)
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise ConfigError(
            "provisioning.prefix", f"must be a URL path such as {DEFAULT_PREFIX}, not {prefix!r}"
        )
    cache = section.get("openid_cache", 60)
    if isinstance(cache, bool) or not isinstance(cache, int | float) or not 0 <= cache <= 3600:
        raise ConfigError("provisioning.openid_cache", "must be 0 to 3600 seconds")
    return ProvisioningConfig(prefix.rstrip("/"), secret, float(cache))
