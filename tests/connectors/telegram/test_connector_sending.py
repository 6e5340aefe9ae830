"""Text sent from Matrix as the Bot API sees it: split texts, HTML, replies, errors, reactions,
typing, and the rate limits that hold sends back."""

from __future__ import annotations

import asyncio
import time
import traceback

import pytest
from aiogram.client.telegram import TelegramAPIServer

from bridge.connector import PermanentDeliveryError, TemporaryDeliveryError
from bridge.connectors.telegram import TelegramConnector
from bridge.events import (
    MatrixEdit,
    MatrixReaction,
    MatrixReactionRemove,
    MatrixTyping,
    MessageRef,
)
from bridge.types import MessageID
from tests.contract.harness import FakeHost
from tests.infra.ports import free_port

from . import connector_support
from .connector_support import (
    ALICE,
    BOB,
    _event_ids,
    calls,
    matrix_message,
    media,
    portal,
    text_update,
)
from .harness import TOKEN, TelegramHarness
from .simulator import TelegramSimulator

# The fixtures shared by these tests (see connector_support).
harness = connector_support.harness
sim = connector_support.sim
connector = connector_support.connector
hook = connector_support.hook


# --------------------------------------------------------------------------- sending text


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


async def test_long_text_is_split_into_accepted_messages(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    words = "Grüße 😀 aus Köln 👩‍👩‍👧‍👦 " * 400
    emoji_only = "😀" * 3000  # 6000 UTF-16 units, one code point each: no word to cut at
    assert utf16(words) > 4096 and utf16(emoji_only) > 4096
    sent_words, sent_emoji = await asyncio.gather(
        connector.send_message(matrix_message(harness, words)),
        connector.send_message(matrix_message(harness, emoji_only, chat_id=BOB)),
    )
    assert sim.throttled == []
    for chat_id, original, sent in ((ALICE, words, sent_words), (BOB, emoji_only, sent_emoji)):
        parts = [s for s in sim.sent if s.chat_id == chat_id]
        assert len(parts) >= 2
        assert all(s.method == "sendMessage" and s.parse_mode == "HTML" for s in parts)
        assert all(0 < utf16(s.rendered or "") <= 4096 for s in parts)
        assert "".join((s.rendered or "").replace(" ", "") for s in parts) == original.replace(
            " ", ""
        )
        assert sent.message_id == str(parts[0].message_id)


async def test_long_text_retried_after_a_failure_midway_is_not_doubled(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    """The second chunk hits flood control: the core retries the whole message, and only the
    chunks not yet sent go out again."""
    text = " ".join(f"word{n}" for n in range(2500))
    msg = matrix_message(harness, text)
    sim.rate_limit_storm(1, retry_after=1, after=1)
    with pytest.raises(TemporaryDeliveryError):
        await connector.send_message(msg)
    assert len(sim.sent) == 1
    sent = await connector.send_message(msg)
    parts = [s.rendered or "" for s in sim.sent]
    assert len(parts) >= 3
    assert " ".join(parts).split() == text.split()  # each word once, in order
    assert sent.message_id == str(sim.sent[0].message_id)


HOSTILE_HTML = [
    "<b>bold <i>both</b> italic</i> end",
    "<script>alert(1)</script>visible",
    '<a href="javascript:alert(1)">click</a> me',
    "<a href='https://example.com/?a=1&b=<2>&c=\"3\"'>link</a>",
    "<img src=x onerror=alert(1)>after the image",
    "<p>unclosed <b>bold <code>code",
    "</b></i></a>stray closers",
    "&amp;lt; &bogus; &#xD800; &#0; &#x110000; 5 < 6 > 4 & done",
    '<pre><code class="language-&quot;><b>">x = 1</code></pre>',
    "<table><tr><td>cell</td><td>other</td></tr></table>",
    '<span data-mx-spoiler="why">secret</span> and <span data-mx-color="#f00">red</span>',
    "<blockquote><blockquote><blockquote>deep quote</blockquote></blockquote></blockquote>",
    '<font color="red">red</font><u><s><del><strike>x</strike></del></s></u>',
    '<a href="tg://user?id=1">someone</a> <a href="https://matrix.to/#/@a:b">a</a>',
    "<mx-reply><blockquote>quoted</blockquote></mx-reply>the reply",
    '<ol start="-5"><li>one<li>two</ol><ul><li><ul><li>nested</ul></ul>',
    "<b>" * 300 + "very deep" + "</b>" * 300,
    "<b><i><u><s><code>all at once</code></s></u></i></b>",
    "<tg-spoiler>telegram's own</tg-spoiler> <tg-emoji emoji-id='5'>👍</tg-emoji>",
    "<code><b>bold inside code</b></code> <pre><pre>pre in pre</pre></pre>",
    "x<br/><br><hr><h1>Title</h1><details><summary>s</summary>d</details>",
    "<a href='https://example.com/'><a href='https://evil.example/'>nested links</a></a>",
    "\u202eright-to-left\u202c \u0000nul \ud7ff \ufeff zero-width\u200b",
    "<b>" + "long bold text " * 400 + "</b>",
]


async def test_hostile_matrix_html_is_sent_as_html_and_accepted(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    chats = list(range(6001, 6001 + len(HOSTILE_HTML)))
    for chat_id in chats:
        sim.add_user(chat_id, f"Customer {chat_id}")
    await asyncio.gather(
        *(
            connector.send_message(
                matrix_message(harness, "fallback text", html=markup, chat_id=chat_id)
            )
            for chat_id, markup in zip(chats, HOSTILE_HTML, strict=True)
        )
    )
    refused = [c for c in sim.requests if c.status != 200 and c.method != "getUpdates"]
    assert refused == []
    for chat_id, markup in zip(chats, HOSTILE_HTML, strict=True):
        parts = [s for s in sim.sent if s.chat_id == chat_id]
        assert parts, markup
        assert all(s.parse_mode == "HTML" and s.rendered for s in parts), markup
    assert "alert" not in " ".join(s.rendered or "" for s in sim.sent)
    links = [e["url"] for s in sim.sent for e in s.entities if e["type"] == "text_link"]
    assert links and all(url.startswith(("https:", "http:", "tg:")) for url in links), links


async def test_reply_uses_reply_parameters(
    harness: TelegramHarness, sim: TelegramSimulator, host: FakeHost, connector: TelegramConnector
) -> None:
    delivered = await harness.deliver(text_update("where is my order?"))
    question = delivered["message"]["message_id"]
    ref = MessageRef(MessageID(str(question)))
    sent = await connector.send_reply(matrix_message(harness, "on its way", reply_to=ref))
    (record,) = sim.sent
    assert record.params["reply_parameters"]["message_id"] == question
    assert record.reply_to == question
    assert record.message["reply_to_message"]["message_id"] == question
    assert sent.message_id == str(record.message_id)
    assert "reply_to_message_id" not in record.params


async def test_reply_to_a_vanished_message_is_still_sent(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    ref = MessageRef(MessageID("999999"))
    await connector.send_reply(matrix_message(harness, "still here", reply_to=ref))
    (record,) = sim.sent
    assert record.reply_to is None
    assert record.rendered == "still here"


# --------------------------------------------------------------------------- errors


async def test_flood_limit_is_temporary_with_retry_after(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    sim.rate_limit_storm(1, retry_after=7)
    with pytest.raises(TemporaryDeliveryError) as caught:
        await connector.send_message(matrix_message(harness, "too fast"))
    assert caught.value.retry_after == 7
    assert sim.sent == []


async def test_blocked_user_is_permanent_and_says_so(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    sim.set_blocked(ALICE)
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_message(matrix_message(harness, "hello?"))
    assert not isinstance(caught.value, TemporaryDeliveryError)
    assert "the customer has blocked the bot" in caught.value.reason
    assert sim.sent == []


async def test_user_who_never_started_the_bot_is_permanent(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    sim.add_user(7777, "Stranger", started=False)
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_message(matrix_message(harness, "hi", chat_id=7777))
    assert "can't initiate conversation" in caught.value.reason


async def test_editing_to_the_same_text_is_not_an_error(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    sent = await connector.send_message(matrix_message(harness, "Same <text> & more"))

    def edit(text: str) -> MatrixEdit:
        return MatrixEdit(
            portal=portal(harness),
            event_id=f"$edit{next(_event_ids)}:example.com",
            sender="@alice:example.com",
            target=MessageRef(sent.message_id),
            text=text,
        )

    await connector.handle_matrix_edit(edit("Same <text> & more"))
    assert sim.edits == []
    (call,) = calls(sim, "editMessageText")
    assert "message is not modified" in (call.description or "")
    await connector.handle_matrix_edit(edit("Changed <text>"))
    (record,) = sim.edits
    assert record.rendered == "Changed <text>"


async def test_edit_of_a_caption(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    sent = await connector.send_media(
        matrix_message(harness, "old caption", msgtype="m.file", media=media(b"data", "a.txt"))
    )
    await connector.handle_matrix_edit(
        MatrixEdit(
            portal=portal(harness),
            event_id="$edit:example.com",
            sender="@alice:example.com",
            target=MessageRef(sent.message_id),
            text="new caption",
        )
    )
    (record,) = sim.edits
    assert record.method == "editMessageCaption" and record.rendered == "new caption"


# --------------------------------------------------------------------------- reactions, typing


async def customer_message(harness: TelegramHarness, text: str = "thanks!") -> MessageRef:
    delivered = await harness.deliver(text_update(text))
    return MessageRef(MessageID(str(delivered["message"]["message_id"])))


def reaction(harness: TelegramHarness, target: MessageRef, emoji: str) -> MatrixReaction:
    return MatrixReaction(
        portal=portal(harness),
        event_id=f"$react{next(_event_ids)}:example.com",
        sender="@alice:example.com",
        target=target,
        emoji=emoji,
    )


async def test_reaction_telegram_does_not_offer_is_permanent(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    target = await customer_message(harness)
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.handle_matrix_reaction(reaction(harness, target, "🦜"))
    assert "🦜" in caught.value.reason
    assert sim.reactions == []


async def test_heart_with_variation_selector_is_sent_without_it(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    target = await customer_message(harness)
    await connector.handle_matrix_reaction(reaction(harness, target, "❤️"))
    (record,) = sim.reactions
    assert record.emojis == ["❤"]
    assert record.message_id == int(target.message_id)
    await connector.handle_matrix_reaction_remove(
        MatrixReactionRemove(
            portal=portal(harness),
            event_id="$unreact:example.com",
            sender="@alice:example.com",
            target=target,
            emoji="❤️",
        )
    )
    assert sim.reactions[-1].emojis == []
    assert sim.message_reaction(ALICE, int(target.message_id)) == []


async def test_typing_sends_the_typing_action(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    await connector.handle_matrix_typing(
        MatrixTyping(portal=portal(harness), sender="@alice:example.com", typing=False)
    )
    assert sim.actions == []
    await connector.handle_matrix_typing(
        MatrixTyping(portal=portal(harness), sender="@alice:example.com", typing=True)
    )
    (action,) = sim.actions
    assert action.action == "typing" and action.chat_id == ALICE


async def test_bot_api_unreachable_gives_delivery_errors_without_the_token(
    harness: TelegramHarness, connector: TelegramConnector
) -> None:
    """Typing too: the core expects a DeliveryError from it, not aiogram's network error."""
    connector.client.session.api = TelegramAPIServer.from_base(f"http://127.0.0.1:{free_port()}")
    typing = MatrixTyping(portal=portal(harness), sender="@alice:example.com", typing=True)
    for call in (
        lambda: connector.handle_matrix_typing(typing),
        lambda: connector.send_message(matrix_message(harness, "hello")),
    ):
        with pytest.raises(TemporaryDeliveryError) as caught:
            await call()
        assert "Telegram unreachable" in caught.value.reason
        shown = "".join(traceback.format_exception(caught.value))
        assert TOKEN.split(":", 1)[1] not in shown


# --------------------------------------------------------------------------- rate limits


async def test_burst_to_one_chat_never_hits_flood_control(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    """The simulator enforces Telegram's limits (a private chat: 1/s after a burst of 3); the
    connector's limiter spaces five concurrent sends so that none is refused."""
    assert sim.rate_limits.enabled
    started = time.monotonic()
    results = await asyncio.gather(
        *(connector.send_message(matrix_message(harness, f"message {n}")) for n in range(5))
    )
    elapsed = time.monotonic() - started
    print(f"\n5 messages to one private chat took {elapsed:.2f} s, no 429")
    assert sim.throttled == []
    assert [s.rendered for s in sim.sent] == [f"message {n}" for n in range(5)]
    assert [r.message_id for r in results] == [str(s.message_id) for s in sim.sent]
    assert elapsed < 10


async def test_flood_wait_holds_back_the_next_send_to_that_chat(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    sim.rate_limit_storm(1, retry_after=2)
    with pytest.raises(TemporaryDeliveryError):
        await connector.send_message(matrix_message(harness, "refused"))
    started = time.monotonic()
    await connector.send_message(matrix_message(harness, "later"))
    assert time.monotonic() - started >= 1.9
    assert [s.rendered for s in sim.sent] == ["later"]
    assert len(sim.throttled) == 1


async def test_other_chats_are_not_held_back(
    harness: TelegramHarness, sim: TelegramSimulator, connector: TelegramConnector
) -> None:
    await connector.send_message(matrix_message(harness, "to Alice"))
    started = time.monotonic()
    await connector.send_message(matrix_message(harness, "to Bob", chat_id=BOB))
    assert time.monotonic() - started < 0.5
