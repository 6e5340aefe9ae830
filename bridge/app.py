"""The application: the core with the feature modules plugged into its seams. The command
line builds the bridge here; the core itself knows no feature."""

from __future__ import annotations

from functools import partial

from .config import Config
from .config import load as load_config
from .core.bridge import Bridge, Feature
from .features import welcome
from .features.broadcast.module import BROADCAST
from .features.consent.module import CONSENT
from .features.inbox.module import INBOX
from .features.privacy.module import PRIVACY
from .seams import FeatureModule

FEATURES: tuple[FeatureModule, ...] = (welcome.FEATURE, INBOX, CONSENT, BROADCAST, PRIVACY)
"""Every feature module, in the order their hooks and gates run."""


def load(path: str) -> tuple[Config, list[Feature]]:
    """The config at ``path`` and every feature's setup with its checked options; raises
    ``ConfigError`` naming the first bad key, of the core or of a feature."""
    config = load_config(path)
    return config, features(config)


def features(config: Config) -> list[Feature]:
    unknown = set(config.features) - {f.name for f in FEATURES}
    if unknown:
        from .connector import ConfigError

        raise ConfigError(f"features.{sorted(unknown)[0]}", "no such feature")
    setups: list[Feature] = []
    for module in FEATURES:
        options = module.parse_config(config.features.get(module.name), config)
        if options is not None:
            setups.append(partial(module.setup, options=options))
    return setups


def build(config: Config, setups: list[Feature]) -> Bridge:
    return Bridge(config, setups)
