"""Consent as a feature module: its ``features.consent`` section checked at start-up, the
opt-out hook, the enforcing gate, the commands, and a job storing the consent texts at start
(a version with a changed text is logged; both texts stay provable). The flows that ask for
consent (Telegram deep links, WhatsApp buttons, email confirmation links), the sign-up form and
broadcasts call ``Registry`` (``CONSENT.registry`` after setup). Without ``public_url`` the
links point at the listener's bind address; set-up warns when a list is offered on an email
account then, since every confirmation mail would carry that (likely local) address."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ...config import Config
from ...seams import PeriodicJob, Seams
from .api import add_operations
from .commands import ConsentCommands
from .config import ConsentConfig, parse_consent_config
from .enforce import ConsentGate, OptOutHook
from .linkcmd import LinkCommand, with_link
from .links import Links
from .mailflow import MailKeywordHook, MailOptIn
from .optin import Expiry, OptInHook
from .registry import Registry
from .web import ConsentWeb

log = logging.getLogger("bridge.consent")

TEXTS_INTERVAL = 24 * 3600.0
EXPIRY_INTERVAL = 600.0


class Consent:
    name = "consent"

    def __init__(self) -> None:
        self.registry: Registry | None = None
        self.public_url_set = False

    def parse_config(self, section: Any, config: Config) -> ConsentConfig | None:
        self.public_url_set = isinstance(section, Mapping) and "public_url" in section
        return parse_consent_config(section, config)

    def setup(self, seams: Seams, options: ConsentConfig) -> None:
        registry = self.registry = Registry(options)
        registry.audit = seams.audit
        registry.metrics = seams.metrics
        seams.add_inbound_hook(OptOutHook(registry, seams.services, seams.config))
        seams.add_outbound_gate(ConsentGate(registry))
        seams.add_inbound_hook(OptInHook(registry, seams.services, seams.config))
        consent_commands = ConsentCommands(registry, seams.config)
        add_operations(seams, registry, consent_commands)
        commands = consent_commands.commands()
        for command in with_link(commands, LinkCommand(options, seams.config)):
            seams.add_command(command)
        seams.add_job(PeriodicJob("consent-expiry", EXPIRY_INTERVAL, Expiry(registry).run))
        mail = MailOptIn(registry, seams.services, seams.config, Links(options))
        offered = [i.name for i in options.lists.values() if mail.accounts(i)]
        if offered and not self.public_url_set:
            log.warning(
                "features.consent.public_url is not set: the confirmation mails of %s will "
                "link to %s, the listener's own address; set it to the address people reach "
                "the bridge at", ", ".join(offered), options.public_url,
            )  # fmt: skip
        seams.add_inbound_hook(MailKeywordHook(mail))
        for route in ConsentWeb(mail).routes():
            seams.add_route(route)
        seams.add_job(PeriodicJob("consent-texts", TEXTS_INTERVAL, _store(registry), True))


def _store(registry: Registry) -> Any:
    async def run() -> None:
        await registry.store_texts()

    return run


CONSENT = Consent()
