"""Sender authentication as the company's own mail server saw it (RFC 8601
``Authentication-Results``). Anyone can write such a header into a mail, so only the topmost
one carrying the configured ``authserv_id`` counts: the company's MTA adds its own above
whatever the mail brought (and should remove forged ones claiming its id)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"(?:^|[;\s])(dmarc|dkim|spf)\s*=\s*([A-Za-z]+)", re.IGNORECASE)


@dataclass(frozen=True)
class SenderCheck:
    verdict: str
    """``pass``, ``fail`` or ``none`` (nothing conclusive)."""
    detail: str
    """What the server found, e.g. ``dmarc=fail, spf=softfail``."""

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


def check_sender(results: list[str], authserv_id: str) -> SenderCheck:
    """The verdict of the topmost ``Authentication-Results`` value (``results``, top first)
    whose authserv-id is ``authserv_id``: DMARC decides where the domain has a policy, else a
    DKIM or SPF pass is a pass and a failure a failure."""
    for value in results:
        text = _COMMENT.sub(" ", " ".join(value.split()))
        server = text.split(";", 1)[0].strip().split(" ")[0].lower()
        if server != authserv_id.lower():
            continue
        found: dict[str, list[str]] = {}
        for method, result in _RESULT.findall(text):
            found.setdefault(method.lower(), []).append(result.lower())
        detail = ", ".join(f"{m}={'/'.join(r)}" for m, r in found.items()) or "no results"
        dmarc = found.get("dmarc", [])
        if dmarc and dmarc[0] not in ("none", "neutral", "temperror", "permerror"):
            return SenderCheck("pass" if dmarc[0] == "pass" else "fail", detail)
        others = found.get("dkim", []) + found.get("spf", [])
        if "pass" in others:
            return SenderCheck("pass", detail)
        if any(r in ("fail", "softfail") for r in others):
            return SenderCheck("fail", detail)
        return SenderCheck("none", detail)
    return SenderCheck("none", f"no result from {authserv_id}")
