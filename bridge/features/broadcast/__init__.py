"""Broadcasts to a consent list's confirmed subscribers (issue 13)."""
