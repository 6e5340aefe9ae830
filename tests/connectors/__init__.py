"""Connector-specific tests and the harnesses the contract suite runs them through."""
