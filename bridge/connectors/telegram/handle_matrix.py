"""Matrix -> Telegram: staff messages, media, edits, deletions, reactions and typing."""

from __future__ import annotations

import dataclasses
import html
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from aiogram.types import (
    InputFile,
    Message,
    ReactionTypeCustomEmoji,
    ReactionTypeEmoji,
    ReactionTypePaid,
    ReplyParameters,
)

from ...connector import Capabilities, PermanentDeliveryError
from ...events import (
    MatrixEdit,
    MatrixMedia,
    MatrixMessage,
    MatrixReaction,
    MatrixReactionRemove,
    MatrixRedaction,
    MatrixTyping,
    MessageRef,
    SentMessage,
)
from ...media import FileTooLarge, MediaFile, open_staff_file
from ...types import MessageID
from ..parts import PartSender
from .buttons import keyboard
from .capabilities import CAPTION_LIMIT, MIB
from .client import TelegramClient
from .format import matrix_html_to_telegram, split_telegram_html

VARIATION_SELECTOR = "\ufe0f"


def parse_chat(chat: str) -> tuple[int, str | None]:
    """The Telegram chat id and, for Business chats (``b:<connection>:<chat>``), the
    business connection id to send through."""
    if chat.startswith("b:"):
        connection, _, chat_id = chat[2:].rpartition(":")
        return int(chat_id), connection
    return int(chat), None


def to_telegram_html(text: str, matrix_html: str | None) -> str:
    if matrix_html:
        return matrix_html_to_telegram(matrix_html)
    return html.escape(text, quote=False)


class TelegramSender:
    """Sends what staff do in Matrix to Telegram through the Bot API."""

    def __init__(self, client: TelegramClient, capabilities: Capabilities) -> None:
        assert capabilities.max_text_length is not None, "Telegram limits the text length"
        self.text_limit = capabilities.max_text_length
        self.capabilities = capabilities
        self.client = client
        self.bot = client.bot
        self.parts = PartSender()

    async def send_message(self, msg: MatrixMessage) -> SentMessage:
        if msg.media is not None:
            return await self.send_media(msg)
        chat_id, connection = parse_chat(msg.portal.chat)
        text = to_telegram_html(msg.text, msg.html)
        chunks = split_telegram_html(text, self.text_limit)
        chunks = [c for c in chunks if c.strip()]
        if not chunks:
            raise PermanentDeliveryError("the message is empty")

        markup = keyboard(msg.buttons)

        def part(index: int, chunk: str) -> Callable[[], Awaitable[Message]]:
            reply = _reply(msg.reply_to) if index == 0 else None
            # The buttons go under the whole text: on its last part.
            keys = markup if index == len(chunks) - 1 else None
            return lambda: self.client.send(
                chat_id,
                lambda: self.bot.send_message(
                    chat_id,
                    chunk,
                    parse_mode="HTML",
                    reply_parameters=reply,
                    business_connection_id=connection,
                    reply_markup=keys,
                ),
            )

        sent = await self.parts.send(
            f"{msg.event_id}:text", [part(i, c) for i, c in enumerate(chunks)]
        )
        # With buttons, the message a press names (the part that has them) stands for it.
        return _sent(sent[-1] if markup is not None else sent[0])

    async def send_reply(self, msg: MatrixMessage) -> SentMessage:
        return await self.send_message(msg)

    async def send_media(self, msg: MatrixMessage) -> SentMessage:
        media = msg.media
        if media is None:
            return await self.send_message(msg)
        chat_id, connection = parse_chat(msg.portal.chat)
        limits = self.capabilities.max_file_size
        limit = limits.get(msg.msgtype, limits["*"])
        if media.size is not None and media.size > limit:
            raise PermanentDeliveryError(
                f"{media.filename} is {media.size / MIB:.1f} MB; Telegram takes at most"
                f" {limit / MIB:.0f} MB"
            )
        try:
            file = await open_staff_file(media, limit)
        except FileTooLarge as e:
            raise PermanentDeliveryError(
                f"{media.filename} is over the {limit / MIB:.0f} MB Telegram takes"
            ) from e
        with file:
            return await self._send_file(msg, media, file, chat_id, connection)

    async def _send_file(
        self,
        msg: MatrixMessage,
        media: MatrixMedia,
        file: MediaFile,
        chat_id: int,
        connection: str | None,
    ) -> SentMessage:
        upload = _SpooledInputFile(file, media.filename)
        # Without a caption the file would arrive without the sender's name: the prefix is it.
        caption_text = msg.text or msg.prefix.strip()
        caption = to_telegram_html(caption_text, msg.html if msg.text else None) or None
        long_caption = bool(caption and len(split_telegram_html(caption, CAPTION_LIMIT)) > 1)
        if long_caption:
            caption = None  # it goes first as its own message; the file follows it
        common: dict[str, Any] = {
            "caption": caption,
            "parse_mode": "HTML" if caption else None,
            "reply_parameters": _reply(msg.reply_to),
            "business_connection_id": connection,
        }
        bot = self.bot
        if msg.msgtype == "m.image" and media.mimetype in (
            "image/jpeg",
            "image/png",
            "image/webp",
        ):
            call = lambda: bot.send_photo(chat_id, upload, **common)  # noqa: E731
        elif msg.msgtype == "m.image" and media.mimetype == "image/gif":
            call = lambda: bot.send_animation(chat_id, upload, **common)  # noqa: E731
        elif msg.msgtype == "m.video":
            call = lambda: bot.send_video(chat_id, upload, **common)  # noqa: E731
        elif msg.msgtype == "m.audio":
            call = lambda: bot.send_audio(chat_id, upload, **common)  # noqa: E731
        else:
            call = lambda: bot.send_document(chat_id, upload, **common)  # noqa: E731
        parts: list[Callable[[], Awaitable[Any]]] = [lambda: self.client.send(chat_id, call)]
        if long_caption:
            parts.insert(0, lambda: self.send_message(_without_media(msg)))
        return _sent((await self.parts.send(f"{msg.event_id}:media", parts))[-1])

    async def edit(self, edit: MatrixEdit) -> None:
        chat_id, connection = parse_chat(edit.portal.chat)
        text = to_telegram_html(edit.text, edit.html)
        message_id = int(edit.target.message_id)
        try:
            await self.client.send(
                chat_id,
                lambda: self.bot.edit_message_text(
                    text=text,
                    chat_id=chat_id,
                    message_id=message_id,
                    parse_mode="HTML",
                    business_connection_id=connection,
                ),
            )
        except PermanentDeliveryError as e:
            if "message is not modified" in e.reason:
                return
            if "no text in the message" not in e.reason:
                raise
            await self.client.send(
                chat_id,
                lambda: self.bot.edit_message_caption(
                    chat_id=chat_id,
                    message_id=message_id,
                    caption=text,
                    parse_mode="HTML",
                    business_connection_id=connection,
                ),
            )

    async def delete(self, redaction: MatrixRedaction) -> None:
        chat_id, connection = parse_chat(redaction.portal.chat)
        message_id = int(redaction.target.message_id)
        if connection:
            await self.client.call(
                lambda: self.bot.delete_business_messages(connection, [message_id])
            )
            return
        await self.client.call(lambda: self.bot.delete_message(chat_id, message_id))

    async def react(self, reaction: MatrixReaction) -> None:
        await self._set_reaction(reaction.portal.chat, reaction.target, reaction.emoji)

    async def unreact(self, removal: MatrixReactionRemove) -> None:
        await self._set_reaction(removal.portal.chat, removal.target, None)

    async def _set_reaction(self, chat: str, target: MessageRef, emoji: str | None) -> None:
        chat_id, connection = parse_chat(chat)
        if connection:
            # setMessageReaction has no business connection: it would hit the bot's own chat.
            raise PermanentDeliveryError("Telegram does not let bots react in Business chats")
        reaction: list[ReactionTypeEmoji | ReactionTypeCustomEmoji | ReactionTypePaid] = []
        if emoji:
            reaction.append(ReactionTypeEmoji(emoji=emoji.replace(VARIATION_SELECTOR, "")))
        try:
            await self.client.call(
                lambda: self.bot.set_message_reaction(chat_id, int(target.message_id), reaction)
            )
        except PermanentDeliveryError as e:
            if "REACTION_INVALID" in e.reason:
                raise PermanentDeliveryError(
                    f"Telegram does not offer {emoji} as a reaction"
                ) from e
            raise

    async def typing(self, typing: MatrixTyping) -> None:
        if not typing.typing:
            return
        chat_id, connection = parse_chat(typing.portal.chat)
        try:
            # Through call(): errors come out as delivery errors, cleaned of the token.
            await self.client.call(
                lambda: self.bot.send_chat_action(
                    chat_id, "typing", business_connection_id=connection
                )
            )
        except PermanentDeliveryError:
            pass


def _reply(ref: MessageRef | None) -> ReplyParameters | None:
    if ref is None:
        return None
    return ReplyParameters(message_id=int(ref.message_id), allow_sending_without_reply=True)


def _sent(message: Message) -> SentMessage:
    return SentMessage(
        message_id=MessageID(str(message.message_id)), timestamp=message.date.timestamp()
    )


def _without_media(msg: MatrixMessage) -> MatrixMessage:
    return dataclasses.replace(msg, media=None)


class _SpooledInputFile(InputFile):
    """A staff member's file for aiogram, read from its spool in chunks (again on a retry)."""

    def __init__(self, file: MediaFile, filename: str) -> None:
        super().__init__(filename=filename)
        self.file = file

    async def read(self, bot: Any) -> AsyncGenerator[bytes, None]:
        async for chunk in self.file.chunks():
            yield chunk
