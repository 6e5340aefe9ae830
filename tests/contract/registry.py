"""The connectors the contract suite runs over: one line per connector harness."""

from __future__ import annotations

import importlib

from .harness import ConnectorHarness

HARNESSES = [
    "connectors.webhook.harness:WebhookHarness",
    "connectors.telegram.harness:TelegramHarness",
    "connectors.whatsapp.harness:WhatsAppHarness",
    "connectors.email.harness:EmailHarness",
    "connectors.email.harness:EmailLmtpHarness",
]
"""``module:Class`` of each harness, relative to the ``tests`` directory."""

# pytest imports ``tests/contract`` as ``contract`` or as ``tests.contract`` depending on
# whether ``tests/`` is a package; load harnesses under the same root so modules load once.
_ROOT = (__package__ or "").rpartition(".")[0]


def harness_classes() -> list[type[ConnectorHarness]]:
    classes = []
    for spec in HARNESSES:
        module_name, _, class_name = spec.partition(":")
        if _ROOT:
            module_name = f"{_ROOT}.{module_name}"
        cls = getattr(importlib.import_module(module_name), class_name)
        assert issubclass(cls, ConnectorHarness), f"{spec} is not a ConnectorHarness"
        classes.append(cls)
    return classes
