"""Data protection: export, erasure, retention, the audit log and the record of what is held."""
