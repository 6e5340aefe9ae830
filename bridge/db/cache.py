"""A small read-through cache of rows, so the per-message look-ups of the hot path (the
portal and the ghost of each message) cost no database round trip.

It holds column values as read from the database, never the row objects handed out, so
every caller still gets its own object, as from the database. A write drops the row (the next
read fetches it again), and a read that overlapped a write is not kept, so the cache never
holds an older row than the database. It is bound to one ``Database`` object: another one
(a restart, a test on a new database) starts empty.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

Values = dict[str, Any]


class RowCache:
    """Least-recently-used column values by primary key, with an optional unique secondary
    key (e.g. a portal's room id) that maps to the primary key."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._rows: OrderedDict[Hashable, Values] = OrderedDict()
        self._secondary: dict[Hashable, Hashable] = {}
        self._owner: object = None
        self._secondary_field: str | None = None
        self.writes = 0
        """Counts invalidations; a read started before one must not fill the cache."""

    def bind(self, owner: object, secondary_field: str | None = None) -> RowCache:
        """Empty the cache unless it already belongs to ``owner`` (the current database)."""
        if owner is not self._owner:
            self._rows.clear()
            self._secondary.clear()
            self._owner = owner
        self._secondary_field = secondary_field
        return self

    def get(self, key: Hashable) -> Values | None:
        values = self._rows.get(key)
        if values is not None:
            self._rows.move_to_end(key)
        return values

    def get_secondary(self, value: Hashable) -> Values | None:
        key = self._secondary.get(value)
        if key is None:
            return None
        values = self.get(key)
        if values is None or values.get(self._secondary_field or "") != value:
            self._secondary.pop(value, None)
            return None
        return values

    def fill(self, key: Hashable, values: Values, writes_before: int) -> None:
        """Keep ``values`` read from the database, unless a write happened since the read
        began (``writes_before`` is ``writes`` as it was then)."""
        if writes_before != self.writes:
            return
        self.discard(key)
        self._rows[key] = values
        if self._secondary_field and values.get(self._secondary_field) is not None:
            self._secondary[values[self._secondary_field]] = key
        while len(self._rows) > self.size:
            oldest = next(iter(self._rows))
            self.discard(oldest)

    def invalidate(self, key: Hashable) -> None:
        """Call after every write of the row (also a failed one)."""
        self.writes += 1
        self.discard(key)

    def discard(self, key: Hashable) -> None:
        values = self._rows.pop(key, None)
        if values is not None and self._secondary_field:
            secondary = values.get(self._secondary_field)
            if self._secondary.get(secondary) == key:
                del self._secondary[secondary]

    def clear(self) -> None:
        self._rows.clear()
        self._secondary.clear()

    def __len__(self) -> int:
        return len(self._rows)
