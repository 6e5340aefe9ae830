"""Metrics tests that count the queue run on SQLite and on PostgreSQL."""

from tests.db.support import database, databases

__all__ = ["database", "databases"]
