"""The printable proof of a contact's consents (``consent proof``): one self-contained HTML
document with the contact's identities, the state of each consent, every step of the ledger
(when, channel, list, step, text version and hash, trigger, evidence) and the full text of
every consent text shown. Everything in it is escaped; it loads nothing from elsewhere."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape

from ...db.consent import GIVEN, ConsentEvent, ConsentIdentity, ConsentText

STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#111}table{border-collapse:collapse;"
    "width:100%;margin-bottom:1.5em}th,td{border:1px solid #999;padding:4px 6px;"
    "text-align:left;vertical-align:top;font-size:90%}pre{white-space:pre-wrap;"
    "border:1px solid #999;padding:8px}code{word-break:break-all}"
)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _row(cells: list[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{cell}</{tag}>" for cell in cells) + "</tr>"


def proof_html(
    contact: int,
    identities: list[ConsentIdentity],
    events: list[ConsentEvent],
    texts: dict[str, ConsentText],
    now: int,
) -> bytes:
    e = escape
    parts = [
        '<!DOCTYPE html><html><head><meta charset="utf-8">',
        f"<title>Consent proof, contact {contact}</title><style>{STYLE}</style></head><body>",
        f"<h1>Consent proof: contact {contact}</h1>",
        f"<p>Produced {e(_when(now))} from the bridge's consent ledger. The ledger is "
        "append-only: the database refuses to change or delete its entries. Each step names "
        "the SHA-256 of the exact consent text shown; the texts follow below.</p>",
        "<h2>Identities</h2><table>",
        _row(["Channel account", "Remote user", "Chat", "Known since"], "th"),
    ]
    for i in identities:
        parts.append(_row([e(i.account), e(i.remote_user), e(i.chat), e(_when(i.created_at))]))
    parts.append("</table><h2>Current state</h2><table>")
    parts.append(_row(["Channel account", "List", "State", "Since"], "th"))
    latest: dict[tuple[str, str], ConsentEvent] = {}
    for event in events:
        latest[(event.account, event.list)] = event
    for (account, list_), event in sorted(latest.items()):
        state = "consent given" if event.step in GIVEN else f"no consent ({event.step})"
        parts.append(_row([e(account), e(list_), e(state), e(_when(event.at))]))
    parts.append("</table><h2>Ledger</h2><table>")
    parts.append(_row(
        ["#", "When", "Channel account", "List", "Step", "Text version", "Text SHA-256",
         "Trigger", "Evidence"], "th",
    ))  # fmt: skip
    for event in events:
        text = texts.get(event.text_hash or "")
        parts.append(_row([
            str(event.id), e(_when(event.at)), e(event.account), e(event.list), e(event.step),
            e(text.version if text else "-"), f"<code>{e(event.text_hash or '-')}</code>",
            e(event.trigger), f"<code>{e(json.dumps(event.evidence, sort_keys=True))}</code>",
        ]))  # fmt: skip
    parts.append("</table><h2>Consent texts shown</h2>")
    for hash_, text in texts.items():
        parts.append(
            f"<h3>{e(text.list)}, version {e(text.version)}</h3><p>SHA-256 <code>{e(hash_)}"
            f"</code>, first shown {e(_when(text.first_seen))}</p><pre>{e(text.text)}</pre>"
        )
    parts.append("</body></html>")
    return "".join(parts).encode("utf-8")
