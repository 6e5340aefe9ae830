"""The Telegram simulator's update side, proven with aiogram: getUpdates, webhooks, and the update
builders validated against aiogram's models and its dispatcher."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramBadRequest, TelegramConflictError
from aiogram.types import Message, ReactionTypeEmoji, Update

from . import sim_support
from . import updates as tg
from .sim_support import ALICE, BOB, GROUP, Receiver, assert_documented, png, raw
from .simulator import SECRET_HEADER, TelegramSimulator

# The fixtures shared by these tests (see sim_support).
sim = sim_support.sim
bot = sim_support.bot
receiver = sim_support.receiver


# -- getUpdates ----------------------------------------------------------------------------------


async def test_get_updates_offset_semantics(sim: TelegramSimulator, bot: Bot) -> None:
    alice = tg.user(ALICE, "Alice")
    chat = tg.private_chat(alice)
    pushed = [sim.push_update(tg.message_update(tg.text_message(chat, alice, t))) for t in "abc"]
    ids = [u["update_id"] for u in pushed]
    assert ids == sorted(ids) and len(set(ids)) == 3
    first = await bot.get_updates()
    assert [u.update_id for u in first] == ids
    assert [u.message.text for u in first if u.message] == ["a", "b", "c"]
    assert [u.update_id for u in await bot.get_updates(limit=1)] == ids[:1]
    assert [u.update_id for u in await bot.get_updates(offset=ids[1])] == ids[1:]
    # confirmed updates are gone for good, even without an offset
    assert [u.update_id for u in await bot.get_updates()] == ids[1:]
    assert sim.is_confirmed(ids[0]) and not sim.is_confirmed(ids[1])
    assert await bot.get_updates(offset=ids[-1] + 1) == []
    assert sim.pending_updates == []


async def test_get_updates_long_polling(sim: TelegramSimulator, bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == []
    assert time.monotonic() - started >= 0.9
    poll = asyncio.create_task(bot.get_updates(timeout=20))
    await sim.wait_for_consumer()
    await asyncio.sleep(0.1)
    assert not poll.done()
    bob = tg.user(BOB, "Bob")
    pushed = sim.push_update(tg.message_update(tg.text_message(tg.private_chat(bob), bob, "hi")))
    started = time.monotonic()
    got = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - started < 2
    assert [u.update_id for u in got] == [pushed["update_id"]]


async def test_second_poller_terminates_the_first(sim: TelegramSimulator, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=20))
    await sim.wait_for_consumer()
    second = asyncio.create_task(bot.get_updates(timeout=1))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await asyncio.wait_for(first, 5)
    assert await second == []


async def test_allowed_updates_filter(sim: TelegramSimulator, bot: Bot) -> None:
    alice = tg.user(ALICE, "Alice")
    chat = tg.private_chat(alice)
    msg = sim.add_bot_message(ALICE, "react here")
    reaction = tg.message_reaction_update(
        tg.message_reaction(chat, msg["message_id"], alice, new=["👍"])
    )
    sim.push_update(reaction)  # not delivered by default
    assert sim.pending_updates == [] and len(sim.filtered_updates) == 1
    assert await bot.get_updates(allowed_updates=["message", "message_reaction"]) == []
    assert sim.allowed_updates == ["message", "message_reaction"]
    sim.push_update(reaction)
    sim.push_update(tg.edited_message_update(tg.edited(msg, text="x")))  # not allowed now
    got = await bot.get_updates()
    assert len(got) == 1 and got[0].message_reaction is not None
    assert got[0].message_reaction.new_reaction[0].emoji == "👍"  # type: ignore[union-attr]


# -- webhooks ------------------------------------------------------------------------------------


async def test_webhook_delivery_with_secret(
    sim: TelegramSimulator, bot: Bot, receiver: Receiver
) -> None:
    assert await bot.set_webhook(receiver.url, secret_token=receiver.secret)
    info = await bot.get_webhook_info()
    assert (info.url, info.pending_update_count) == (receiver.url, 0)
    bob = tg.user(BOB, "Bob")
    pushed = sim.push_update(tg.message_update(tg.text_message(tg.private_chat(bob), bob, "hook")))
    await sim.wait_for_confirmed(pushed["update_id"])
    headers, body = receiver.requests[-1]
    assert headers[SECRET_HEADER] == receiver.secret
    assert headers["Content-Type"] == "application/json"
    assert body == pushed
    assert [d.status for d in sim.webhook_deliveries] == [200]
    with pytest.raises(TelegramConflictError, match="can't use getUpdates method while webhook"):
        await bot.get_updates()
    # a request with the wrong secret is refused by the receiver
    other = tg.message_update(tg.text_message(tg.private_chat(bob), bob, "x"))
    wrong = await sim.post_webhook(other, secret="wrong")
    assert wrong.status == 401
    no_header = await sim.post_webhook(pushed, secret=None)
    assert no_header.status == 401 and SECRET_HEADER not in receiver.requests[-1][0]

    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.get_updates() == []


async def test_webhook_retries_and_duplicates(
    sim: TelegramSimulator, bot: Bot, receiver: Receiver
) -> None:
    await bot.set_webhook(receiver.url, secret_token=receiver.secret)
    receiver.fail = [500]
    alice = tg.user(ALICE, "Alice")
    chat = tg.private_chat(alice)
    pushed = sim.push_update(tg.message_update(tg.text_message(chat, alice, "retry me")))
    await sim.wait_for_confirmed(pushed["update_id"])
    assert [d.status for d in sim.webhook_deliveries] == [500, 200]
    assert [body["update_id"] for _, body in receiver.requests] == [pushed["update_id"]] * 2
    info = await bot.get_webhook_info()
    assert info.last_error_message is not None and "500" in info.last_error_message

    twice = sim.deliver_webhook_twice(tg.message_update(tg.text_message(chat, alice, "dup")))
    await sim.wait_for_confirmed(twice["update_id"])
    assert [b["update_id"] for _, b in receiver.requests].count(twice["update_id"]) == 2

    sim.webhook_max_attempts = 2
    receiver.fail = [503, 503]
    lost = sim.push_update(tg.message_update(tg.text_message(chat, alice, "lost")))
    await sim.wait_for(lambda: sim.webhook_dropped)
    assert sim.webhook_dropped[0]["update_id"] == lost["update_id"]


async def test_webhook_answer_with_a_method(
    sim: TelegramSimulator, bot: Bot, receiver: Receiver
) -> None:
    await bot.set_webhook(receiver.url, secret_token=receiver.secret)
    receiver.reply = {"method": "sendMessage", "chat_id": ALICE, "text": "answered inline"}
    alice = tg.user(ALICE, "Alice")
    sim.push_update(tg.message_update(tg.text_message(tg.private_chat(alice), alice, "ping")))
    record = await sim.wait_for_sent()
    assert (record.chat_id, record.text) == (ALICE, "answered inline")


async def test_set_webhook_validation(sim: TelegramSimulator, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="secret token contains unallowed characters"):
        await bot.set_webhook("https://example.org/hook", secret_token="no spaces!")
    with pytest.raises(TelegramBadRequest, match="secret token is too long"):
        await bot.set_webhook("https://example.org/hook", secret_token="a" * 257)
    with pytest.raises(TelegramBadRequest, match="invalid webhook URL specified"):
        await bot.set_webhook("ftp://example.org/hook")
    status, body = await raw(sim, "deleteWebhook")
    assert body == {"ok": True, "result": True, "description": "Webhook is already deleted"}


# -- builders ------------------------------------------------------------------------------------


def every_kind_of_update(sim: TelegramSimulator) -> list[dict[str, Any]]:
    alice = tg.user(ALICE, "Alice", last_name="A", username="alice", language_code="en")
    bob = tg.user(BOB, "Bob")
    private = tg.private_chat(alice)
    group = tg.group_chat(GROUP, "Team", username="team_chat")
    text = "Hi @bob, see https://x.org 😀"
    entities = [
        tg.entity_for(text, "@bob", "mention"),
        tg.entity_for(text, "https://x.org", "url"),
        tg.entity("bold", 0, 2),
    ]
    first = tg.text_message(private, alice, text, entities=entities)
    in_group = tg.html_message(group, bob, "<b>hello</b> <i>team</i>")
    reply = tg.text_message(group, alice, "answer", reply_to=in_group)
    stored = sim.add_file(png(), kind="photo")
    ref = stored.ref()
    owner = tg.user(7001, "Shop")
    customer = tg.user(7002, "Customer")
    business_chat = tg.private_chat(customer)
    business = tg.text_message(business_chat, customer, "hello shop", business_connection_id="bc")
    caption = "caption <b>bold</b>"
    cap_text, cap_entities = tg.parse_html(caption)
    return [
        tg.message_update(first),
        tg.message_update(in_group),
        tg.message_update(reply),
        tg.message_update(tg.start_message(private, alice, "invite-token_42")),
        tg.edited_message_update(tg.edited(first, text="Hi again", entities=None)),
        tg.message_update(
            tg.photo_message(private, alice, ref, caption=cap_text, caption_entities=cap_entities)
        ),
        tg.message_update(tg.document_message(group, bob, tg.file_ref(), caption="doc")),
        tg.message_update(tg.audio_message(private, alice, tg.file_ref(), title="Song")),
        tg.message_update(tg.voice_message(private, alice, tg.file_ref(), duration=4)),
        tg.message_update(tg.video_message(group, bob, tg.file_ref(), caption="clip")),
        tg.message_update(tg.video_note_message(private, alice, tg.file_ref())),
        tg.message_update(tg.sticker_message(private, alice, tg.file_ref(), emoji="🐳")),
        tg.message_update(tg.location_message(group, bob, 52.52, 13.405)),
        tg.message_update(tg.contact_message(private, alice, "+491701234567", "Bob", user_id=BOB)),
        tg.message_update(tg.poll_message(group, bob, "Lunch?", ["Yes", "No"])),
        tg.message_reaction_update(
            tg.message_reaction(group, in_group["message_id"], alice, old=["👍"], new=["🔥"])
        ),
        tg.business_connection_update(tg.business_connection("bc", owner)),
        tg.business_message_update(business),
        tg.edited_business_message_update(tg.edited(business, text="hello shop!")),
        tg.deleted_business_messages_update(
            tg.deleted_business_messages("bc", business_chat, [business["message_id"]])
        ),
    ]


async def test_builders_have_the_documented_shapes(sim: TelegramSimulator) -> None:
    for n, update in enumerate(every_kind_of_update(sim), start=1):
        parsed = Update.model_validate({"update_id": n, **update})
        assert_documented(parsed, f"update[{n}] {tg.update_kind(update)}")
        assert parsed.event_type == tg.update_kind(update)


async def test_builders_round_trip_through_get_updates(sim: TelegramSimulator, bot: Bot) -> None:
    kinds = list(tg.UPDATE_KINDS)
    await bot.get_updates(allowed_updates=kinds)
    built = every_kind_of_update(sim)
    for update in built:
        sim.push_update(update)
    got = await bot.get_updates()
    assert [u.event_type for u in got] == [tg.update_kind(u) for u in built]
    start = got[3].message
    assert start is not None and start.text == "/start invite-token_42"
    photo = got[5].message
    assert photo is not None and photo.photo is not None
    assert (await bot.download(photo.photo[-1].file_id)).read() == png()  # type: ignore[union-attr]
    # the pushed messages are in the history: the bot can reply to and react on them
    group_message = got[1].message
    assert group_message is not None
    await bot.set_message_reaction(
        GROUP, group_message.message_id, [ReactionTypeEmoji(emoji="👌")]
    )
    answer = await group_message.reply("seen")
    assert answer.reply_to_message is not None


async def test_aiogram_dispatcher_polling(sim: TelegramSimulator, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message) -> None:
        await message.answer(f"echo: {message.text}")

    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=5)
    )
    try:
        await sim.wait_for_consumer()
        alice = tg.user(ALICE, "Alice")
        sim.push_update(tg.message_update(tg.text_message(tg.private_chat(alice), alice, "ping")))
        record = await sim.wait_for_sent(lambda r: r.chat_id == ALICE)
        assert record.text == "echo: ping"
    finally:
        await dp.stop_polling()
        await polling
