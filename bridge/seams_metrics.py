"""What feature modules tell the bridge's metrics (``Seams.metrics``).

The core counts what it does itself (messages each way, failures, retries, the queue, the
connectors, the homeserver); a feature reports the figures only it knows: the inbox its open
and unassigned conversations per team and each first response, consent each consent given
or withdrawn, broadcasts their progress. A feature calls these methods where the thing
happens, or from a periodic job (``Seams.add_job``) for figures it reads from its tables:
a scrape only reads what was reported, so it never waits for the database.

With metrics off nothing listens, but the calls stay valid (and cheap): features never ask
whether metrics are on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable


@runtime_checkable
class FeatureMetrics(Protocol):
    def conversations(self, team: str, open_: int, unassigned: int) -> None:
        """``team``'s open conversations now, and how many of them nobody has."""
        ...

    def first_response(self, team: str, seconds: float) -> None:
        """A customer of ``team`` got the first staff reply after waiting ``seconds``."""
        ...

    def consent(self, list_: str, account: str, step: str) -> None:
        """A consent step was recorded (``confirmed``: given; ``withdrawn``...)."""
        ...

    def broadcast(self, list_: str, counts: Mapping[str, int]) -> None:
        """The recipients of ``list_``'s latest broadcast by status (``sent``, ``failed``,
        ``pending``, ``skipped``...): the whole set, replacing what was reported before."""
        ...


class NoMetrics:
    """Takes every report and keeps nothing (a ``Seams`` built without the core: tests)."""

    def conversations(self, team: str, open_: int, unassigned: int) -> None:
        return None

    def first_response(self, team: str, seconds: float) -> None:
        return None

    def consent(self, list_: str, account: str, step: str) -> None:
        return None

    def broadcast(self, list_: str, counts: Mapping[str, int]) -> None:
        return None
