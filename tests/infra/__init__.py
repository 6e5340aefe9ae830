"""Test infrastructure: real services on loopback (PostgreSQL, Synapse, Dovecot, an SMTP
capture, the bridge as a process), plus a Matrix client.

Nothing is started on import. Every server runs through ``process.py`` (``ManagedProcess`` for
child processes, ``Service`` for the lifecycle they share); see ``postgres.py``, ``synapse.py``
(``federation.py``: homeservers that federate), ``dovecot/``, ``smtp_capture.py``,
``bridge_proc.py``, ``staff.py`` and ``ports.py``.
"""
