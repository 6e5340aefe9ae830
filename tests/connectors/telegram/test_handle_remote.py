"""Telegram updates (as the Bot API documents their JSON) mapped to remote events: messages,
/start, media and special content."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.events import RemoteAttachment, RemoteChat, RemoteMessage, RemoteUser
from bridge.types import MessageID, RemoteChatID, RemoteUserID

from .remote_support import (
    ADA,
    ADA_CHAT,
    ADA_USER,
    BOT_ID,
    CHANNEL,
    DATE,
    GROUP,
    events,
    file,
    message,
    one,
)

# --------------------------------------------------------------------------- plain messages


def test_private_text_message() -> None:
    event = one(message=message(text="Hello there"))
    assert event == RemoteMessage(
        chat=ADA_CHAT,
        sender=ADA_USER,
        timestamp=float(DATE),
        message_id=MessageID("11"),
        text="Hello there",
    )


def test_formatted_text() -> None:
    event = one(
        message=message(
            text="Hello 😀 bold & <b>",
            entities=[{"type": "bold", "offset": 9, "length": 4}],
        )
    )
    assert isinstance(event, RemoteMessage)
    assert event.text == "Hello 😀 bold & <b>"
    assert event.html == "Hello 😀 <strong>bold</strong> &amp; &lt;b&gt;"


def test_group_message_and_names() -> None:
    bob = {"id": 43, "is_bot": False, "first_name": "Bob"}
    event = one(message=message(chat=GROUP, **{"from": bob}, text="hi"))
    assert event.chat == RemoteChat(
        id=RemoteChatID("-1001234567890"), name="Support group", is_group=True
    )
    assert event.sender == RemoteUser(id=RemoteUserID("43"), displayname="Bob")
    only_username = {"id": 44, "is_bot": False, "first_name": " ", "username": "carol"}
    assert one(message=message(**{"from": only_username}, text="x")).sender.displayname == (
        "@carol"
    )
    nameless = {"id": 45, "is_bot": False, "first_name": ""}
    assert one(message=message(**{"from": nameless}, text="x")).sender.displayname == "45"


def test_private_chat_name_falls_back_like_the_sender() -> None:
    chat = {"id": 46, "type": "private", "first_name": "", "username": "dave"}
    assert one(message=message(chat=chat, text="x")).chat.name == "@dave"


def test_message_on_behalf_of_a_chat() -> None:
    # An anonymous group admin: the group itself is the sender.
    event = one(
        message=message(
            chat=GROUP,
            sender_chat=GROUP,
            **{"from": {"id": 1087968824, "is_bot": True, "first_name": "Group"}},
            text="admin here",
        )
    )
    assert event.sender == RemoteUser(
        id=RemoteUserID("-1001234567890"), displayname="Support group"
    )
    event = one(message=message(chat=GROUP, sender_chat=CHANNEL, text="linked channel"))
    assert event.sender == RemoteUser(id=RemoteUserID("-1009876543210"), displayname="News")
    channel_chat = one(message=message(chat=CHANNEL, text="post", **{"from": None})).chat
    assert channel_chat.is_group


def test_own_messages_are_ignored() -> None:
    me = {"id": BOT_ID, "is_bot": True, "first_name": "Bridge"}
    assert events(message=message(**{"from": me}, text="echo")) == []
    assert events(edited_message=message(**{"from": me}, text="echo", edit_date=DATE + 1)) == []


def test_reply() -> None:
    original = message(message_id=5, text="question")
    event = one(message=message(text="answer", reply_to_message=original))
    assert isinstance(event, RemoteMessage)
    assert event.reply_to == "5"


def test_forum_topic_root_is_no_reply() -> None:
    root = message(
        message_id=3,
        chat=GROUP,
        forum_topic_created={"name": "Billing", "icon_color": 7322096},
    )
    event = one(
        message=message(
            chat=GROUP,
            text="in a topic",
            message_thread_id=3,
            is_topic_message=True,
            reply_to_message=root,
        )
    )
    assert isinstance(event, RemoteMessage)
    assert event.reply_to is None


# --------------------------------------------------------------------------- /start


@pytest.mark.parametrize(
    ("text", "metadata"),
    [
        ("/start", {}),
        (
            "/start abc-DEF_123",
            {"portal": {"start_payload": "abc-DEF_123"}, "routing": {"start": "abc-DEF_123"}},
        ),
        (
            "/start " + "a" * 64,
            {"portal": {"start_payload": "a" * 64}, "routing": {"start": "a" * 64}},
        ),
        ("/start " + "a" * 65, {}),
        ("/start two words", {}),
        ("/start bad!", {}),
        ("/start  double-space", {}),
        ("/startabc", {}),
        ("hello /start abc", {}),
    ],
)
def test_start_payload(text: str, metadata: dict[str, Any]) -> None:
    event = one(message=message(text=text))
    assert isinstance(event, RemoteMessage)
    assert event.text == text
    assert event.metadata == metadata


def test_start_payload_only_in_the_bots_private_chats() -> None:
    assert one(message=message(chat=GROUP, text="/start abc")).metadata == {}
    business = message(business_connection_id="conn-1", text="/start abc")
    assert one(business=True, business_message=business).metadata == {}


# --------------------------------------------------------------------------- media


def attachment_of(**fields: Any) -> tuple[RemoteMessage, RemoteAttachment]:
    event = one(message=message(**fields))
    assert isinstance(event, RemoteMessage)
    assert len(event.attachments) == 1
    return event, event.attachments[0]


def test_photo_takes_the_largest_size_and_the_caption() -> None:
    event, attachment = attachment_of(
        photo=[
            file("small", width=90, height=60, file_size=1000),
            file("large", width=1280, height=853, file_size=120000),
            file("medium", width=320, height=213, file_size=15000),
        ],
        caption="Look at *this*",
        caption_entities=[{"type": "italic", "offset": 8, "length": 6}],
    )
    assert event.text == "Look at *this*"
    assert event.html == "Look at <em>*this*</em>"
    assert attachment == RemoteAttachment(
        url="tg-file:large-id",
        filename="photo_largeU.jpg",
        mimetype="image/jpeg",
        size=120000,
        extra={"file_id": "large-id", "file_unique_id": "largeU", "kind": "photo"},
    )


def test_media_without_caption_has_no_text() -> None:
    event, _ = attachment_of(photo=[file("p", width=1, height=1)])
    assert event.text == ""
    assert event.html is None


def test_document() -> None:
    _, attachment = attachment_of(
        document=file("doc", file_name="invoice.pdf", mime_type="application/pdf", file_size=9)
    )
    assert attachment.filename == "invoice.pdf"
    assert attachment.mimetype == "application/pdf"
    assert attachment.size == 9
    assert attachment.extra["kind"] == "document"
    _, attachment = attachment_of(document=file("doc2"))
    assert attachment.filename == "document_doc2U.bin"
    assert attachment.mimetype == "application/octet-stream"
    assert attachment.size is None
    _, attachment = attachment_of(document=file("doc3", file_name="../../etc/passwd"))
    assert attachment.filename == ".._.._etc_passwd"


@pytest.mark.parametrize(
    ("field", "data", "filename", "mimetype"),
    [
        ("voice", file("v", duration=3), "voice_vU.ogg", "audio/ogg"),
        ("voice", file("v", duration=3, mime_type="audio/mpeg"), "voice_vU.mp3", "audio/mpeg"),
        ("audio", file("a", duration=200), "audio_aU.mp3", "audio/mpeg"),
        (
            "audio",
            file("a", duration=200, file_name="song.flac", mime_type="audio/flac"),
            "song.flac",
            "audio/flac",
        ),
        ("video", file("vid", width=640, height=480, duration=5), "video_vidU.mp4", "video/mp4"),
        ("video_note", file("vn", length=240, duration=5), "video_note_vnU.mp4", "video/mp4"),
        (
            "animation",
            file("gif", width=1, height=1, duration=1, file_name="cat.gif.mp4"),
            "cat.gif.mp4",
            "video/mp4",
        ),
    ],
)
def test_media_kinds(field: str, data: dict[str, Any], filename: str, mimetype: str) -> None:
    _, attachment = attachment_of(**{field: data})
    assert attachment.url == f"tg-file:{data['file_id']}"
    assert attachment.filename == filename
    assert attachment.mimetype == mimetype
    assert attachment.extra == {
        "file_id": data["file_id"],
        "file_unique_id": data["file_unique_id"],
        "kind": field,
    }


def test_animation_is_not_doubled_by_its_document() -> None:
    gif = file("gif", width=1, height=1, duration=1, mime_type="video/mp4")
    _, attachment = attachment_of(animation=gif, document=file("gif"))
    assert attachment.extra["kind"] == "animation"


def sticker(**fields: Any) -> dict[str, Any]:
    base = {"type": "regular", "width": 512, "height": 512, "is_animated": False}
    return file("st", **{**base, "is_video": False, "emoji": "😺", **fields})


def test_static_sticker_is_an_image() -> None:
    _, attachment = attachment_of(sticker=sticker(file_size=20000))
    assert attachment.filename == "sticker_stU.webp"
    assert attachment.mimetype == "image/webp"
    assert attachment.size == 20000
    assert attachment.extra == {
        "file_id": "st-id",
        "file_unique_id": "stU",
        "kind": "sticker",
        "emoji": "😺",
    }


def test_animated_and_video_stickers_are_files_with_a_note() -> None:
    _, attachment = attachment_of(sticker=sticker(is_animated=True))
    assert attachment.filename == "sticker_stU.tgs"
    assert attachment.mimetype == "application/x-tgsticker"
    assert "animated" in attachment.extra["note"]
    _, attachment = attachment_of(sticker=sticker(is_video=True))
    assert attachment.filename == "sticker_stU.webm"
    assert attachment.mimetype == "video/webm"
    assert "video" in attachment.extra["note"]


# --------------------------------------------------------------------------- special content


def test_location() -> None:
    event = one(message=message(location={"latitude": 52.520008, "longitude": 13.404954}))
    assert isinstance(event, RemoteMessage)
    assert event.text == "📍 Location: 52.520008, 13.404954"
    assert event.html is not None
    assert '<a href="geo:52.520008,13.404954">52.520008, 13.404954</a>' in event.html
    assert (
        "https://www.openstreetmap.org/?mlat=52.520008&amp;mlon=13.404954"
        "#map=16/52.520008/13.404954"
    ) in event.html
    assert not event.notice


def test_venue() -> None:
    location = {"latitude": 52.5163, "longitude": 13.3777}
    event = one(
        message=message(
            location=location,
            venue={"location": location, "title": "Brandenburger Tor", "address": "Pariser <Pl>"},
        )
    )
    assert isinstance(event, RemoteMessage)
    assert event.text == "📍 Location: 52.5163, 13.3777\nBrandenburger Tor\nPariser <Pl>"
    assert event.html is not None
    assert event.html.endswith("<br>Brandenburger Tor<br>Pariser &lt;Pl&gt;")


def test_contact() -> None:
    contact = {"phone_number": "+49 30 1234", "first_name": "Eve", "last_name": "Example"}
    event = one(message=message(contact={**contact, "vcard": "BEGIN:VCARD..."}))
    assert isinstance(event, RemoteMessage)
    assert event.text == "👤 Contact: Eve Example, +49 30 1234"
    assert event.html == '👤 Contact: Eve Example, <a href="tel:+49301234">+49 30 1234</a>'


def test_poll() -> None:
    options = [
        {"persistent_id": str(i), "text": text, "voter_count": 0}
        for i, text in enumerate(["Yes", "No <way>"])
    ]
    poll = {
        "id": "p1",
        "question": "Coffee?",
        "options": options,
        "total_voter_count": 0,
        "is_closed": False,
        "is_anonymous": True,
        "type": "regular",
        "allows_multiple_answers": False,
        "allows_revoting": True,
        "members_only": False,
    }
    event = one(message=message(poll=poll))
    assert isinstance(event, RemoteMessage)
    assert event.text == "📊 Poll: Coffee?\n• Yes\n• No <way>"
    assert event.html == "📊 Poll: Coffee?<ul><li>Yes</li><li>No &lt;way&gt;</li></ul>"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dice", {"emoji": "🎲", "value": 4}),
        (
            "game",
            {
                "title": "Tetris",
                "description": "Blocks",
                "photo": [{"file_id": "g", "file_unique_id": "gu", "width": 1, "height": 1}],
            },
        ),
    ],
)
def test_unsupported_content_is_a_notice(field: str, value: dict[str, Any]) -> None:
    event = one(message=message(**{field: value}))
    assert isinstance(event, RemoteMessage)
    assert event.text == f"(unsupported Telegram message: {field})"
    assert event.notice
    assert event.attachments == ()


@pytest.mark.parametrize(
    "fields",
    [
        {"new_chat_members": [ADA]},
        {"left_chat_member": ADA},
        {"new_chat_title": "New name"},
        {"group_chat_created": True},
        {"delete_chat_photo": True},
        {"pinned_message": message(message_id=1, text="pinned")},
        {"migrate_to_chat_id": -1001},
        {"forum_topic_created": {"name": "Billing", "icon_color": 7322096}},
        {"message_auto_delete_timer_changed": {"message_auto_delete_time": 86400}},
    ],
)
def test_service_messages_are_skipped(fields: dict[str, Any]) -> None:
    assert events(message=message(chat=GROUP, **fields)) == []
    assert events(edited_message=message(chat=GROUP, edit_date=DATE, **fields)) == []
