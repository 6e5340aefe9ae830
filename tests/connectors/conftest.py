"""Fixtures shared by the connector tests: each test package or module defines ``harness``
(its remote side, started and stopped with ``running``); ``host`` and ``connector`` follow
(see ``tests/contract/fixtures.py``, which the contract suite uses too)."""

from __future__ import annotations

from tests.contract.fixtures import connector, host, running

__all__ = ["connector", "host", "running"]
