"""Test infrastructure: real services (PostgreSQL, Synapse) on loopback, plus a Matrix client.

Nothing is started on import. See ``postgres.py``, ``synapse.py``, ``staff.py`` and ``ports.py``.
"""
