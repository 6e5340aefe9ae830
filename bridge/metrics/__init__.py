"""Prometheus metrics and the status endpoint: the figures (``registry.py``), the homeserver's
reachability (``reachability.py``), the ``metrics:`` config section (``config.py``) and the
listener that serves ``/metrics`` and ``/status`` (``listener.py``). The grafana dashboard
(``grafana-dashboard.json``) queries what ``registry.py`` defines."""
