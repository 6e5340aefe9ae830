"""The encryption layer: encrypted attachments."""
