"""A Matrix application-service bridge for business messaging channels."""

__version__ = "0.1.0"
