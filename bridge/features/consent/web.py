"""The consent feature's web pages on the bridge's public listener, under
``/features/consent``:

``GET /form/{list}``
    The sign-up form of a list offered on an email account: its title, text and version.
``POST /subscribe/{list}``, ``OPTIONS /subscribe/{list}``
    The form's endpoint, also for forms embedded in other sites: ``email`` (and ``account``
    when the list is offered on several mail accounts), form-encoded, at most ``MAX_BODY``
    bytes. A plausible address gets a request and the confirmation mail (``mailflow``); the
    answer is the same whether the address was known, new or subscribed already, as an HTML
    page or, when the request accepts ``application/json``, as JSON, which any site's script
    may read (CORS: ``Access-Control-Allow-Origin: *``, and a preflight answer). The mail
    server refusing for now: 503, "try again". Posts over the limits of ``webguard.FormLimit``
    (per client and overall) get 429. The answer's text never tells whether an address is
    subscribed; its time tells a little: only a new request waits for the mail server (known
    and subscribed addresses, and the fourth ask within the hour, answer after a few database
    reads). Making them wait as long would cost a sleep per post, or a background send that
    could no longer say "try again".
``GET /confirm/{token}``, ``POST /confirm/{token}``
    The confirmation link. Opening it changes nothing (mail scanners open links by
    themselves): the page shows the list's text and a Confirm button, whose POST records the
    ``confirmed`` step with the token's id as its cause (a second press records nothing and
    says it is confirmed already). Only the latest request's link confirms, while it is the
    latest step; any other link gets a page saying why, with nothing recorded.
``GET /unsubscribe/{token}``, ``POST /unsubscribe/{token}``
    A broadcast's unsubscribe link (any channel account): the page has a button; its POST,
    or a one-click POST (RFC 8058: ``List-Unsubscribe=One-Click``), withdraws the consent,
    and the staff see a notice in the customer's conversation room when there is one.

The client's address (for ``record_ip`` and the limits) is the peer's, or behind a reverse
proxy listed in ``trusted_proxies`` the one it forwarded (``webguard.client_ip``).

A token whose contact no longer has the identity it names (a contact id reused after an
erasure) gets "This link is no longer valid" (410). A forged, altered, expired or foreign
token, or a malformed request, gets a page with a 4xx
status and the reason (``TokenError.reason``), and nothing is recorded. With ``record_ip`` the
requesting address is kept in the evidence of a request, a confirmation and a withdrawal."""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from html import escape
from typing import Any

from aiohttp import web

from ...connector import PermanentDeliveryError, TemporaryDeliveryError
from ...db import Portal
from ...db.consent import GIVEN, ConsentContact, ConsentEvent, ConsentIdentity
from ...logsafe import pii
from ...seams import Route
from . import pages
from .config import ConsentList
from .enforce import txn
from .links import CONFIRM, UNSUBSCRIBE
from .mailflow import MailOptIn, plausible
from .tokens import TokenError
from .webguard import FormLimit, client_ip

log = logging.getLogger("bridge.consent.web")

MAX_BODY = 4096
MAX_FIELDS = 20
FEATURE = "consent"
ONE_CLICK = b"One-Click"
INVALID = "This link is not valid."
GONE = "This link is no longer valid. Nothing was changed."
TOO_MANY = "Too many sign-ups just now. Please try again in a few minutes."
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Accept",
    "Access-Control-Max-Age": "86400",
}
CHECK_MAIL = (
    "Thank you. If {address} can receive mail, a message with a confirmation link is on its "
    "way: open it and press Confirm to subscribe. Nothing happens without that."
)


class Refusal(Exception):
    def __init__(self, status: int, title: str, text: str, retry: int | None = None) -> None:
        super().__init__(text)
        self.status, self.title, self.text, self.retry = status, title, text, retry


def refuse_token(error: TokenError) -> Refusal:
    status = 410 if "expired" in error.reason else 400
    return Refusal(status, "This link does not work", error.reason)


class Target:
    """What a token points at, looked up now: the contact, the list and the latest step."""

    def __init__(self, token_id: str, contact: int, user: str, list_: str, account: str,
                 item: ConsentList | None, latest: ConsentEvent | None) -> None:  # fmt: skip
        self.token_id, self.contact, self.list, self.account = token_id, contact, list_, account
        self.user, self.item, self.latest = user, item, latest

    @property
    def title(self) -> str:
        return self.item.title if self.item is not None else self.list

    def asked_by_this(self) -> bool:
        latest = self.latest
        return latest is not None and latest.step == "requested" and self._ours()

    def confirmed_by_this(self) -> bool:
        latest = self.latest
        return latest is not None and latest.step in GIVEN and self._ours()

    def _ours(self) -> bool:
        return self.latest is not None and self.latest.evidence.get("token") == self.token_id


class ConsentWeb:
    def __init__(self, flow: MailOptIn, limit: FormLimit | None = None) -> None:
        self.flow = flow
        self.limit = limit or FormLimit()
        self.registry = flow.registry
        self.options = flow.options
        self.signer = flow.links.signer

    def routes(self) -> list[Route]:
        def route(method: str, path: str, handler: Callable[[Any], Awaitable[Any]]) -> Route:
            return Route(FEATURE, method, path, _guarded(handler))

        return [
            route("GET", "/form/{list}", self.form),
            route("POST", "/subscribe/{list}", self.subscribe),
            route("OPTIONS", "/subscribe/{list}", self.preflight),
            route("GET", "/confirm/{token:[^/]+}", self.confirm_page),
            route("POST", "/confirm/{token:[^/]+}", self.confirm),
            route("GET", "/unsubscribe/{token:[^/]+}", self.unsubscribe_page),
            route("POST", "/unsubscribe/{token:[^/]+}", self.unsubscribe),
        ]

    # The form

    def _offered(self, request: web.Request) -> tuple[ConsentList, list[str]]:
        item = self.options.lists.get(request.match_info["list"])
        accounts = self.flow.accounts(item) if item is not None else []
        if item is None or not accounts:
            raise Refusal(404, "No such sign-up form", "There is no sign-up by mail for this.")
        return item, accounts

    async def form(self, request: web.Request) -> web.StreamResponse:
        item, accounts = self._offered(request)
        labels = [(a, self.flow.services.public_address(a) or a) for a in accounts]
        # Relative (the page is .../form/<list>): also right behind a proxy's path prefix.
        action = f"../subscribe/{urllib.parse.quote(item.name)}"
        return pages.form(item, action, labels)

    def client(self, request: web.Request) -> str | None:
        forwarded = request.headers.getall("X-Forwarded-For", [])
        return client_ip(request.remote, forwarded, self.options.trusted_proxies)

    async def preflight(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204, headers=CORS)

    async def subscribe(self, request: web.Request) -> web.StreamResponse:
        wants_json = "application/json" in request.headers.get("Accept", "")
        ip = self.client(request)
        try:
            if not self.limit.allow(ip):
                retry = int(self.limit.overall_window)
                raise Refusal(429, "Please try again later", TOO_MANY, retry)
            item, accounts = self._offered(request)
            fields = await _form(request)
            address = fields.get("email", "").strip()
            if not plausible(address):
                raise Refusal(400, "Not subscribed", "Please enter a valid email address.")
            account = fields.get("account") or (accounts[0] if len(accounts) == 1 else "")
            if account not in accounts:
                raise Refusal(400, "Not subscribed", "Please choose one of our addresses.")
            if not self.flow.deliverable(account, address):
                raise Refusal(400, "Not subscribed", "Please enter a valid email address.")
            try:
                await self.flow.subscribe(item, account, address, ip)
            except TemporaryDeliveryError as error:
                log.warning("A confirmation mail could not be sent for now: %s", pii(error))
                raise Refusal(503, "Please try again", "We cannot send mail right now. Please "
                              "try again in a few minutes.") from None  # fmt: skip
            except PermanentDeliveryError:
                raise Refusal(422, "Not subscribed", "We could not send a mail to this "
                              "address. Please check it.") from None  # fmt: skip
        except Refusal as refusal:
            if wants_json:
                answer = {"ok": False, "error": refusal.text}
                headers = {**CORS, **_retry(refusal)}
                return web.json_response(answer, status=refusal.status, headers=headers)
            raise
        text = CHECK_MAIL.format(address=address)
        if wants_json:
            return web.json_response({"ok": True, "message": text}, headers=CORS)
        return pages.message("Check your mail", text)

    # Confirmation links

    async def _target(self, request: web.Request, purpose: str) -> Target:
        try:
            token_id, fields = self.signer.verify(request.match_info["token"], purpose)
        except TokenError as error:
            raise refuse_token(error) from None
        contact, user = fields.get("c"), fields.get("u")
        list_, account = fields.get("l"), fields.get("a")
        if not isinstance(contact, int) or isinstance(contact, bool):
            raise Refusal(400, "This link does not work", INVALID)
        if not isinstance(user, str) or not isinstance(list_, str) or not isinstance(account, str):
            raise Refusal(400, "This link does not work", INVALID)
        root = await self.registry.root(contact)
        if root is None or not await self._still_theirs(root, account, user):
            raise Refusal(410, "This link does not work", GONE)
        latest = await ConsentEvent.latest(await ConsentContact.members(root), list_, account)
        item = self.options.lists.get(list_)
        return Target(token_id, root, user, list_, account, item, latest)

    async def _still_theirs(self, root: int, account: str, user: str) -> bool:
        """The identity the token names (a remote user, or the chat a broadcast went to)
        belongs to ``root`` still: not a contact id reused after an erasure."""
        found = await ConsentIdentity.get(account, user)
        identities = [found] if found is not None else []
        identities += await ConsentIdentity.by_chat(account, user)
        return any([await self.registry.root(i.contact) == root for i in identities])

    async def _confirmable(self, request: web.Request) -> Target:
        target = await self._target(request, CONFIRM)
        if target.item is None:
            raise Refusal(410, "This link does not work", "This list does not exist any more.")
        if not target.asked_by_this() and not target.confirmed_by_this():
            raise Refusal(410, "This link does not work", "This confirmation link was replaced "
                          "by a newer one, or the subscription changed since it was sent. "
                          "Nothing was changed.")  # fmt: skip
        return target

    def _confirmed(self, target: Target, again: bool) -> web.Response:
        url = self.flow.links.unsubscribe(target.contact, target.user, target.list, target.account)
        said = "You had confirmed already" if again else "Thank you, you are subscribed"
        body = (
            f"<p>{escape(said)}: {escape(target.title)}.</p>"
            f'<p><small>To unsubscribe at any time: <a href="{escape(url)}">'
            f"{escape(url)}</a></small></p>"
        )
        return pages.document("Subscribed", body)

    async def confirm_page(self, request: web.Request) -> web.StreamResponse:
        target = await self._confirmable(request)
        if target.confirmed_by_this():
            return self._confirmed(target, again=True)
        return pages.button(
            f"Confirm: {target.title}", "Press Confirm to subscribe to this:", target.item,
            "Confirm",
        )  # fmt: skip

    async def confirm(self, request: web.Request) -> web.StreamResponse:
        await _body(request)  # the button's field says nothing: bounded, read and left
        target = await self._confirmable(request)
        if target.confirmed_by_this():
            return self._confirmed(target, again=True)
        evidence = self._evidence(request, target, "confirmation link")
        done = await self.registry.confirm(
            target.contact, target.list, target.account, evidence,
            "confirmation link: the Confirm button", cause=target.token_id,
        )  # fmt: skip
        return self._confirmed(target, again=not done)

    def _evidence(self, request: web.Request, target: Target, source: str) -> dict[str, Any]:
        evidence: dict[str, Any] = {"token": target.token_id, "source": source}
        ip = self.client(request)
        if self.options.record_ip and ip is not None:
            evidence["ip"] = ip
        return evidence

    # Unsubscribe links

    async def unsubscribe_page(self, request: web.Request) -> web.StreamResponse:
        target = await self._target(request, UNSUBSCRIBE)
        if target.latest is None or target.latest.step not in GIVEN:
            return pages.message("Not subscribed", f"You are not subscribed to {target.title}.")
        return pages.button(
            f"Unsubscribe: {target.title}", f"Press Unsubscribe to stop receiving "
            f"{target.title}.", None, "Unsubscribe",
        )  # fmt: skip

    async def unsubscribe(self, request: web.Request) -> web.StreamResponse:
        # RFC 8058 allows the one-click body form-encoded or as multipart/form-data.
        one_click = ONE_CLICK in await _body(request)
        target = await self._target(request, UNSUBSCRIBE)
        latest = target.latest
        if latest is not None and latest.step in GIVEN:
            source = "one-click unsubscribe (RFC 8058)" if one_click else "unsubscribe link"
            cause = f"unsubscribe:{target.token_id}:{latest.id}"
            if await self.registry.withdraw(
                target.contact, target.list, target.account,
                self._evidence(request, target, source), source, cause=cause,
            ):  # fmt: skip
                await self._tell_staff(target, source, cause)
        if one_click:
            return web.Response(text="unsubscribed\n", headers=pages.HEADERS)
        return pages.message("Unsubscribed", f"You are unsubscribed from {target.title}.")

    async def _tell_staff(self, target: Target, source: str, cause: str) -> None:
        """A notice in the conversation room of the contact on the link's account, when it has
        one (the withdrawal holds whether or not the notice can be posted)."""
        members = await ConsentContact.members(target.contact)
        for identity in await ConsentIdentity.on_account(target.account, members):
            portal = await Portal.get(target.account, identity.chat)
            if portal is None or not portal.room_id:
                continue
            text = f"🛑 The customer unsubscribed from {target.title} ({source})."
            try:
                await self.flow.services.notice(portal.room_id, text, txn=txn(cause))
            except Exception:
                log.exception("The unsubscribe notice could not be posted")
            return


def _retry(refusal: Refusal) -> dict[str, str]:
    return {} if refusal.retry is None else {"Retry-After": str(refusal.retry)}


async def _body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Refusal(413, "Too large", "The request is too large.")
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise Refusal(413, "Too large", "The request is too large.")
    return body


async def _form(request: web.Request) -> dict[str, str]:
    """The form fields of a POST (the first of each name), bounded; ``Refusal`` otherwise."""
    body = await _body(request)
    if not body:
        return {}
    if request.content_type != "application/x-www-form-urlencoded":
        raise Refusal(415, "Not a form", "Send the form as application/x-www-form-urlencoded.")
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_FIELDS,
            errors="strict",
        )
    except ValueError:  # also UnicodeDecodeError
        raise Refusal(400, "Not a form", "The form could not be read.") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def _guarded(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
             ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:  # fmt: skip
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refusal as refusal:
            page = pages.message(refusal.title, refusal.text, refusal.status)
            page.headers.update(_retry(refusal))
            return page

    return run
