"""The connector contract-test suite: every connector passes the same tests through a harness
that simulates its remote side (see ``harness.py`` and ``registry.py``)."""
