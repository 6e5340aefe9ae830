"""The messenger opt-in flows on SQLite and PostgreSQL, as one suite over both channels: a
Telegram ``/start <payload>`` and a WhatsApp keyword ask for a list offered on the account,
are recorded as a request and answered with the list's text and two buttons; a press confirms
or declines; retries record and send nothing twice; presses on lists no longer configured,
after expiry or without a request record nothing and are answered that the request expired."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from mautrix.util.async_db import Database

from bridge.config import Config, parse
from bridge.db.consent import ConsentEvent
from bridge.events import (
    Button,
    RemoteAttachment,
    RemoteButtonPress,
    RemoteChat,
    RemoteMessage,
    RemoteUser,
)
from bridge.features.consent.config import ConsentConfig, ConsentList
from bridge.features.consent.optin import OptInHook, Texts
from bridge.features.consent.registry import Registry
from bridge.seams import ConversationRef, Inbound
from bridge.types import AccountID, MessageID, RemoteChatID, RemoteUserID
from tests.features.consent.support import Clock, Services
from tests.test_config import example

TG = AccountID("support-telegram")
WA = AccountID("support-whatsapp")
HOOK = AccountID("support-webhook")
MAIL = AccountID("support-email")
NEWS = ConsentList(
    "newsletter", "Yes, send me the newsletter.", "2026-01", "Newsletter", ("NEWSLETTER",), "news"
)
ORDERS = ConsentList(
    "order-updates", "Yes, tell me about my orders.", "1", "Order updates", ("ORDERS",),
    "orders", (TG,),
)  # fmt: skip
OPTIONS = ConsentConfig(lists={"newsletter": NEWS, "order-updates": ORDERS})
HOUR = 3600 * 1000
CONFIG = parse(example())


@dataclass
class Pressable(Services):
    """Services that keep the buttons of each text queued (by dedup key)."""

    buttons: dict[str | None, tuple[Button, ...]] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)

    async def send_text(
        self, conversation: ConversationRef, text: str, *, reason: str,
        dedup: str | None = None, html: str | None = None, buttons: Sequence[Button] = (),
    ) -> bool:  # fmt: skip
        queued = await super().send_text(conversation, text, reason=reason, dedup=dedup)
        if queued:
            self.buttons[dedup] = tuple(buttons)
        return queued

    def public_address(self, account: str) -> str | None:
        return self.addresses.get(account)

    def channel_title(self, account: str) -> str:
        return CONFIG.channels[AccountID(account)].type.capitalize()


@dataclass
class Flow:
    registry: Registry
    clock: Clock
    services: Pressable
    hook: OptInHook

    async def steps(self, account: str = TG, user: str = "ann") -> list[tuple[str, str]]:
        contact = await self.registry.contact_for(account, user)
        if contact is None:
            return []
        history = await ConsentEvent.history([contact])
        return [(e.list, e.step) for e in history]

    async def events(self) -> list[ConsentEvent]:
        return await ConsentEvent.history(list(range(1, 100)))


def flow(config: Config = CONFIG, options: ConsentConfig = OPTIONS) -> Flow:
    clock = Clock()
    registry = Registry(options, clock=clock)
    services = Pressable()
    return Flow(registry, clock, services, OptInHook(registry, services, config))


def ref(account: str, user: str = "ann", room: bool = True) -> ConversationRef:
    """The conversation; without ``room``: a chat that has no room (yet)."""
    room_id = f"!{user}:example.com" if room else None
    return ConversationRef(AccountID(account), RemoteChatID(user), room_id)


def asking(account: str, text: str, n: int = 1, user: str = "ann", **kw: object) -> Inbound:
    """The customer's message: ``/start <payload>`` on Telegram (with the connector's
    routing), the text itself elsewhere."""
    metadata: dict[str, object] = {}
    if account == TG and text.startswith("/start "):
        metadata["routing"] = {"start": text.split()[1]}
    event = RemoteMessage(
        chat=RemoteChat(RemoteChatID(user)), sender=RemoteUser(RemoteUserID(user)),
        message_id=MessageID(f"m{n}"), text=text, metadata=metadata, **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    return Inbound(ref(account, user), event, n == 1)


def press(account: str, button: str, n: int = 1, user: str = "ann") -> Inbound:
    event = RemoteButtonPress(
        chat=RemoteChat(RemoteChatID(user)), sender=RemoteUser(RemoteUserID(user)),
        message_id=MessageID("bot-1"), button_id=button, title="Yes, subscribe",
        press_id=f"p{n}",
    )  # fmt: skip
    return Inbound(ref(account, user), event, False)


ASK = {TG: "/start news", WA: "newsletter"}
CHANNELS = pytest.mark.parametrize("account", [TG, WA])


@CHANNELS
async def test_ask_then_confirm_records_both_steps_once(database: Database, account: str) -> None:
    f = flow()
    for _ in range(2):  # the core retries a hook after a failure: nothing twice
        await f.hook.on_inbound(asking(account, ASK[account]))
    assert await f.steps(account) == [("newsletter", "requested")]
    (sent,) = f.services.sent
    assert sent.text == "Yes, send me the newsletter.\n\n(Consent text version 2026-01)"
    assert (sent.reason, sent.dedup) == ("consent:newsletter", f"consent-request:{account}:ann:m1")
    assert f.services.buttons[sent.dedup] == (
        Button("consent:yes:newsletter", "Yes, subscribe"),
        Button("consent:no:newsletter", "No thanks"),
    )
    for _ in range(2):
        await f.hook.on_inbound(press(account, "consent:yes:newsletter"))
    assert await f.steps(account) == [("newsletter", "requested"), ("newsletter", "confirmed")]
    assert f.services.texts[1:] == [
        "Thank you: you are subscribed to Newsletter. Write STOP to end it any time."
    ]
    request, confirm = await f.events()
    assert request.evidence == {"message_id": "m1", "chat": "ann"}
    assert confirm.evidence == {
        "press_id": "p1", "message_id": "bot-1", "button": "consent:yes:newsletter"
    }  # fmt: skip
    assert (
        request.trigger
        == {
            TG: "Telegram deep link 'news' from the customer",
            WA: "keyword 'newsletter' from the customer",
        }[account]
    )
    assert confirm.trigger == "button 'Yes, subscribe' pressed by the customer"
    assert confirm.text_hash == NEWS.hash == request.text_hash
    contact = await f.registry.contact_for(account, "ann")
    assert contact is not None
    assert await f.registry.confirmed_lists(contact, account) == ["newsletter"]


@CHANNELS
async def test_no_thanks_declines(database: Database, account: str) -> None:
    f = flow()
    await f.hook.on_inbound(asking(account, ASK[account]))
    await f.hook.on_inbound(press(account, "consent:no:newsletter"))
    assert await f.steps(account) == [("newsletter", "requested"), ("newsletter", "declined")]
    assert f.services.texts[-1] == "All right: you are not subscribed to Newsletter."


@CHANNELS
async def test_already_subscribed_is_told_so(database: Database, account: str) -> None:
    f = flow()
    await f.hook.on_inbound(asking(account, ASK[account]))
    await f.hook.on_inbound(press(account, "consent:yes:newsletter"))
    await f.hook.on_inbound(asking(account, ASK[account], n=2))
    await f.hook.on_inbound(press(account, "consent:yes:newsletter", n=2))
    already = "You are subscribed to Newsletter already. Write STOP to end it any time."
    assert f.services.texts[2:] == [already, already]
    assert len(await f.steps(account)) == 2


@CHANNELS
async def test_no_thanks_from_a_subscriber_ends_nothing(database: Database, account: str) -> None:
    """A press of "No thanks" on an old question ends no consent (STOP does) and says so."""
    f = flow()
    await f.hook.on_inbound(asking(account, ASK[account]))
    await f.hook.on_inbound(press(account, "consent:yes:newsletter"))
    await f.hook.on_inbound(press(account, "consent:no:newsletter", n=2))
    assert await f.steps(account) == [("newsletter", "requested"), ("newsletter", "confirmed")]
    assert f.services.texts[-1] == (
        "You are subscribed to Newsletter already. Write STOP to end it any time."
    )


@CHANNELS
async def test_a_yes_to_a_text_changed_since_asks_again(database: Database, account: str) -> None:
    """The operator changed the consent text after the question: the yes would be to a text
    the customer never saw. Nothing is confirmed; the new text is asked, once, and its yes
    confirms it."""
    f = flow()
    await f.hook.on_inbound(asking(account, ASK[account]))
    changed = dataclasses.replace(NEWS, text="Yes, send me the newsletter and offers.",
                                  version="2026-02")  # fmt: skip
    later = flow(options=ConsentConfig(lists={"newsletter": changed, "order-updates": ORDERS}))
    later.registry.clock = f.clock
    for _ in range(2):  # a press delivered twice
        await later.hook.on_inbound(press(account, "consent:yes:newsletter"))
    assert await f.steps(account) == [("newsletter", "requested"), ("newsletter", "requested")]
    (asked,) = later.services.texts
    assert asked.startswith("Yes, send me the newsletter and offers.")
    events = await f.events()
    assert events[-1].text_hash == changed.hash != events[0].text_hash
    await later.hook.on_inbound(press(account, "consent:yes:newsletter", n=2))
    assert (await f.steps(account))[-1] == ("newsletter", "confirmed")
    assert (await f.events())[-1].text_hash == changed.hash


@CHANNELS
async def test_a_late_press_expired_records_nothing(database: Database, account: str) -> None:
    f = flow()
    await f.hook.on_inbound(asking(account, ASK[account]))
    f.clock.now += 48 * HOUR
    for _ in range(2):
        await f.hook.on_inbound(press(account, "consent:yes:newsletter"))
    assert await f.steps(account) == [("newsletter", "requested")]
    assert f.services.texts[1:] == [Texts().expired]
    # A new request can be confirmed.
    await f.hook.on_inbound(asking(account, ASK[account], n=2))
    await f.hook.on_inbound(press(account, "consent:yes:newsletter", n=2))
    assert (await f.steps(account))[-1] == ("newsletter", "confirmed")


@CHANNELS
@pytest.mark.parametrize(
    "button", ["consent:yes:gone", "consent:no:gone", "consent:yes:newsletter"]
)
async def test_a_press_without_a_live_request_is_answered_expired(
    database: Database, account: str, button: str
) -> None:
    f = flow()
    await f.hook.on_inbound(asking(account, "hello"))  # no request
    f.services.sent.clear()
    await f.hook.on_inbound(press(account, button))
    assert f.services.texts == [Texts().expired]
    assert await f.events() == []


async def test_a_press_on_a_list_removed_since_the_request(database: Database) -> None:
    f = flow()
    await f.hook.on_inbound(asking(TG, "/start orders"))
    later = flow(options=ConsentConfig(lists={"newsletter": NEWS}))
    await later.hook.on_inbound(press(TG, "consent:yes:order-updates"))
    assert later.services.texts == [Texts().expired]
    assert await f.steps(TG) == [("order-updates", "requested")]


async def test_an_answered_request_is_not_answered_again(database: Database) -> None:
    f = flow()
    await f.hook.on_inbound(asking(TG, "/start news"))
    await f.hook.on_inbound(press(TG, "consent:no:newsletter"))
    await f.hook.on_inbound(press(TG, "consent:no:newsletter", n=2))
    assert f.services.texts[-1] == Texts().expired
    assert len(await f.steps(TG)) == 2


@pytest.mark.parametrize(
    ("account", "text"),
    [(TG, "NEWSLETTER"), (TG, "/start nothing"), (TG, "/start"), (WA, "/start news"),
     (WA, "ORDERS"),  # offered on Telegram only
     (WA, "the newsletter please"), (HOOK, "NEWSLETTER"), (MAIL, "NEWSLETTER")],
)  # fmt: skip
async def test_other_messages_ask_for_nothing(database: Database, account: str, text: str) -> None:
    f = flow()
    await f.hook.on_inbound(asking(account, text))
    assert f.services.sent == []
    assert await f.registry.contact_for(account, "ann") is None


async def test_a_list_only_on_telegram_is_asked_there(database: Database) -> None:
    f = flow()
    await f.hook.on_inbound(asking(TG, "/start orders"))
    assert await f.steps(TG) == [("order-updates", "requested")]


async def test_a_keyword_with_a_file_or_as_a_notice_asks_nothing(database: Database) -> None:
    f = flow()
    attachment = RemoteAttachment("https://example.com/a.png", "a.png", "image/png")
    await f.hook.on_inbound(asking(WA, "NEWSLETTER", attachments=(attachment,)))
    await f.hook.on_inbound(asking(WA, "NEWSLETTER", n=2, notice=True))
    assert f.services.sent == []


async def test_other_features_buttons_are_left_alone(database: Database) -> None:
    f = flow()
    for button in ("survey:yes", "consent:maybe:newsletter", "consent:yes", "consent:yes:"):
        await f.hook.on_inbound(press(TG, button))
    assert f.services.sent == []
