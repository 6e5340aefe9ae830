"""Core tests run on SQLite (a temporary file) and on PostgreSQL (a fresh database)."""

from tests.db.support import database, databases

__all__ = ["database", "databases"]
