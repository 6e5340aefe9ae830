"""Delivery status notifications (RFC 3464): which message failed, for whom and why."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from ..sanitize import clean_text
from .headers import FOLD, Headers, decode_bytes, eight_bit, message_id_of, parse_header_block
from .mime import MAX_MIME_DEPTH, attached_messages, content_type_of, param_of, part_bytes


@dataclass(frozen=True)
class BounceReport:
    is_failure: bool
    """False for reports that only say "delayed", "delivered", "relayed" or "expanded"."""
    original_id: str | None
    reason: str
    recipients: tuple[str, ...] = ()
    """The addresses that failed (lowercased)."""


_NOT_FAILED = frozenset({"delayed", "delivered", "relayed", "expanded"})


_STATUS_TEXT = {
    "1.1": "bad destination mailbox address",
    "1.2": "bad destination system address",
    "1.3": "bad destination mailbox address syntax",
    "1.6": "destination mailbox has moved",
    "1.10": "recipient address has null MX",
    "2.1": "mailbox disabled",
    "2.2": "mailbox full",
    "2.3": "message length exceeds administrative limit",
    "3.4": "message too big for system",
    "4.1": "no answer from host",
    "4.4": "unable to route",
    "4.7": "delivery time expired",
    "7.1": "delivery not authorized, message refused",
    "7.26": "multiple authentication checks failed",
}


def _find_report(part: Message, depth: int) -> Message | None:
    if depth > MAX_MIME_DEPTH:
        return None
    ctype = content_type_of(part)
    if ctype == "multipart/report":
        if (param_of(part, "report-type") or "").lower() == "delivery-status":
            return part
    if ctype.startswith("multipart/"):
        for child in attached_messages(part.get_payload()):
            if found := _find_report(child, depth + 1):
                return found
    return None


def _status_blocks(part: Message) -> list[list[tuple[str, str]]]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [
            [(name, eight_bit(FOLD.sub(" ", value)).strip()) for name, value in block.items]
            for block in (Headers(m, b"") for m in attached_messages(payload))
        ]
    text = decode_bytes(part_bytes(part), None).replace("\r\n", "\n")
    return [parse_header_block(block) for block in re.split(r"\n[ \t]*\n", text)]


def _typed_value(value: str) -> str:
    """``rfc822; a@b`` → ``a@b``, ``smtp; 550 ...`` → ``550 ...``, whitespace collapsed."""
    kind, sep, rest = value.partition(";")
    if sep and re.fullmatch(r"\s*[A-Za-z0-9-]{1,20}\s*", kind):
        value = rest
    return " ".join(clean_text(value).split())


def _recipient_failed(fields: dict[str, str]) -> bool:
    action = (fields.get("action") or "").strip().lower().split(" ")[0]
    if action == "failed":
        return True
    if action in _NOT_FAILED:
        return False
    status = fields.get("status", "").strip()
    return not status or status.startswith("5")


def _recipient_reason(fields: dict[str, str]) -> str:
    diagnostic = _typed_value(fields.get("diagnostic-code", ""))
    status = fields.get("status", "").strip().split(" ")[0]
    if diagnostic:
        reason = diagnostic[:500]
    elif status:
        detail = _STATUS_TEXT.get(status.partition(".")[2])
        reason = f"{status} {detail}" if detail else status
    else:
        reason = (fields.get("action") or "").strip() or "undeliverable"
    recipient = fields.get("final-recipient") or fields.get("original-recipient") or ""
    recipient = _typed_value(recipient)
    return f"{reason} ({recipient[:320]})" if recipient else reason


def find_bounce(msg: Message) -> BounceReport | None:
    report = _find_report(msg, 0)
    if report is None:
        return None
    blocks: list[list[tuple[str, str]]] = []
    original_id: str | None = None
    for child in attached_messages(report.get_payload()):
        ctype = content_type_of(child)
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            blocks.extend(_status_blocks(child))
        elif original_id is None and ctype in ("message/rfc822", "message/global"):
            inner = attached_messages(child.get_payload())
            if inner:
                original_id = message_id_of(Headers(inner[0], b"").get("message-id"))
        elif original_id is None and ctype in ("text/rfc822-headers", "message/global-headers"):
            fields = dict(reversed(parse_header_block(decode_bytes(part_bytes(child), None))))
            original_id = message_id_of(fields.get("message-id"))
    for block in blocks:
        for name, value in block:
            if original_id is None and name in ("original-message-id", "x-original-message-id"):
                original_id = message_id_of(value)
    recipients = [
        dict(block)
        for block in blocks
        if any(k in ("final-recipient", "original-recipient", "action") for k, _ in block)
    ]
    failed = [r for r in recipients if _recipient_failed(r)]
    reason = "; ".join(_recipient_reason(r) for r in failed)[:2000]
    addresses = tuple(
        _typed_value(r.get("final-recipient") or r.get("original-recipient") or "").lower()
        for r in failed
    )
    return BounceReport(
        is_failure=bool(failed) or not recipients,
        original_id=original_id,
        reason=reason or "the message could not be delivered",
        recipients=tuple(a for a in addresses if a),
    )
