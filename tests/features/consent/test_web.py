"""The consent pages on SQLite and PostgreSQL, through aiohttp's test client: the sign-up form
and its endpoint (HTML and JSON, the same answer for known and new addresses, a temporary mail
failure asks to try again), the confirmation link (opening changes nothing, the button
confirms once, only the latest request's link works), the unsubscribe link (button and RFC
8058 one-click, on any channel), and the keyword by mail."""

from __future__ import annotations

import dataclasses

import pytest

from bridge.connector import PermanentDeliveryError, TemporaryDeliveryError
from bridge.db.consent import ConsentEvent
from bridge.events import RemoteChat, RemoteMessage, RemoteUser
from bridge.features.consent.mailflow import MailKeywordHook
from bridge.seams import ConversationRef, Inbound
from bridge.types import MessageID, RemoteChatID, RemoteUserID
from tests.features.consent.support import HOOK, MAIL
from tests.features.consent.web_support import (
    MAIL2,
    WEB_CONFIG,
    Site,
    ledger,
    link_in,
    open_site,
    site,
)

__all__ = ["site"]

FORM = {"email": "Ann@Example.org"}


async def subscribe(site: Site, address: str = "Ann@Example.org", **more: str) -> None:
    status, page = await site.post("/subscribe/newsletter", {"email": address, **more})
    assert status == 200, page
    assert "Check your mail" in page


async def test_the_form_page_shows_the_list_escaped(site: Site) -> None:
    status, page = await site.get("/form/newsletter")
    assert status == 200
    assert page.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert "<title>News &lt;letter&gt;</title>" in page
    assert "Yes, &lt;send&gt; me the &quot;newsletter&quot; &amp; more." in page
    assert "version 2026-01" in page
    assert '<form method="post" action="../subscribe/newsletter">' in page
    assert 'name="email" type="email"' in page and "<select" not in page
    assert "<script" not in page and "src=" not in page and "<link" not in page
    status, page = await site.get("/form/order-updates")  # on two mail accounts: a choice
    assert status == 200 and '<option value="sales-email">sales-email@example.com' in page
    for missing in ("nope", "%3Cx%3E"):
        status, page = await site.get(f"/form/{missing}")
        assert status == 404 and "There is no sign-up by mail" in page


async def test_a_list_offered_on_no_mail_account_has_no_form(database: object) -> None:
    only_hook = dataclasses.replace(WEB_CONFIG.lists["newsletter"], accounts=(HOOK,))
    config = dataclasses.replace(WEB_CONFIG, lists={"newsletter": only_hook})
    async for opened in open_site(config):
        assert (await opened.get("/form/newsletter"))[0] == 404
        assert (await opened.post("/subscribe/newsletter", FORM))[0] == 404
        assert opened.services.direct == [] and await ledger() == []


async def test_subscribing_records_a_request_and_mails_the_link(site: Site) -> None:
    await subscribe(site)
    [(account, chat, mail)] = site.services.direct
    assert (account, chat) == (MAIL, "ann@example.org")
    assert "News <letter>" in mail.text and "version 2026-01" in mail.text
    assert mail.headers == (("Subject", "Please confirm: News <letter>"),)
    contact = await site.registry.contact_for(MAIL, "ann@example.org")
    assert contact is not None
    assert len(await ledger()) == 1
    token_id = mail.key.removeprefix("consent-confirm:")
    latest = await ConsentEvent.latest([contact], "newsletter", MAIL)
    assert latest is not None
    assert latest.evidence == {
        "source": "sign-up form", "address": "ann@example.org", "token": token_id
    }  # fmt: skip


async def test_the_answer_is_the_same_for_known_new_and_subscribed(site: Site) -> None:
    answers = []
    for _ in range(2):
        async with site.client.post(
            "/features/consent/subscribe/newsletter", data=FORM,
            headers={"Accept": "application/json"},
        ) as resp:  # fmt: skip
            answers.append((resp.status, await resp.json()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 200 and answers[0][1]["ok"] is True
    status, _ = await site.post(site.last_link(), {"go": "1"})
    assert status == 200
    before, mails = await ledger(), len(site.services.direct)
    async with site.client.post(
        "/features/consent/subscribe/newsletter", data=FORM,
        headers={"Accept": "application/json"},
    ) as resp:  # fmt: skip
        assert (resp.status, await resp.json()) == answers[0]
    # A subscribed address is not asked again (a request would end its consent).
    assert await ledger() == before and len(site.services.direct) == mails


async def test_record_ip_keeps_the_address_of_the_request(database: object) -> None:
    async for opened in open_site(dataclasses.replace(WEB_CONFIG, record_ip=True)):
        await subscribe(opened)
        status, _ = await opened.post(opened.last_link(), {"go": "1"})
        assert status == 200
        ips = [row for row in await ledger() if '"ip": "127.0.0.1"' in str(row)]
        assert len(ips) == 2  # the request and the confirmation


async def test_a_temporary_mail_failure_asks_to_try_again(site: Site) -> None:
    site.services.fail = TemporaryDeliveryError("greylisted", retry_after=60)
    status, page = await site.post("/subscribe/newsletter", FORM)
    assert status == 503 and "try again" in page
    site.services.fail = PermanentDeliveryError("no such domain")
    status, page = await site.post("/subscribe/newsletter", FORM)
    assert status == 422 and "could not send" in page
    site.services.fail = None
    await subscribe(site)  # the harmless earlier requests are superseded by this one
    status, _ = await site.post(site.last_link(), {"go": "1"})
    assert status == 200
    contact = await site.registry.contact_for(MAIL, "ann@example.org")
    assert contact is not None
    assert (await site.registry.state(contact, "newsletter", MAIL)).confirmed


@pytest.mark.parametrize(
    ("data", "status", "said"),
    [({"email": "not an address"}, 400, "valid email"), ({"email": "a@b\r\nBcc: x@y.z"}, 400,
     "valid email"), ({}, 400, "valid email"), ({"email": "a@" + "b" * 300 + ".de"}, 400,
     "valid email"), ({"email": "x@y.z", "account": "support-webhook"}, 400, "choose")],
)  # fmt: skip
async def test_bad_form_input_is_refused(
    site: Site, data: dict[str, str], status: int, said: str
) -> None:
    got, page = await site.post("/subscribe/newsletter", data)
    assert got == status and said in page
    assert await ledger() == [] and site.services.direct == []


async def test_a_list_on_two_mail_accounts_needs_the_account(site: Site) -> None:
    status, page = await site.post("/subscribe/order-updates", FORM)
    assert status == 400 and "choose" in page
    status, _ = await site.post("/subscribe/order-updates", {**FORM, "account": MAIL2})
    assert status == 200
    assert [(a, c) for a, c, _ in site.services.direct] == [(MAIL2, "ann@example.org")]


async def test_oversized_and_non_form_bodies_are_refused(site: Site) -> None:
    status, _ = await site.post("/subscribe/newsletter", {"email": "a@b.de", "x": "y" * 5000})
    assert status == 413
    status, _ = await site.post("/subscribe/newsletter", b"{}", headers={"Content-Type":
                                "application/json"})  # fmt: skip
    assert status == 415
    status, _ = await site.post("/subscribe/newsletter", b"email=%ff%fe@x.de", headers={
        "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert status == 400
    assert await ledger() == []


async def test_opening_the_link_changes_nothing_and_the_button_confirms_once(
    site: Site,
) -> None:
    await subscribe(site)
    link = site.last_link()
    before = await ledger()
    for _ in range(2):  # a mail scanner, then the person
        status, page = await site.get(link)
        assert status == 200 and '<button type="submit"' in page and "Confirm" in page
        assert "Yes, &lt;send&gt; me" in page
    assert await ledger() == before
    status, page = await site.post(link, {"go": "1"})
    assert status == 200 and "Thank you, you are subscribed" in page
    assert "/features/consent/unsubscribe/" in page
    after = await ledger()
    assert len(after) == len(before) + 1
    for method in (site.post, site.get):
        status, page = await method(link)
        assert status == 200 and "You had confirmed already" in page
    assert await ledger() == after


async def test_only_the_latest_request_can_be_confirmed(site: Site) -> None:
    await subscribe(site)
    first = site.last_link()
    await subscribe(site, "ann@example.org")
    latest = site.last_link()
    before = await ledger()
    status, page = await site.post(first, {"go": "1"})
    assert status == 410 and "replaced by a newer one" in page
    assert await ledger() == before
    assert (await site.post(latest, {"go": "1"}))[0] == 200
    contact = await site.registry.contact_for(MAIL, "ann@example.org")
    assert contact is not None
    await site.registry.withdraw(contact, "newsletter", MAIL, {}, "test")
    before = await ledger()
    status, page = await site.post(latest, {"go": "1"})  # withdrawn since: no confirmation
    assert status == 410 and await ledger() == before


async def test_the_unsubscribe_link_withdraws_on_any_channel(site: Site) -> None:
    contact = await site.registry.contact_for(HOOK, "ann", create=True)
    assert contact is not None
    await site.registry.confirm(contact, "order-updates", HOOK, {}, "button")
    url = site.links.unsubscribe(contact, "ann", "order-updates", HOOK)
    link = url.split("/features/consent")[1]
    before = await ledger()
    status, page = await site.get(link)
    assert status == 200 and "Unsubscribe" in page and "Order updates" in page
    assert await ledger() == before
    status, page = await site.post(link, {"go": "1"})
    assert status == 200 and "You are unsubscribed from Order updates" in page
    assert not (await site.registry.state(contact, "order-updates", HOOK)).confirmed
    after = await ledger()
    assert len(after) == len(before) + 1
    status, page = await site.get(link)
    assert status == 200 and "You are not subscribed" in page
    # Subscribed again: the same link (from an older mail) withdraws again, by one click.
    await site.registry.confirm(contact, "order-updates", HOOK, {}, "button")
    status, text = await site.post(link, "List-Unsubscribe=One-Click", headers={
        "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert (status, text) == (200, "unsubscribed\n")
    count = len(await ledger())
    assert (await site.post(link, "List-Unsubscribe=One-Click"))[0] == 200
    assert len(await ledger()) == count  # nothing more to withdraw
    assert not (await site.registry.state(contact, "order-updates", HOOK)).confirmed


def mail(text: str, account: str = MAIL, n: int = 1, notice: bool = False) -> Inbound:
    chat = RemoteChatID(f"bob@example.net/m{n}")
    event = RemoteMessage(
        chat=RemoteChat(chat), sender=RemoteUser(RemoteUserID("bob@example.net")),
        message_id=MessageID(f"m{n}@example.net"), text=text, notice=notice,
    )  # fmt: skip
    return Inbound(ConversationRef(account, chat, "!room:example.com"), event, True)


async def test_a_keyword_by_mail_asks_in_the_conversation(site: Site) -> None:
    hook = MailKeywordHook(site.flow)
    for _ in range(2):  # a retried hook records and queues nothing new
        await hook.on_inbound(mail("  News!\n\nThanks, Bob"))
    for ignored in (mail("newsletter", account=HOOK, n=2), mail("newsletter", n=3, notice=True),
                    mail("please send the newsletter", n=4)):  # fmt: skip
        await hook.on_inbound(ignored)
    [sent] = site.services.sent
    assert (sent.reason, sent.dedup) == ("consent:newsletter", "keyword:bob@example.net/m1:"
                                         "m1@example.net")  # fmt: skip
    assert "News <letter>" in sent.text and site.services.direct == []
    assert len(await ledger()) == 1
    assert (await site.post(link_in(sent.text), {"go": "1"}))[0] == 200
    contact = await site.registry.contact_for(MAIL, "bob@example.net")
    assert contact is not None
    assert await site.registry.confirmed_lists(contact, MAIL) == ["newsletter"]
    await hook.on_inbound(mail("NEWS", n=5))
    assert site.services.texts[-1] == "You are already subscribed to: News <letter>"


async def test_the_form_sends_one_address_three_mails_an_hour(site: Site) -> None:
    answers = {await site.post("/subscribe/newsletter", FORM) for _ in range(5)}
    assert len(answers) == 1 and next(iter(answers))[0] == 200
    assert len(site.services.direct) == 3 and len(await ledger()) == 3
    # The latest mailed link still confirms.
    assert (await site.post(site.last_link(), {"go": "1"}))[0] == 200


async def test_an_address_the_connector_refuses_asks_nothing(site: Site) -> None:
    """``plausible`` lets ``/`` through, the email connector does not: the keyword hook does not
    raise (which would stall the conversation's queue) and the form refuses the address."""
    event = RemoteMessage(
        chat=RemoteChat(RemoteChatID("a/b@example.com")),
        sender=RemoteUser(RemoteUserID("a/b@example.com")),
        message_id=MessageID("m1@example.com"), text="newsletter",
    )  # fmt: skip
    ref = ConversationRef(MAIL, RemoteChatID("a/b@example.com"), "!room:example.com")
    await MailKeywordHook(site.flow).on_inbound(Inbound(ref, event, True))
    status, page = await site.post("/subscribe/newsletter", {"email": "a/b@example.com"})
    assert status == 400 and "valid email" in page
    assert await ledger() == [] and site.services.sent == [] and site.services.direct == []


async def test_a_link_whose_identity_left_its_contact_is_no_longer_valid(site: Site) -> None:
    """A token names the contact by id and identity: should the id come to name someone else
    (reused after an erasure), the link refuses and records nothing."""
    ann = await site.registry.contact_for(HOOK, "ann", create=True)
    bob = await site.registry.contact_for(HOOK, "bob", create=True)
    assert ann is not None and bob is not None
    await site.registry.confirm(ann, "order-updates", HOOK, {}, "button")
    foreign = site.links.unsubscribe(ann, "bob", "order-updates", HOOK)
    before = await ledger()
    for method in (site.get, site.post):
        status, page = await method(foreign.split("/features/consent")[1])
        assert status == 410 and "no longer valid" in page
    assert await ledger() == before
    assert (await site.registry.state(ann, "order-updates", HOOK)).confirmed
