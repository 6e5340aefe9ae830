"""Reply buttons on Telegram: an inline keyboard of callback buttons under a message the
bridge sends, and the ``callback_query`` a press brings back as a ``RemoteButtonPress``.

A button's id is its ``callback_data`` (1 to 64 bytes, the Bot API's limit; the capabilities
declare it, the core refuses longer ones). A callback query does not carry the button's text:
it is read from the keyboard of the pressed message when Telegram sends that message along.
Every query is answered (``answerCallbackQuery``, by the connector) once the press is
recorded, so the customer's app stops showing its progress spinner.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from ...connector import PermanentDeliveryError
from ...events import Button, RemoteButtonPress
from ...types import MessageID
from .handle_remote import _UNSTORABLE, UnreadableUpdate, _storable, remote_chat, remote_user

CALLBACK_DATA_LIMIT = 64
"""Bytes of ``callback_data`` the Bot API takes."""
ONE_ROW = 3
"""Up to this many buttons stand side by side (confirm / decline); more go one per row."""


def keyboard(buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
    """The inline keyboard for ``buttons`` (None for none); PermanentDeliveryError for a
    button Telegram would refuse."""
    if not buttons:
        return None
    for button in buttons:
        size = len(button.id.encode())
        if not 0 < size <= CALLBACK_DATA_LIMIT:
            raise PermanentDeliveryError(
                f"the button id {button.id!r} is {size} bytes; Telegram takes 1 to "
                f"{CALLBACK_DATA_LIMIT}"
            )
        if not button.title.strip():
            raise PermanentDeliveryError("a Telegram button needs a title")
    keys = [InlineKeyboardButton(text=b.title, callback_data=b.id) for b in buttons]
    rows = [keys] if len(keys) <= ONE_ROW else [[key] for key in keys]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def answerable(query_id: str) -> bool:
    """Whether ``query_id`` can be a callback query's id (long ones are carried, as every id
    is): a press with another is refused, and a query with another is not answered."""
    return bool(query_id) and not _UNSTORABLE.search(query_id)


def press_events(query: CallbackQuery, *, bot_id: int, business: bool) -> list[RemoteButtonPress]:
    """The press a callback query carries; [] for one the bridge has no conversation for (a
    button of an inline-mode message, a game, a Business chat with Business off)."""
    message = query.message
    if message is None or query.data is None or query.from_user.id == bot_id:
        return []
    connection = message.business_connection_id if isinstance(message, Message) else None
    if connection is not None and not business:
        return []
    if not query.id:
        raise UnreadableUpdate("callback_query.id is empty")
    title = ""
    if isinstance(message, Message) and message.reply_markup is not None:
        for row in message.reply_markup.inline_keyboard:
            for key in row:
                if key.callback_data == query.data:
                    title = _storable(key.text)
    return [
        RemoteButtonPress(
            chat=remote_chat(message.chat, connection),
            sender=remote_user(query.from_user),
            message_id=MessageID(str(message.message_id)),
            button_id=_storable(query.data),  # as every id: what no database holds, replaced
            title=title,
            press_id=_storable(query.id),
        )
    ]
