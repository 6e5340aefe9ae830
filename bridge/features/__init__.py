"""Feature modules: business features that plug into the core's seams (``bridge.seams``)."""
