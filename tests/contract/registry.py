"""The connectors the contract suite runs over: one line per connector harness."""

from __future__ import annotations

import importlib

from .harness import ConnectorHarness

HARNESSES = [
    "tests.connectors.webhook.harness:WebhookHarness",
    "tests.connectors.telegram.harness:TelegramHarness",
    "tests.connectors.whatsapp.harness:WhatsAppHarness",
    "tests.connectors.email.harness:EmailHarness",
    "tests.connectors.email.harness:EmailLmtpHarness",
    "tests.connectors.vk.harness:VKHarness",
    "tests.connectors.vk.harness:VKLongPollHarness",
    "tests.connectors.max.harness:MaxHarness",
]
"""``module:Class`` of each harness."""


def harness_classes() -> list[type[ConnectorHarness]]:
    classes = []
    for spec in HARNESSES:
        module_name, _, class_name = spec.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        assert issubclass(cls, ConnectorHarness), f"{spec} is not a ConnectorHarness"
        classes.append(cls)
    return classes
