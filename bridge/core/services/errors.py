"""Refusals of the services layer, and the permission levels they check."""

from __future__ import annotations

LEVELS = {"none": 0, "staff": 1, "admin": 2}


class ServiceError(Exception):
    """A refusal or failure to tell the person who asked."""


class PermissionDenied(ServiceError):
    """The person who asked may not do this (or not see what it is about)."""


def allowed(level: str, needed: str) -> bool:
    return LEVELS.get(level, 0) >= LEVELS[needed]
