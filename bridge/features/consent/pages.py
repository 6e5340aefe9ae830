"""The consent feature's HTML pages: the sign-up form, the confirmation and unsubscribe pages
and every answer and refusal, as small self-contained documents (no scripts, no external
resources; a strict Content-Security-Policy and no Referer, so a link's token never leaves
the page). Everything that comes from the config or the request is escaped here."""

from __future__ import annotations

from html import escape

from aiohttp import web

from .config import ConsentList

LANG = "en"
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36em;margin:2em auto;padding:0 1em;"
    "line-height:1.5;color:#222}blockquote{border-left:3px solid #888;margin:1em 0;"
    "padding:.2em 1em;background:#f6f6f6;white-space:pre-wrap}small{color:#555}"
    "input[type=email]{width:100%;padding:.4em;box-sizing:border-box}"
    "button{padding:.5em 1.2em;margin-top:.8em}"
)
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def document(title: str, body: str, status: int = 200) -> web.Response:
    """A page; ``body`` is HTML already escaped by the caller, ``title`` is text."""
    html = (
        f'<!DOCTYPE html>\n<html lang="{LANG}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>\n"
    )
    return web.Response(
        text=html, status=status, content_type="text/html", charset="utf-8", headers=HEADERS
    )


def message(title: str, text: str, status: int = 200) -> web.Response:
    """A page saying ``text`` (plain text)."""
    return document(title, f"<p>{escape(text)}</p>", status)


def consent_text(item: ConsentList) -> str:
    return (
        f"<blockquote>{escape(item.text)}</blockquote>"
        f"<p><small>Consent text version {escape(item.version)}</small></p>"
    )


def form(item: ConsentList, action: str, accounts: list[tuple[str, str]]) -> web.Response:
    """The sign-up form of ``item`` posting to ``action``; ``accounts`` (id, label) when the
    list is offered on several mail accounts, to pick one."""
    choice = ""
    if len(accounts) > 1:
        options = "".join(
            f'<option value="{escape(a)}">{escape(label)}</option>' for a, label in accounts
        )
        choice = (
            f'<p><label for="account">From</label><br><select id="account" name="account">'
            f"{options}</select></p>"
        )
    body = (
        f"{consent_text(item)}"
        f'<form method="post" action="{escape(action)}">'
        '<p><label for="email">Your email address</label><br>'
        '<input id="email" name="email" type="email" required maxlength="254" '
        'autocomplete="email"></p>'
        f'{choice}<button type="submit">Subscribe</button></form>'
        "<p><small>We send you a mail with a link; only when you open it and press "
        "<em>Confirm</em> are you subscribed. You can unsubscribe at any time.</small></p>"
    )
    return document(item.title, body)


def button(title: str, intro: str, item: ConsentList | None, label: str) -> web.Response:
    """A page with ``intro``, the list's text and one button posting to the page's own URL
    (no ``action``: also behind a proxy that serves the bridge under a prefix)."""
    text = consent_text(item) if item is not None else ""
    body = (
        f"<p>{escape(intro)}</p>{text}"
        '<form method="post">'
        f'<button type="submit" name="go" value="1">{escape(label)}</button></form>'
    )
    return document(title, body)
