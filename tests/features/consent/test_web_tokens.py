"""Hypothesis tests of the consent pages (SQLite and PostgreSQL): random, forged, altered,
expired and foreign-purpose tokens, and random form input, each get a clear refusal page with
a 4xx status and leave the ledger as it was; a valid token, used any number of times, confirms
exactly once. The site (a test server on the test's database) is shared by a test's examples:
each example compares the ledger before and after itself."""

from __future__ import annotations

import itertools
import json
import urllib.parse

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from bridge.features.consent.mailflow import FORM_LIMIT, plausible
from tests.features.consent.web_support import Site, ledger, site

__all__ = ["site"]

EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REFUSED = "This link does not work"
_n = itertools.count()
# Anything a path segment can carry (a slash would make it another route).
token_text = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="/"), min_size=1,
    max_size=1100,
).filter(lambda t: t not in (".", ".."))  # fmt: skip
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."


async def fetch(site: Site, method: str, page: str, token: str, data: object = None
                ) -> tuple[int, str]:  # fmt: skip
    path = f"/features/consent/{page}/{urllib.parse.quote(token, safe='')}"
    url = URL(path, encoded=True)
    async with site.client.request(method, url, data=data) as resp:
        return resp.status, await resp.text()


async def refused(site: Site, page: str, token: str, status: int | None = None) -> None:
    """Every way of using ``token`` on ``page`` is refused with a page; nothing recorded."""
    before = await ledger()
    for method, data in (("GET", None), ("POST", {"go": "1"}),
                         ("POST", "List-Unsubscribe=One-Click")):  # fmt: skip
        got, text = await fetch(site, method, page, token, data)
        assert 400 <= got < 500 and (status is None or got == status), (got, text)
        assert REFUSED in text or "replaced by a newer one" in text, text
    assert await ledger() == before


async def asked(site: Site) -> str:
    """A new request's confirmation token (of a new address)."""
    status, _ = await site.post("/subscribe/newsletter", {"email": f"p{next(_n)}@example.org"})
    assert status == 200
    return site.last_link().split("/")[-1]


def fields_of(body: dict[str, str] | bytes) -> dict[str, str]:
    if isinstance(body, dict):
        return body
    try:
        pairs = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True, errors="strict")
    except ValueError:
        return {}
    return {name: value for name, value in reversed(pairs)}


@EXAMPLES
@given(token=token_text, page=st.sampled_from(["confirm", "unsubscribe"]))
async def test_random_tokens_are_refused(site: Site, token: str, page: str) -> None:
    await refused(site, page, token)


@EXAMPLES
@given(where=st.integers(0, 10_000), char=st.integers(0, len(B64) - 1), cut=st.booleans())
async def test_altered_tokens_are_refused(site: Site, where: int, char: int, cut: bool) -> None:
    token = await asked(site)
    at = where % len(token)
    new = B64[char] if B64[char] != token[at] else B64[(char + 1) % len(B64)]
    altered = token[:at] if cut and at else token[:at] + new + token[at + 1 :]
    await refused(site, "confirm", altered, 400)


@EXAMPLES
@given(hours=st.floats(48.001, 10_000))
async def test_expired_tokens_are_refused(site: Site, hours: float) -> None:
    token = await asked(site)
    site.clock.now += hours * 3600
    try:
        await refused(site, "confirm", token, 410)
    finally:
        site.clock.now -= hours * 3600


@EXAMPLES
@given(swap=st.booleans())
async def test_a_token_for_the_other_page_is_refused(site: Site, swap: bool) -> None:
    token = await asked(site)
    address = site.services.direct[-1][1]
    contact = await site.registry.contact_for("support-email", address)
    assert contact is not None
    unsubscribe = site.links.unsubscribe(contact, address, "newsletter", "support-email")
    unsubscribe = unsubscribe.split("/")[-1]
    page, foreign = ("confirm", unsubscribe) if swap else ("unsubscribe", token)
    await refused(site, page, foreign, 400)


@settings(EXAMPLES, max_examples=15)
@given(uses=st.lists(st.sampled_from(["GET", "POST"]), min_size=1, max_size=6))
async def test_a_valid_token_confirms_exactly_once(site: Site, uses: list[str]) -> None:
    token = await asked(site)
    before = len(await ledger())
    for method in uses:
        status, _ = await fetch(site, method, "confirm", token, {"go": "1"})
        assert status == 200
    confirmed = [row for row in (await ledger())[before:] if "confirmed" in row]
    assert len(confirmed) == ("POST" in uses)


form_values = st.text(max_size=300) | st.emails().map(lambda e: e[:300])


@EXAMPLES
@given(
    body=st.dictionaries(st.sampled_from(["email", "account", "x"]) | st.text(max_size=20),
                         form_values, max_size=4)
    | st.binary(max_size=600),
)  # fmt: skip
async def test_random_form_input(site: Site, body: dict[str, str] | bytes) -> None:
    before, mails = await ledger(), len(site.services.direct)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    data = urllib.parse.urlencode(body) if isinstance(body, dict) else body
    status, text = await site.post("/subscribe/newsletter", data, headers=headers)
    fields = fields_of(body)
    address = str(fields.get("email", "")).strip()
    account = fields.get("account")
    if status == 200:
        assert plausible(address)
        assert account in (None, "", "support-email")
        assert "Check your mail" in text
        chat = address.lower()
        if len([c for _, c, _ in site.services.direct[:mails] if c == chat]) < FORM_LIMIT:
            # not held back by the form's hourly limit: a request, and its mail went out
            [row] = (await ledger())[len(before) :]
            assert "requested" in row
            evidence = [json.loads(v) for v in row if isinstance(v, str) and v.startswith("{")]
            assert [e["address"] for e in evidence] == [chat], row
            [(_, to, _)] = site.services.direct[mails:]
            assert to == chat
        return
    assert status in (400, 413, 415), (status, text)
    assert "<!DOCTYPE html>" in text
    assert await ledger() == before and len(site.services.direct) == mails
