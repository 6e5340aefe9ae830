"""Consent: the registry of who agreed to what, its proof ledger, opt-out and enforcement."""
