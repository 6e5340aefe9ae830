"""The contract suite's ``host`` and ``connector`` fixtures: the ones the connector tests use."""

from __future__ import annotations

from .fixtures import connector, host

__all__ = ["connector", "host"]
