"""Who asks the consent pages and how often (SQLite and PostgreSQL where pages run): the form's
limits per client and overall (429, HTML and JSON), the client's address behind trusted
reverse proxies only, CORS for the embeddable endpoint, the ``trusted_proxies`` key, the
staff's notice when a customer unsubscribes by link, and the start-up warning when mailed
links would carry the listener's own address."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
from typing import Any

import pytest

from bridge.config import parse
from bridge.connector import ConfigError
from bridge.db import Portal
from bridge.features.consent.module import Consent
from bridge.features.consent.webguard import FormLimit, client_ip
from bridge.seams import Seams
from tests.features.consent.support import HOOK
from tests.features.consent.test_config import consent
from tests.features.consent.web_support import (
    WEB_CONFIG,
    Services,
    Site,
    ledger,
    open_site,
    site,
)
from tests.test_config import example

__all__ = ["site"]

JSON = {"Accept": "application/json"}
PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_form_limit_per_client_and_overall() -> None:
    clock = Clock()
    limit = FormLimit(per_ip=3, ip_window=600, overall=5, overall_window=60, clock=clock)
    assert [limit.allow("192.0.2.1") for _ in range(4)] == [True, True, True, False]
    # IPv6 clients count by their /64; other clients still get through
    assert limit.allow("2001:db8::1") and limit.allow("2001:db8::2")
    assert not limit.allow("198.51.100.7")  # five in the last minute: everyone waits
    clock.now += 61
    assert limit.allow("198.51.100.7") and not limit.allow("192.0.2.1")
    clock.now += 600
    assert limit.allow("192.0.2.1")


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),  # not a proxy: the header is a lie
     ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
     ("10.0.0.2", ["6.6.6.6, 198.51.100.1, 10.0.0.9"], "198.51.100.1"),  # rightmost untrusted
     ("10.0.0.2", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),  # several header lines
     ("::1", [], "::1"), ("10.0.0.2", ["10.0.0.3"], "10.0.0.3"),  # only proxies
     ("10.0.0.2", ["junk, 10.0.0.3"], "10.0.0.3"), (None, ["198.51.100.1"], None)],
)  # fmt: skip
def test_the_client_behind_trusted_proxies(
    peer: str | None, forwarded: list[str], client: str | None
) -> None:
    assert client_ip(peer, forwarded, PROXIES) == client
    assert client_ip(peer, forwarded, ()) == peer  # no proxies configured: the peer


def test_trusted_proxies_are_checked() -> None:
    parsed = consent({"trusted_proxies": ["127.0.0.1", "10.0.0.0/8", "fd00::/8"]})
    assert parsed is not None
    assert [str(n) for n in parsed.trusted_proxies] == ["127.0.0.1/32", "10.0.0.0/8", "fd00::/8"]
    assert consent({}).trusted_proxies == ()  # type: ignore[union-attr]
    for bad, key in (("10.0.0.0/8", ""), (["nope"], "[0]"), ([None], "[0]")):
        with pytest.raises(ConfigError) as refused:
            consent({"trusted_proxies": bad})
        assert refused.value.key == f"features.consent.trusted_proxies{key}"


async def post(site: Site, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    async with site.client.post(
        "/features/consent/subscribe/newsletter", data={"email": "ann@example.org"},
        headers=headers or {},
    ) as resp:  # fmt: skip
        body = await resp.json() if "json" in resp.content_type else await resp.text()
        return resp.status, body, resp.headers


async def test_the_form_answers_429_over_its_limit(database: object) -> None:
    async for opened in open_site(limit=FormLimit(per_ip=2, clock=Clock())):
        assert [(await post(opened))[0] for _ in range(2)] == [200, 200]
        status, page, headers = await post(opened)
        assert status == 429 and "Too many sign-ups" in page and "<!DOCTYPE html>" in page
        assert headers["Retry-After"] == "60"
        status, answer, headers = await post(opened, JSON)
        assert (status, answer["ok"]) == (429, False) and "Too many" in answer["error"]
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert len(await ledger()) == 2 and len(opened.services.direct) == 2


async def test_the_embeddable_endpoint_answers_cors(site: Site) -> None:
    async with site.client.options(
        "/features/consent/subscribe/newsletter",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    ) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    status, answer, headers = await post(site, JSON)
    assert (status, answer["ok"], headers["Access-Control-Allow-Origin"]) == (200, True, "*")
    status, answer, headers = await post(site, {**JSON, "Content-Type": "text/plain"})
    assert status == 415 and headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(("trusted", "recorded"), [(True, "198.51.100.1"), (False, "127.0.0.1")])
async def test_record_ip_takes_the_forwarded_client_only_from_a_trusted_proxy(
    database: object, trusted: bool, recorded: str
) -> None:
    proxies = (ipaddress.ip_network("127.0.0.0/8"),) if trusted else ()
    config = dataclasses.replace(WEB_CONFIG, record_ip=True, trusted_proxies=proxies)
    async for opened in open_site(config):
        status, _, _ = await post(opened, {"X-Forwarded-For": "6.6.6.6, 198.51.100.1"})
        assert status == 200
        [row] = await ledger()
        assert f'"ip": "{recorded}"' in str(row)


async def test_an_unsubscribe_by_link_is_shown_to_the_staff(site: Site) -> None:
    ann = await site.registry.contact_for(HOOK, "ann", chat="ann-chat", create=True)
    bob = await site.registry.contact_for(HOOK, "bob", chat="bob-chat", create=True)
    assert ann is not None and bob is not None
    await Portal(HOOK, "ann-chat", "!ann:example.com").insert()
    for contact in (ann, bob):
        await site.registry.confirm(contact, "order-updates", HOOK, {}, "button")
    for contact, user in ((ann, "ann"), (bob, "bob")):  # bob has no room: nothing to post
        link = site.links.unsubscribe(contact, user, "order-updates", HOOK)
        for _ in range(2):  # the second withdraws nothing and says nothing
            status, _ = await site.post(link.split("/features/consent")[1], {"go": "1"})
            assert status == 200
    assert [(room, text) for room, text, _ in site.services.notices] == [
        ("!ann:example.com", "🛑 The customer unsubscribed from Order updates (unsubscribe link).")
    ]


@pytest.mark.parametrize(("public_url", "accounts", "warned"), [
    (None, None, True), ("https://bridge.example.com", None, False),
    (None, ["support-webhook"], False),
])  # fmt: skip
def test_start_up_warns_when_mailed_links_would_be_local(
    caplog: pytest.LogCaptureFixture,
    public_url: str | None,
    accounts: list[str] | None,
    warned: bool,
) -> None:
    section: dict[str, Any] = {"lists": {"news": {"text": "Yes.", "version": "1"}}}
    if accounts is not None:
        section["lists"]["news"]["accounts"] = accounts
    if public_url is not None:
        section["public_url"] = public_url
    config = parse(example(lambda data: data.update(features={"consent": section})))
    module = Consent()
    options = module.parse_config(config.features["consent"], config)
    assert options is not None
    with caplog.at_level(logging.WARNING, "bridge.consent"):
        module.setup(Seams(config, Services()), options)  # type: ignore[arg-type]
    said = [r.getMessage() for r in caplog.records if "public_url is not set" in r.getMessage()]
    assert len(said) == warned
    assert not said or "of news will link to http://" in said[0]
