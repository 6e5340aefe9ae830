"""Opt-out keywords and the enforcing gate, on SQLite and PostgreSQL: a keyword in any of the
languages withdraws everything on that channel with one confirmation (a retried hook adds
nothing); the gate refuses a broadcast without consent and a strict template to a chat whose
customer never wrote, and passes answers and staff messages."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from mautrix.util.async_db import Database

from bridge.db import Conversation, Message
from bridge.db.conversation import BUSINESS_STARTED
from bridge.events import RemoteAttachment, RemoteChat, RemoteMessage, RemoteUser
from bridge.features.consent.config import OptOut
from bridge.features.consent.enforce import OPT_OUT_REASON, ConsentGate, OptOutHook
from bridge.features.consent.registry import Registry
from bridge.seams import PASS, Inbound, Origin, Outgoing, Refuse
from bridge.types import MessageID, RemoteChatID, RemoteUserID
from tests.features.consent.support import CONFIG, HOOK, MAIL, Services, ref, registry


def message(text: str, n: int = 1, user: str = "ann", **metadata: object) -> Inbound:
    event = RemoteMessage(
        chat=RemoteChat(RemoteChatID(user)),
        sender=RemoteUser(RemoteUserID(user)),
        message_id=MessageID(f"m{n}"),
        text=text,
        metadata=dict(metadata),
    )
    return Inbound(ref(user), event, n == 1)


async def subscribed(reg: Registry, user: str = "ann", *lists: str) -> int:
    contact = await reg.contact_for(HOOK, user, create=True)
    assert contact is not None
    for name in lists or ("newsletter", "order-updates"):
        await reg.confirm(contact, name, HOOK, {"message_id": "x"}, "button")
    return contact


@pytest.mark.parametrize(
    ("word", "confirmation"),
    [("STOP", "You are unsubscribed"), ("stop!", "You are unsubscribed"),
     ("Abmelden.", "You are unsubscribed"), ("СТОП", "You are unsubscribed"),
     (" отписаться ", "You are unsubscribed"), ("Stopp", "You are unsubscribed")],
)  # fmt: skip
async def test_a_keyword_withdraws_everything_with_one_confirmation(
    database: Database, word: str, confirmation: str
) -> None:
    reg, services = registry(), Services()
    contact = await subscribed(reg)
    mail = await reg.contact_for(MAIL, "ann@example.org", create=True)
    assert mail is not None
    await reg.confirm(mail, "newsletter", MAIL, {}, "link")
    await reg.merge(contact, mail, "@admin:example.com")
    hook = OptOutHook(reg, services)
    for _ in range(2):  # the core retries a hook after a failure: nothing twice
        await hook.on_inbound(message(word, n=5))
    assert [(s.text.split(":")[0], s.reason, s.dedup) for s in services.sent] == [
        (confirmation, OPT_OUT_REASON, "opt-out:ann:m5")
    ]
    assert "Newsletter, Order updates" in services.sent[0].text
    assert [(room, text) for room, text, _ in services.notices] == [
        ("!ann:example.com", "🛑 The customer withdrew consent: Newsletter, Order updates")
    ]
    assert await reg.confirmed_lists(contact, HOOK) == []
    assert await reg.confirmed_lists(contact, MAIL) == ["newsletter"]  # another channel


async def test_the_conversation_language_picks_the_confirmation(database: Database) -> None:
    reg, services = registry(), Services()
    await subscribed(reg, "ann", "newsletter")
    await OptOutHook(reg, services).on_inbound(message("STOP", routing={"language": "de-DE"}))
    assert services.texts == ["Sie sind abgemeldet: Sie erhalten hier keine Nachrichten mehr "
                              "von uns, außer Sie schreiben uns. Ihre Einwilligung "
                              "(Newsletter) ist widerrufen."]  # fmt: skip


async def test_a_keyword_of_a_language_picks_its_confirmation(database: Database) -> None:
    opt_out = OptOut({"default": ("STOP",), "de": ("ABMELDEN", "STOPP")}, {
        "default": "Bye: {lists}", "de": "Tschüss: {lists}"
    })  # fmt: skip
    reg, services = registry(dataclasses.replace(CONFIG, opt_out=opt_out)), Services()
    await subscribed(reg, "ann", "newsletter")
    await OptOutHook(reg, services).on_inbound(message("abmelden!"))
    assert services.texts == ["Tschüss: Newsletter"]


async def test_a_second_keyword_sends_nothing(database: Database) -> None:
    reg, services = registry(), Services()
    await subscribed(reg)
    hook = OptOutHook(reg, services)
    await hook.on_inbound(message("STOP", n=1))
    await hook.on_inbound(message("STOP", n=2))
    await hook.on_inbound(message("STOP", n=1, user="never-consented"))
    assert len(services.sent) == 1
    assert [text for _, text, _ in services.notices][1:] == [
        "🛑 The customer wrote 'STOP': there is no consent to withdraw on this channel, so no "
        "confirmation was sent."
    ] * 2
    assert await reg.contact_for(HOOK, "never-consented") is None  # nobody enters by STOP


@pytest.mark.parametrize("text", ["please stop", "stop sending", "STOPPED", "hello"])
async def test_other_messages_withdraw_nothing(database: Database, text: str) -> None:
    reg, services = registry(), Services()
    contact = await subscribed(reg)
    await OptOutHook(reg, services).on_inbound(message(text))
    assert (services.sent, services.notices) == ([], [])
    assert len(await reg.confirmed_lists(contact, HOOK)) == 2


async def test_by_mail_the_first_line_opts_out_as_it_opts_in(database: Database) -> None:
    """Art. 7(3): a mail client's signature under STOP does not keep the consent alive on an
    email account; elsewhere the keyword is still the whole message."""
    reg, services = registry(), Services()
    channels = {MAIL: SimpleNamespace(type="email"), HOOK: SimpleNamespace(type="webhook")}
    hook = OptOutHook(reg, services, SimpleNamespace(channels=channels))  # type: ignore[arg-type]
    text = "\n  STOP\n\nSent from my iPhone"
    hooked = await subscribed(reg)
    await hook.on_inbound(message(text))
    assert services.sent == [] and len(await reg.confirmed_lists(hooked, HOOK)) == 2
    mailed = await reg.contact_for(MAIL, "bob@example.org", create=True)
    assert mailed is not None
    await reg.confirm(mailed, "newsletter", MAIL, {}, "link")
    original = RemoteAttachment(
        "mail-part:0", "original.eml", "message/rfc822", extra={"original": True}
    )  # the connector's copy of the mail
    event = RemoteMessage(
        chat=RemoteChat(RemoteChatID("bob@example.org")),
        sender=RemoteUser(RemoteUserID("bob@example.org")), message_id=MessageID("m9"),
        text=text, attachments=(original,),
    )  # fmt: skip
    await hook.on_inbound(Inbound(ref("bob@example.org", MAIL), event, True))
    assert await reg.confirmed_lists(mailed, MAIL) == []
    assert len(services.sent) == 1 and "You are unsubscribed" in services.sent[0].text


async def test_a_keyword_with_an_attachment_is_a_message(database: Database) -> None:
    reg, services = registry(), Services()
    await subscribed(reg)
    inbound = message("STOP")
    event = RemoteMessage(
        chat=inbound.event.chat, sender=inbound.event.sender, message_id=MessageID("m1"),
        text="STOP", attachments=(RemoteAttachment("a1", "image/png", "a.png"),),
    )  # fmt: skip
    await OptOutHook(reg, services).on_inbound(Inbound(inbound.conversation, event, True))
    assert services.sent == []


def bridge(reason: str = "", template: str | None = None, chat: str = "ann") -> Outgoing:
    return Outgoing(
        ref(chat), Origin.BRIDGE, "template", "Hello", template=template, reason=reason
    )


async def test_a_broadcast_needs_the_list_s_consent(database: Database) -> None:
    reg = registry()
    gate = ConsentGate(reg)
    refused = await gate.check(bridge("broadcast:newsletter:42"))
    assert isinstance(refused, Refuse)
    assert "not confirmed the list 'newsletter' on support-webhook" in refused.reason
    contact = await subscribed(reg, "ann", "order-updates")
    assert isinstance(await gate.check(bridge("broadcast:newsletter")), Refuse)
    assert await gate.check(bridge("broadcast:order-updates")) is PASS
    await reg.confirm(contact, "newsletter", HOOK, {}, "button")
    assert await gate.check(bridge("broadcast:newsletter:42")) is PASS
    await reg.withdraw(contact, "newsletter", HOOK, {}, "opt-out")
    assert isinstance(await gate.check(bridge("broadcast:newsletter")), Refuse)


async def test_a_strict_template_needs_a_customer_who_wrote_or_a_consent(
    database: Database,
) -> None:
    reg = registry()
    gate = ConsentGate(reg)
    refused = await gate.check(bridge(template="offer"))
    assert isinstance(refused, Refuse) and "never wrote on support-webhook" in refused.reason
    # a conversation the business started: still nobody wrote
    await Conversation.ensure(HOOK, "ann", 1, BUSINESS_STARTED)
    assert isinstance(await gate.check(bridge(template="offer")), Refuse)
    await subscribed(reg, "ann", "order-updates")
    assert await gate.check(bridge(template="offer")) is PASS
    # a customer who wrote (after the business started) needs none
    await Message(HOOK, "bob", "m1", 0, "$e1", "!bob:example.com", "bob", "@g:x", 5).insert()
    assert await gate.check(bridge(template="offer", chat="bob")) is PASS
    await Conversation.ensure(HOOK, "cid", 1, "m7")
    assert await gate.check(bridge(template="offer", chat="cid")) is PASS
    # a lenient account: templates go to anyone
    lenient = Outgoing(ref("eve", MAIL), Origin.BRIDGE, "template", "Hi", template="offer")
    assert await gate.check(lenient) is PASS


async def test_answers_and_staff_messages_need_no_consent(database: Database) -> None:
    gate = ConsentGate(registry())
    assert await gate.check(bridge("welcome")) is PASS
    assert await gate.check(bridge(OPT_OUT_REASON)) is PASS
    staff = Outgoing(ref(), Origin.STAFF, "@ann:example.com", "broadcast: hello")
    assert await gate.check(staff) is PASS
