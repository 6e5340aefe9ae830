"""The readable parts of a privacy export: ``index.html`` (everything ``export.json`` holds,
for a browser) and ``README.txt``. Names, texts, file names and identifiers are the person's
and the staff's own words, so every one of them is escaped; files link to their copy in the
archive (``media/``) by a path the export made itself."""

from __future__ import annotations

import html
import json
from typing import Any

from ..inbox.transcript import STYLE, clean

DIRECTIONS = {"customer": "from the person", "staff": "from staff", "bridge": "from the bridge"}
KINDS = {"note": "internal note", "unsent": "not sent", "notice": "bridge notice"}


def _e(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return html.escape(clean(text), quote=True)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "<p>None.</p>\n"
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(row.get(c))}</td>" for c in columns) + "</tr>\n" for row in rows
    )
    return f"<table><tr>{head}</tr>\n{body}</table>\n"


def _message(item: dict[str, Any]) -> str:
    who = item["sender_name"]
    if item.get("staff"):
        who = f"{item['staff']['name']} ({item['staff']['mxid']})"
    tags = [DIRECTIONS[item["direction"]], f"delivery: {item['delivery']['status']}"]
    if item["kind"] in KINDS:
        tags.append(KINDS[item["kind"]])
    if item["delivery"].get("reason"):
        tags.append(f"reason: {item['delivery']['reason']}")
    if item["redacted"]:
        tags.append("deleted (redacted)")
    if item["edits"]:
        tags.append(f"edited {len(item['edits'])}×")
    parts = [
        f'<div class="msg {_e(item["direction"])}">',
        f'<span class="time">{_e(item["time"])}</span> <span class="who">{_e(who)}</span>',
        f' <span class="tag">({_e(", ".join(tags))})</span>',
    ]
    for file in item["files"]:
        name = _e(file["name"])
        if file.get("path"):
            parts.append(f'<div class="file">📎 <a href="{_e(file["path"])}">{name}</a></div>')
        else:
            parts.append(f'<div class="file">📎 {name} (left out: {_e(file["left_out"])})</div>')
    if item.get("text"):
        parts.append(f'<div class="text">{_e(item["text"])}</div>')
    if item["edits"] and not item["redacted"]:
        versions = [item.get("original_text") or "", *(e["text"] or "" for e in item["edits"])]
        for n, text in enumerate(versions[:-1]):
            when = item["time"] if n == 0 else item["edits"][n - 1]["time"]
            parts.append(f'<div class="meta">Before the edit ({_e(when)}): {_e(text)}</div>')
    for reaction in item.get("reactions", []):
        parts.append(
            f'<div class="meta">Reaction {_e(reaction["key"])} by {_e(reaction["sender"])}'
            f" at {_e(reaction['time'])}</div>"
        )
    parts.append("</div>\n")
    return "".join(parts)


def render_html(document: dict[str, Any]) -> str:
    """``index.html`` of an export."""
    out = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>Personal data export: {_e(document['asked'])}</title>",
        f"<style>{STYLE}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;"
        "padding:.2em .4em;text-align:left}</style></head><body>\n",
        f"<h1>Personal data export: {_e(document['asked'])}</h1>\n",
        f'<p class="meta">Made {_e(document["made"])} · schema {_e(document["schema"])} '
        f"version {_e(document['schema_version'])} · internal notes "
        f"{'included' if document['notes_included'] else 'left out'} · the same in "
        '<a href="export.json">export.json</a></p>\n',
        "<h2>Identities</h2>\n",
        _table(document["identities"], ["account", "channel", "remote_user", "chat"]),
        "<h2>Profiles</h2>\n",
        _table(
            document["profiles"],
            ["account", "remote_user", "matrix_user", "display_name", "avatar"],
        ),
        "<h2>Consent</h2>\n",
        _table(document["consent"]["contacts"], ["id", "created", "merged_into"]),
        _table(
            document["consent"]["events"],
            ["time", "contact", "list", "account", "step", "text_hash", "trigger", "evidence"],
        ),
    ]
    for hash_, text in document["consent"]["texts"].items():
        if text:
            out.append(
                f'<p class="meta">Text {_e(hash_)} ({_e(text["list"])}, version '
                f'{_e(text["version"])}):</p><div class="text">{_e(text["text"])}</div>\n'
            )
    for conversation in document["conversations"]:
        title = conversation["name"] or conversation["chat"]
        out.append(f"<h2>Conversation: {_e(title)}</h2>\n")
        facts = [
            f"{conversation['channel']} account {conversation['account']}",
            f"chat {conversation['chat']}",
            f"created {conversation['created'] or 'unknown'}",
        ]
        if conversation["inbox"]:
            facts.append(f"inbox status {conversation['inbox']['status']}")
        out.append(f'<p class="meta">{_e(" · ".join(facts))}</p>\n')
        if not conversation["history_complete"]:
            out.append('<p class="cut">The earliest messages of this room were not read.</p>\n')
        if not conversation["messages"]:
            out.append("<p>No messages.</p>\n")
        out.extend(_message(item) for item in conversation["messages"])
    left_out = document["media"]["left_out"]
    if left_out:
        out.append("<h2>Files left out</h2>\n")
        out.append(_table(left_out, ["event_id", "name", "reason"]))
    out.append("</body></html>\n")
    return "".join(out)


def readme(document: dict[str, Any]) -> str:
    """``README.txt`` of an export."""
    counts = document["counts"]
    notes = "included" if document["notes_included"] else "left out"
    return (
        f"Personal data export ({document['schema']} version {document['schema_version']})\n"
        f"Made {document['made']}.\n\n"
        "index.html   everything below, readable in a browser\n"
        "export.json  the same, machine-readable (Art. 20 GDPR)\n"
        "media/       the files of the messages\n\n"
        f"{counts['identities']} identities, {counts['conversations']} conversations, "
        f"{counts['messages']} messages, {counts['media']} files "
        f"({counts['media_left_out']} left out, over the size limit or unreadable), "
        f"{counts['consent_events']} consent events. Internal notes: {notes}.\n\n"
        "Each message has a direction (customer: from the person; staff: from a staff member,\n"
        "named; bridge: sent automatically), its time (ISO 8601 in UTC and milliseconds since\n"
        "1970), its text, files, edits and reactions, whether it was deleted (redacted), and\n"
        "its delivery status as the bridge knows it: received, sent (accepted by the channel),\n"
        "failed (with the reason) or not sent. Read receipts are not kept by the bridge.\n"
    )
