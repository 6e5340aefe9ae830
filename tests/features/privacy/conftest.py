from tests.db.support import database, databases

__all__ = ["database", "databases"]
