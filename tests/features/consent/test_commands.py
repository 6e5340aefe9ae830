"""The consent commands on SQLite and PostgreSQL: a contact named by the room, a number or an
identity (ambiguity and unknown names answered clearly), its history, its proof as an escaped
HTML file, merging (admins only), and the usage on wrong arguments."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from mautrix.util.async_db import Database

from bridge.config import parse
from bridge.features.consent.commands import MERGE_USAGE, USAGE, ConsentCommands
from bridge.features.consent.registry import Registry
from bridge.seams import ConversationRef
from tests.features.consent.support import HOOK, MAIL, Services, ref, registry
from tests.test_config import example

ANN = "@ann:example.com"
ADMIN = "@admin:example.com"


@dataclass
class Ctx:
    conversation: ConversationRef | None = None
    sender: str = ANN
    room_id: str = "!ann:example.com"
    event_id: str = "$command"
    services: Services = field(
        default_factory=lambda: Services(levels={ADMIN: "admin", "@eve:example.com": "none"})
    )


@pytest.fixture
async def setup(database: Database) -> tuple[Registry, ConsentCommands, int]:
    reg = registry()
    contact = await reg.contact_for(HOOK, "ann", create=True)
    assert contact is not None
    await reg.request(contact, "newsletter", HOOK, {"message_id": "m1"}, "deep link")
    await reg.confirm(contact, "newsletter", HOOK, {"message_id": "m2"}, "button <b>")
    await reg.withdraw(contact, "newsletter", HOOK, {"message_id": "m3"}, "opt-out keyword")
    return reg, ConsentCommands(reg, parse(example())), contact


async def run(commands: ConsentCommands, line: str, ctx: Ctx | None = None) -> str:
    consent, contact = commands.commands()
    words = line.split()
    command = consent if words[0] == "consent" else contact
    return await command.run(ctx or Ctx(), words[1:])


async def test_history_in_the_conversation_s_room(
    setup: tuple[Registry, ConsentCommands, int],
) -> None:
    _, commands, contact = setup
    answer = await run(commands, "consent", Ctx(ref("ann")))
    lines = answer.splitlines()
    assert lines[0] == f"Contact {contact}: support-webhook:ann"
    assert [line.split(" — ")[1:] for line in lines[1:]] == [
        ["support-webhook", "newsletter: requested (text 2026-01, sha256 " + _short() + ")",
         "deep link"],
        ["support-webhook", "newsletter: confirmed (text 2026-01, sha256 " + _short() + ")",
         "button <b>"],
        ["support-webhook", "newsletter: withdrawn (text 2026-01, sha256 " + _short() + ")",
         "opt-out keyword"],
    ]  # fmt: skip
    for named in (str(contact), f"#{contact}", "support-webhook:ann"):
        assert await run(commands, f"consent {named}") == answer


def _short() -> str:
    from tests.features.consent.support import NEWS

    return NEWS.hash[:12]


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        ("consent", f"Name a contact outside a conversation's room. {USAGE}"),
        ("consent 1 2", USAGE),
        ("consent proof 1 2", USAGE),
        ("consent 999", "There is no contact 999."),
        ("consent nobody", f"'nobody' is neither a contact number nor an identity account:user. "
                           f"{USAGE}"),
        ("consent nope:ann", f"'nope:ann' is neither a contact number nor an identity "
                             f"account:user. {USAGE}"),
        ("consent support-email:bob", "support-email:bob has no consent records."),
        ("contact", MERGE_USAGE),
        ("contact merge 1", MERGE_USAGE),
        ("contact join 1 2", MERGE_USAGE),
    ],
)  # fmt: skip
async def test_wrong_arguments_get_the_usage(
    setup: tuple[Registry, ConsentCommands, int], line: str, answer: str
) -> None:
    assert await run(setup[1], line, Ctx(sender=ADMIN)) == answer


async def test_a_room_without_records_or_with_several_contacts(
    setup: tuple[Registry, ConsentCommands, int],
) -> None:
    reg, commands, _ = setup
    answer = await run(commands, "consent", Ctx(ref("bob")))
    assert answer == "This conversation's customer has no consent records."
    one = await reg.contact_for(HOOK, "u1", chat="group", create=True)
    two = await reg.contact_for(HOOK, "u2", chat="group", create=True)
    answer = await run(commands, "consent", Ctx(ref("group")))
    assert answer == f"This conversation has several contacts ({one}, {two}); name one."


async def test_staff_without_the_account_see_nothing(
    setup: tuple[Registry, ConsentCommands, int],
) -> None:
    _, commands, contact = setup
    answer = await run(commands, f"consent {contact}", Ctx(sender="@eve:example.com"))
    assert answer == f"You need the staff permission on support-webhook for contact {contact}."


async def test_the_proof_is_an_escaped_html_file_for_admins(
    setup: tuple[Registry, ConsentCommands, int],
) -> None:
    _, commands, contact = setup
    ctx = Ctx(ref("ann"))
    answer = await run(commands, "consent proof", ctx)
    assert answer == f"You need the admin permission on support-webhook for contact {contact}."
    assert ctx.services.files == []
    ctx.sender = ADMIN
    answer = await run(commands, "consent proof", ctx)
    assert answer == (
        f"📄 Consent proof of contact {contact}: consent-proof-contact-{contact}.html (3 steps)."
    )
    ((room, data, filename, mimetype, txn),) = ctx.services.files
    assert (room, mimetype, txn) == ("!ann:example.com", "text/html", "consent-proof:$command")
    page = data.decode()
    assert page.startswith("<!DOCTYPE html>") and filename in answer
    assert "button &lt;b&gt;" in page and "button <b>" not in page
    assert "Yes, send me the newsletter." in page and "no consent (withdrawn)" in page
    assert page.count("<tr>") == 1 + 1 + 1 + 1 + 1 + 3  # headers and rows of three tables


async def test_merge_links_identities_for_admins(
    setup: tuple[Registry, ConsentCommands, int],
) -> None:
    reg, commands, contact = setup
    mail = await reg.contact_for(MAIL, "ann@example.org", create=True)
    assert mail is not None
    line = f"contact merge {contact} support-email:ann@example.org"
    assert await run(commands, line, Ctx(sender=ADMIN)) == (
        f"🔗 Contact {mail} is now part of contact {contact}: support-webhook:ann, "
        "support-email:ann@example.org"
    )
    assert await reg.contact_for(MAIL, "ann@example.org") == contact
    again = await run(commands, f"contact merge {contact} {mail}", Ctx(sender=ADMIN))
    assert again == f"contact {contact} cannot be merged with itself. {MERGE_USAGE}"
    missing = await run(commands, f"contact merge {contact} 999", Ctx(sender=ADMIN))
    assert missing == f"There is no contact 999. {MERGE_USAGE}"
    staff = await run(commands, f"contact merge {contact} {mail}")
    assert staff.startswith("You need the admin permission on")
