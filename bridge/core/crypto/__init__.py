"""End-to-bridge encryption: the one layer that encrypts and decrypts (used by MatrixSender)."""
