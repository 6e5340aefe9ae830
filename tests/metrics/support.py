"""Reading one sample of a ``BridgeMetrics`` registry."""

from __future__ import annotations

from bridge.metrics.registry import BridgeMetrics


def sample(metrics: BridgeMetrics, name: str, **labels: str) -> float:
    """The value of ``name`` with exactly ``labels`` (0 when it has no such series yet)."""
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
