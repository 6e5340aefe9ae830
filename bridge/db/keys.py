"""Fixed-size keys for values of unbounded length (remote chat, message and user ids, dedup
keys), so that no index entry can exceed PostgreSQL's btree limit (about 2.7 KB) however long
what a remote side sends is. The values themselves stay in their own columns."""

from __future__ import annotations

import hashlib


def digest(*parts: str) -> str:
    """SHA-256 (hex) of ``parts``, each prefixed with its length so that no two different
    tuples give the same input."""
    data = "".join(f"{len(part)}:{part}" for part in parts)
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()
