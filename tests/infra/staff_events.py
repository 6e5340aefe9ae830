"""Raw-event types, predicates and errors of the staff client (:mod:`tests.infra.staff`).

Events are plain dicts as the homeserver sent them (or, for an encrypted client, as they were
before encryption); :func:`match` builds the predicates tests wait for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Event", "EventPredicate", "EventTimeout", "StaffError", "match", "summary"]

Event = dict[str, Any]
EventPredicate = Callable[[Event], bool]


class StaffError(RuntimeError):
    """A homeserver call made by the staff client failed."""


class EventTimeout(TimeoutError):
    """No event matched within the timeout."""


def match(
    *,
    room_id: str | None = None,
    sender: str | None = None,
    type: str | None = None,  # noqa: A002 - Matrix field name
    body: str | None = None,
    body_contains: str | None = None,
    msgtype: str | None = None,
    relates_to: str | None = None,
    rel_type: str | None = None,
    state_key: str | None = None,
    content: dict[str, Any] | None = None,
) -> EventPredicate:
    """Build a predicate over raw event dicts; every given field must match.

    ``relates_to`` is the event id in ``content["m.relates_to"]`` (``event_id`` or
    ``m.in_reply_to.event_id``); ``content`` is a subset match on the top level of the content.
    """

    def predicate(ev: Event) -> bool:
        c = ev.get("content") or {}
        rel = c.get("m.relates_to") or {}
        checks = [
            room_id is None or ev.get("room_id") == room_id,
            sender is None or ev.get("sender") == sender,
            type is None or ev.get("type") == type,
            body is None or c.get("body") == body,
            body_contains is None or body_contains in str(c.get("body", "")),
            msgtype is None or c.get("msgtype") == msgtype,
            rel_type is None or rel.get("rel_type") == rel_type,
            relates_to is None
            or rel.get("event_id") == relates_to
            or (rel.get("m.in_reply_to") or {}).get("event_id") == relates_to,
            state_key is None or ev.get("state_key") == state_key,
            content is None or all(c.get(k) == v for k, v in content.items()),
        ]
        return all(checks)

    return predicate


def summary(ev: Event) -> str:
    """One line about an event, for timeout messages."""
    c = ev.get("content") or {}
    what = c.get("body") or c.get("membership") or c.get("m.relates_to") or ""
    return f"{ev.get('room_id')} {ev.get('type')} from {ev.get('sender')}: {str(what)[:80]!r}"
