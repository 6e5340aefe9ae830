"""The Telegram Bot API simulator, proven with real aiogram calls (and raw HTTP where aiogram
cannot show the wire format), plus the update builders validated against aiogram's models."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BufferedInputFile,
    LinkPreviewOptions,
    Message,
    ReactionTypeEmoji,
    ReplyParameters,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from . import sim_support
from . import updates as tg
from .sim_support import ALICE, BOB, GROUP, assert_documented, png, raw
from .simulator import Limits, MiB, RateLimits, TelegramSimulator

# The fixtures shared by these tests (see sim_support).
sim = sim_support.sim
bot = sim_support.bot
receiver = sim_support.receiver


# -- basics --------------------------------------------------------------------------------------


async def test_get_me(sim: TelegramSimulator, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (424242, True, "bridge_bot")
    assert me.can_connect_to_business is True
    assert_documented(me)


async def test_wrong_token_is_unauthorized(sim: TelegramSimulator) -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(sim.base_url))
    try:
        with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
            await Bot("424242:wrong-token", session=session).get_me()
    finally:
        await session.close()
    status, body = await raw(sim, "getMe", token="1:nope")
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})


async def test_encodings_method_case_and_unknown_methods(sim: TelegramSimulator) -> None:
    status, body = await raw(sim, "SENDMESSAGE", json={"chat_id": ALICE, "text": "json"})
    assert status == 200 and body["ok"] and body["result"]["text"] == "json"
    status, body = await raw(sim, "sendMessage", data={"chat_id": str(ALICE), "text": "form"})
    assert status == 200 and body["result"]["text"] == "form"
    status, body = await raw(sim, "getMe", verb="GET", params={"unused": "1"})
    assert status == 200 and body["result"]["username"] == "bridge_bot"
    status, body = await raw(sim, "sendmessage", params={"chat_id": str(BOB), "text": "query"})
    assert status == 200 and body["result"]["chat"]["id"] == BOB
    status, body = await raw(sim, "noSuchMethod")
    assert (status, body) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
    assert [s.text for s in sim.sent] == ["json", "form", "query"]


# -- sending, editing, deleting, reacting --------------------------------------------------------


async def test_send_message_html_with_reply(sim: TelegramSimulator, bot: Bot) -> None:
    question = sim.add_user_message(ALICE, ALICE, "what's up?")
    sent = await bot.send_message(
        ALICE,
        "<b>Hi</b> 😀 <a href='https://example.org/x'>link</a> &amp; <i>done</i>",
        parse_mode="HTML",
        reply_parameters=ReplyParameters(message_id=question["message_id"]),
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )
    assert_documented(sent)
    assert sent.text == "Hi 😀 link & done"
    assert sent.from_user is not None and sent.from_user.id == 424242
    assert sent.reply_to_message is not None
    assert sent.reply_to_message.message_id == question["message_id"]
    assert sent.entities is not None
    got = [(e.type, e.offset, e.length, e.url) for e in sent.entities]
    # offsets in UTF-16 code units: the emoji counts twice
    assert got == [
        ("bold", 0, 2, None),
        ("text_link", 6, 4, "https://example.org/x"),
        ("italic", 13, 4, None),
    ]
    record = sim.sent[-1]
    assert record.text is not None and record.text.startswith("<b>Hi</b>")
    assert record.rendered == sent.text
    assert (record.chat_id, record.parse_mode, record.reply_to) == (
        ALICE,
        "HTML",
        question["message_id"],
    )
    assert record.params["link_preview_options"] == {"is_disabled": True}


async def test_replies_to_missing_messages(sim: TelegramSimulator, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(ALICE, "x", reply_parameters=ReplyParameters(message_id=999999))
    ok = await bot.send_message(
        ALICE,
        "x",
        reply_parameters=ReplyParameters(message_id=999999, allow_sending_without_reply=True),
    )
    assert ok.reply_to_message is None
    earlier = sim.add_bot_message(ALICE, "earlier")
    status, body = await raw(
        sim,
        "sendMessage",
        json={"chat_id": ALICE, "text": "legacy", "reply_to_message_id": earlier["message_id"]},
    )
    assert status == 200
    assert body["result"]["reply_to_message"]["message_id"] == earlier["message_id"]


async def test_send_errors(sim: TelegramSimulator, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="Bad Request: chat not found"):
        await bot.send_message(999, "hello")
    sim.add_user(777, "Stranger", started=False)
    with pytest.raises(TelegramForbiddenError, match="bot can't initiate conversation"):
        await bot.send_message(777, "hello")
    sim.set_blocked(BOB)
    with pytest.raises(TelegramForbiddenError, match="Forbidden: bot was blocked by the user"):
        await bot.send_message(BOB, "hello")
    status, body = await raw(sim, "sendMessage", json={"chat_id": ALICE, "text": ""})
    assert (status, body["description"]) == (400, "Bad Request: message text is empty")
    with pytest.raises(TelegramBadRequest, match="text must be non-empty"):
        await bot.send_message(ALICE, "<b> </b>\n", parse_mode="HTML")
    by_username = await bot.send_message("@team_chat", "to the group")
    assert by_username.chat.id == GROUP
    assert sim.sent[-1].text == "to the group"


async def test_message_length_in_utf16_after_parsing(sim: TelegramSimulator, bot: Bot) -> None:
    await bot.send_message(ALICE, "a" * 4096)
    await bot.send_message(BOB, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    await bot.send_message(GROUP, "&lt;" * 4096, parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="Bad Request: message is too long"):
        await bot.send_message(ALICE, "a" * 4097)
    with pytest.raises(TelegramBadRequest, match="Bad Request: message is too long"):
        await bot.send_message(ALICE, "😀" * 2049)  # 2049 characters, 4098 UTF-16 units
    photo = BufferedInputFile(png(), "p.png")
    with pytest.raises(TelegramBadRequest, match="Bad Request: message caption is too long"):
        await bot.send_photo(BOB, photo, caption="c" * 1025)


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("x <foo>y</foo>", 'Unsupported start tag "foo" at byte offset 2'),
        ("<b>a</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("a</b>", "Unexpected end tag at byte offset 1"),
        ("<b", "Unclosed start tag at byte offset 0"),
        ('<span class="x">s</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ],
)
async def test_malformed_html(sim: TelegramSimulator, bot: Bot, html: str, error: str) -> None:
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.send_message(ALICE, html, parse_mode="HTML")
    assert caught.value.message == f"Bad Request: can't parse entities: {error}"
    assert sim.sent == []


def test_parse_html_covers_the_documented_tags() -> None:
    text, entities = tg.parse_html(
        "<strong>b</strong><em>i</em><ins>u</ins><del>s</del><strike>s</strike>"
        '<tg-spoiler>x</tg-spoiler><span class="tg-spoiler">y</span>'
        '<a href="tg://user?id=42">m</a><code>c</code>'
        '<pre><code class="language-python">p</code></pre><pre>q</pre>'
        "<blockquote>z</blockquote><blockquote expandable>e</blockquote>"
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji> &quot;&#65;&#x42;&nbsp;'
    )
    assert text == 'biussxymcpqze👍 "AB&nbsp;'
    kinds = [(e["type"], e["offset"], e["length"]) for e in entities]
    assert kinds == [
        ("bold", 0, 1),
        ("italic", 1, 1),
        ("underline", 2, 1),
        ("strikethrough", 3, 1),
        ("strikethrough", 4, 1),
        ("spoiler", 5, 1),
        ("spoiler", 6, 1),
        ("text_mention", 7, 1),
        ("code", 8, 1),
        ("pre", 9, 1),
        ("pre", 10, 1),
        ("blockquote", 11, 1),
        ("expandable_blockquote", 12, 1),
        ("custom_emoji", 13, 2),
    ]
    assert entities[7]["user"]["id"] == 42
    assert entities[9]["language"] == "python" and "language" not in entities[10]


HTML_PIECES = st.sampled_from(
    list("<>/&;#x=\"' abisu:.9😀\n")
    + ["<b>", "</b>", "&lt;", "&#128512;", "&#xD83D;", "<a href=", "<pre>", "</pre>", "<code>"]
    + ['<code class="language-', '<span class="tg-spoiler">', "</span>", "</code>"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(HTML_PIECES, max_size=25).map("".join))
def test_parse_html_fails_only_with_tdlib_errors(markup: str) -> None:
    try:
        text, entities = tg.parse_html(markup)
    except tg.EntityParseError:
        return
    size = tg.utf16_len(text)
    for item in entities:
        assert item["length"] > 0 and 0 <= item["offset"] <= size - item["length"]


async def test_edit_message_text(sim: TelegramSimulator, bot: Bot) -> None:
    sent = await bot.send_message(ALICE, "first")
    edited = await bot.edit_message_text(
        chat_id=ALICE, message_id=sent.message_id, text="<i>second</i>", parse_mode="HTML"
    )
    assert isinstance(edited, Message)
    assert_documented(edited)
    assert edited.text == "second" and edited.edit_date is not None
    assert edited.entities is not None and edited.entities[0].type == "italic"
    record = sim.edits[-1]
    assert (record.chat_id, record.message_id, record.text) == (
        ALICE,
        sent.message_id,
        "<i>second</i>",
    )
    assert sim.message(ALICE, sent.message_id)["text"] == "second"  # type: ignore[index]
    with pytest.raises(TelegramBadRequest, match="message is not modified: specified new"):
        await bot.edit_message_text(
            chat_id=ALICE, message_id=sent.message_id, text="<i>second</i>", parse_mode="HTML"
        )
    with pytest.raises(TelegramBadRequest, match="Bad Request: message to edit not found"):
        await bot.edit_message_text(chat_id=ALICE, message_id=123456789, text="x")
    theirs = sim.add_user_message(ALICE, ALICE, "mine")
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text(chat_id=ALICE, message_id=theirs["message_id"], text="x")


async def test_delete_message_and_the_48_hour_rule(sim: TelegramSimulator, bot: Bot) -> None:
    sim.rate_limits = RateLimits(enabled=False)
    sent = await bot.send_message(ALICE, "short-lived")
    assert await bot.delete_message(ALICE, sent.message_id) is True
    assert (sim.deletions[-1].chat_id, sim.deletions[-1].message_id) == (ALICE, sent.message_id)
    assert sim.message(ALICE, sent.message_id) is None
    with pytest.raises(TelegramBadRequest, match="Bad Request: message to delete not found"):
        await bot.delete_message(ALICE, sent.message_id)

    batch = [(await bot.send_message(ALICE, f"b{n}")).message_id for n in range(2)]
    assert await bot.delete_messages(ALICE, [*batch, 987654321])  # missing ones are skipped
    assert [d.message_id for d in sim.deletions[-2:]] == batch

    old = sim.add_bot_message(ALICE, "old", age=48 * 3600 + 60)
    with pytest.raises(TelegramBadRequest, match="message can't be deleted for everyone"):
        await bot.delete_message(ALICE, old["message_id"])

    recent = await bot.send_message(ALICE, "will age")
    sim.clock.advance(47 * 3600)
    assert await bot.delete_message(ALICE, recent.message_id)
    aged = await bot.send_message(BOB, "will age past the window")
    sim.age_message(BOB, aged.message_id, 49 * 3600)
    with pytest.raises(TelegramBadRequest, match="message can't be deleted for everyone"):
        await bot.delete_message(BOB, aged.message_id)


async def test_set_message_reaction(sim: TelegramSimulator, bot: Bot) -> None:
    theirs = sim.add_user_message(ALICE, ALICE, "react to me")
    mid = theirs["message_id"]
    assert await bot.set_message_reaction(ALICE, mid, [ReactionTypeEmoji(emoji="👍")])
    assert await bot.set_message_reaction(ALICE, mid, [ReactionTypeEmoji(emoji="❤‍🔥")])
    assert [r.emojis for r in sim.reactions] == [["👍"], ["❤‍🔥"]]
    assert sim.message_reaction(ALICE, mid) == [{"type": "emoji", "emoji": "❤‍🔥"}]
    for emoji in ("🦖", "❤️"):  # not in the list; the list's heart has no U+FE0F
        with pytest.raises(TelegramBadRequest, match="Bad Request: REACTION_INVALID"):
            await bot.set_message_reaction(ALICE, mid, [ReactionTypeEmoji(emoji=emoji)])
    with pytest.raises(TelegramBadRequest, match="REACTIONS_TOO_MANY"):
        await bot.set_message_reaction(
            ALICE, mid, [ReactionTypeEmoji(emoji="👍"), ReactionTypeEmoji(emoji="🔥")]
        )
    assert await bot.set_message_reaction(ALICE, mid, [])
    assert sim.message_reaction(ALICE, mid) == []
    with pytest.raises(TelegramBadRequest, match="message to react not found"):
        await bot.set_message_reaction(ALICE, 424242424, [ReactionTypeEmoji(emoji="👍")])


async def test_chat_action_and_get_chat(sim: TelegramSimulator, bot: Bot) -> None:
    assert await bot.send_chat_action(ALICE, "typing")
    assert (sim.actions[-1].chat_id, sim.actions[-1].action) == (ALICE, "typing")
    with pytest.raises(TelegramBadRequest, match="wrong parameter action"):
        await bot.send_chat_action(ALICE, "dancing")
    sim.add_user(6001, "Carol", username="carol", photo=png(64, 64))
    chat = await bot.get_chat(6001)
    assert_documented(chat)
    assert (chat.type, chat.first_name, chat.username) == ("private", "Carol", "carol")
    assert chat.photo is not None
    data = await bot.download(chat.photo.big_file_id)
    assert data is not None and data.read() == png(64, 64)
    group = await bot.get_chat(GROUP)
    assert (group.type, group.title) == ("supergroup", "Team")
    photos = await bot.get_user_profile_photos(6001)
    assert photos.total_count == 1 and photos.photos[0][0].width == 64


# -- files ---------------------------------------------------------------------------------------


async def test_uploads_are_recorded_with_bytes(sim: TelegramSimulator, bot: Bot) -> None:
    image = png(40, 30)
    photo = await bot.send_photo(
        ALICE, BufferedInputFile(image, "pic.png"), caption="<b>look</b>", parse_mode="HTML"
    )
    assert_documented(photo)
    assert photo.photo is not None and (photo.photo[-1].width, photo.photo[-1].height) == (40, 30)
    assert photo.caption == "look" and photo.caption_entities is not None
    record = sim.sent[-1]
    assert (record.method, record.data, record.filename) == ("sendPhoto", image, "pic.png")

    pdf = b"%PDF-1.4 simulated"
    doc = await bot.send_document(ALICE, BufferedInputFile(pdf, "report.pdf"), caption="q3")
    assert doc.document is not None
    assert (doc.document.file_name, doc.document.mime_type) == ("report.pdf", "application/pdf")
    assert sim.sent[-1].data == pdf and sim.sent[-1].mime_type == "application/pdf"
    # the uploaded file can be downloaded back, and re-sent by file_id without an upload
    assert (await bot.download(doc.document.file_id)).read() == pdf  # type: ignore[union-attr]
    again = await bot.send_document(BOB, doc.document.file_id)
    assert again.document is not None and again.document.file_id == doc.document.file_id
    assert sim.sent[-1].file is None

    voice = await bot.send_voice(BOB, BufferedInputFile(b"OggS-voice", "v.ogg"), duration=3)
    assert voice.voice is not None and voice.voice.duration == 3
    sticker = await bot.send_sticker(BOB, BufferedInputFile(b"RIFF....WEBP", "s.webp"))
    assert sticker.sticker is not None and sticker.sticker.is_animated is False
    for message in (voice, sticker):
        assert_documented(message)


async def test_upload_limits(sim: TelegramSimulator, bot: Bot) -> None:
    big_photo = BufferedInputFile(b"\xff\xd8" + b"\0" * (10 * MiB), "big.jpg")
    with pytest.raises(TelegramBadRequest, match="too big for a photo"):
        await bot.send_photo(ALICE, big_photo)
    sim.limits = Limits(upload_max=MiB)
    with pytest.raises(TelegramEntityTooLarge, match="Request Entity Too Large"):
        await bot.send_document(ALICE, BufferedInputFile(b"\0" * (MiB + 1), "big.bin"))
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_document(ALICE, "no-such-file-id")


async def test_get_file_download_and_20_mb_limit(sim: TelegramSimulator, bot: Bot) -> None:
    stored = sim.add_file(b"hello file", file_name="hello.txt", mime_type="text/plain")
    file = await bot.get_file(stored.file_id)
    assert_documented(file)
    assert (file.file_size, file.file_unique_id) == (10, stored.file_unique_id)
    assert file.file_path is not None
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None and downloaded.read() == b"hello file"

    huge = sim.add_file(b"x", file_size=20 * MiB + 1)
    with pytest.raises(TelegramBadRequest, match="Bad Request: file is too big"):
        await bot.get_file(huge.file_id)
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("unknown")


# -- flood control -------------------------------------------------------------------------------


async def test_per_chat_rate_limit(sim: TelegramSimulator, bot: Bot) -> None:
    sim.clock.freeze()
    for n in range(3):  # the burst
        await bot.send_message(ALICE, f"m{n}")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(ALICE, "one too many")
    assert caught.value.retry_after == 1
    assert caught.value.message.endswith("Original description: Too Many Requests: retry after 1")
    assert (sim.throttled[-1].chat_id, sim.throttled[-1].scope) == (ALICE, "chat")
    await bot.send_message(BOB, "other chats are not affected")
    sim.clock.advance(1)
    await bot.send_message(ALICE, "allowed again")
    status, body = await raw(sim, "sendMessage", json={"chat_id": ALICE, "text": "raw"})
    assert status == 429
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }


async def test_group_and_global_rate_limits(sim: TelegramSimulator, bot: Bot) -> None:
    sim.clock.freeze()
    for n in range(20):
        await bot.send_message(GROUP, f"g{n}")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(GROUP, "21st in a minute")
    assert 59 <= caught.value.retry_after <= 60
    assert sim.throttled[-1].scope == "group"

    sim.rate_limits = RateLimits(global_per_second=4)
    sim.clock.advance(60)
    for user_id in range(9000, 9004):
        sim.add_user(user_id, "U")
        await bot.send_message(user_id, "hi")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(ALICE, "fifth in a second")
    assert sim.throttled[-1].scope == "global"

    sim.rate_limits = RateLimits(enabled=False)
    for n in range(10):
        await bot.send_message(ALICE, f"unlimited {n}")


async def test_rate_limit_storm(sim: TelegramSimulator, bot: Bot) -> None:
    sim.rate_limits = RateLimits(enabled=False)
    sim.rate_limit_storm(2, retry_after=7)
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter) as caught:
            await bot.send_message(ALICE, "storm")
        assert caught.value.retry_after == 7
    await bot.send_message(ALICE, "calm")
    assert [(t.scope, t.retry_after) for t in sim.throttled] == [("storm", 7), ("storm", 7)]
    assert [s.text for s in sim.sent] == ["calm"]


# -- Telegram Business ---------------------------------------------------------------------------


async def test_business_messages(sim: TelegramSimulator, bot: Bot) -> None:
    owner = tg.user(7001, "Shop", username="shop")
    customer = tg.user(7002, "Customer")
    chat = tg.private_chat(customer)
    sim.push_update(tg.business_connection_update(tg.business_connection("bc-1", owner)))
    incoming = tg.business_message_update(
        tg.text_message(chat, customer, "do you ship?", business_connection_id="bc-1")
    )
    sim.push_update(incoming)
    got = await bot.get_updates()
    assert got[0].business_connection is not None and got[1].business_message is not None
    reply = await bot.send_message(
        7002,
        "yes",
        business_connection_id="bc-1",
        reply_parameters=ReplyParameters(message_id=incoming["business_message"]["message_id"]),
    )
    assert_documented(reply)
    assert reply.business_connection_id == "bc-1"
    assert reply.from_user is not None and reply.from_user.id == 7001
    assert reply.sender_business_bot is not None and reply.sender_business_bot.id == 424242
    assert sim.sent[-1].business_connection_id == "bc-1"
    edited = await bot.edit_message_text(
        chat_id=7002, message_id=reply.message_id, text="yes!", business_connection_id="bc-1"
    )
    assert isinstance(edited, Message) and edited.text == "yes!"
    with pytest.raises(TelegramBadRequest, match="business connection not found"):
        await bot.send_message(7002, "x", business_connection_id="nope")
    with pytest.raises(TelegramForbiddenError):  # the bot itself never talked to the customer
        await bot.send_message(7002, "direct")
    assert (await bot.get_business_connection("bc-1")).user.id == 7001
