"""``consent link <list> [account]``: the deep link, the click-to-chat link and the form page of
each account the list is offered on, each with its QR code posted as a PNG; accounts without a
public address named; wrong lists and accounts answered; ``consent`` itself unchanged."""

from __future__ import annotations

from dataclasses import dataclass, field

from mautrix.util.async_db import Database

from bridge.features.consent.commands import ConsentCommands
from bridge.features.consent.linkcmd import USAGE, LinkCommand, qr_png, with_link
from bridge.features.consent.module import Consent
from bridge.features.consent.optin import OptInHook
from bridge.seams import Command, ConversationRef, Seams
from tests.features.consent.test_optin import CONFIG, MAIL, OPTIONS, TG, WA, Pressable, flow

ADDRESSES = {TG: "@company_bot", WA: "+49 151 2345-678"}
NEWS_TG = "https://t.me/company_bot?start=news"
NEWS_WA = "https://wa.me/491512345678?text=NEWSLETTER"
NEWS_FORM = "http://127.0.0.1:29350/features/consent/form/newsletter"


@dataclass
class Ctx:
    conversation: ConversationRef | None = None
    sender: str = "@ann:example.com"
    room_id: str = "!staff:example.com"
    event_id: str = "$command"
    services: Pressable = field(default_factory=lambda: Pressable(addresses=dict(ADDRESSES)))


def consent_command() -> Command:
    commands = ConsentCommands(flow().registry, CONFIG).commands()
    (consent,) = [
        c for c in with_link(commands, LinkCommand(OPTIONS, CONFIG)) if c.name == "consent"
    ]
    return consent


async def test_every_account_s_link_with_its_qr_code() -> None:
    ctx = Ctx()
    answer = await consent_command().run(ctx, ["link", "newsletter"])
    assert answer.splitlines() == [
        "🔗 Links of Newsletter (newsletter):",
        f"• support-telegram (Telegram): {NEWS_TG}",
        f"• support-whatsapp (Whatsapp): {NEWS_WA}",
        f"• support-email (Email): {NEWS_FORM}",
    ]  # the webhook account has no link
    files = ctx.services.files
    assert [(room, name, mime, txn) for room, _, name, mime, txn in files] == [
        ("!staff:example.com", f"newsletter-{account}.png", "image/png",
         f"consent-link:$command:{account}")
        for account in (TG, WA, MAIL)
    ]  # fmt: skip
    for (_, data, _, _, _), url in zip(files, (NEWS_TG, NEWS_WA, NEWS_FORM), strict=True):
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert data == qr_png(url)
    assert qr_png(NEWS_TG) != qr_png(NEWS_WA)


async def test_one_account_and_one_without_an_address() -> None:
    ctx = Ctx()
    ctx.services.addresses.pop(WA)
    answer = await consent_command().run(ctx, ["LINK", "order-updates", TG])
    assert answer.splitlines()[1:] == [
        "• support-telegram (Telegram): https://t.me/company_bot?start=orders"
    ]
    answer = await consent_command().run(ctx, ["link", "newsletter", WA])
    assert answer.splitlines()[1:] == [
        "• support-whatsapp (Whatsapp) (no link: the bridge does not know the whatsapp "
        "account's public address)"
    ]
    assert [name for _, _, name, _, _ in ctx.services.files] == [
        "order-updates-support-telegram.png"
    ]


async def test_wrong_arguments_are_answered() -> None:
    run = consent_command().run
    assert await run(Ctx(), ["link"]) == USAGE
    assert await run(Ctx(), ["link", "newsletter", TG, "more"]) == USAGE
    assert await run(Ctx(), ["link", "gone"]) == (
        f"There is no consent list 'gone' (lists: newsletter, order-updates). {USAGE}"
    )
    assert await run(Ctx(), ["link", "newsletter", "nowhere"]) == (
        f"There is no channel account 'nowhere'. {USAGE}"
    )
    assert await run(Ctx(), ["link", "order-updates", WA]) == (
        "The list order-updates has no link on support-whatsapp."
    )
    assert await run(Ctx(), ["link", "newsletter", "support-webhook"]) == (
        "The list newsletter has no link on support-webhook."
    )


async def test_consent_itself_is_unchanged(database: Database) -> None:
    consent = consent_command()
    assert consent.args.startswith("link <list> [account] | ")
    assert await consent.run(Ctx(), ["12"]) == "There is no contact 12."


def test_the_module_registers_the_flows() -> None:
    seams = Seams(CONFIG, Pressable())
    Consent().setup(seams, OPTIONS)
    assert any(isinstance(hook, OptInHook) for hook in seams.inbound_hooks)
    assert "consent-expiry" in [job.name for job in seams.jobs]
    (consent,) = [c for c in seams.commands if c.name == "consent"]
    assert consent.args.startswith("link <list> [account] | ")
