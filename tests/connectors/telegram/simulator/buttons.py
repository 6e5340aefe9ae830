"""Inline keyboards pressed by the Telegram side: ``press_button`` makes a user press a callback
button of a message the bot sent (a ``callback_query`` update), ``answerCallbackQuery`` answers
it. A query is answered once; answering an unknown, answered or old one fails as on Telegram."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass

from ..updates import Json
from .delivery import UpdateDelivery
from .params import _Params
from .records import bad_request

QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"
ANSWER_WINDOW = 15 * 60.0
"""Seconds after a press that its query can still be answered (the simulator's choice)."""
_query_ids = itertools.count(4_200_000_000_000_000_000)


@dataclass
class CallbackAnswer:
    query_id: str
    params: Json


class ButtonMethods(UpdateDelivery):
    """Callback queries: pressed by tests, answered by the bot."""

    def press_button(
        self,
        chat_id: int,
        message_id: int,
        data: str,
        *,
        user_id: int | None = None,
        business_connection_id: str = "",
    ) -> Json:
        """``user_id`` (default: the private chat's user) presses the button with ``data``
        under the bot's message: a ``callback_query`` update, delivered like every update.
        Raises ValueError when the message has no such button (nothing to press)."""
        stored = self._find(business_connection_id, chat_id, message_id)
        if stored is None or not stored.outgoing:
            raise ValueError(f"the bot sent no message {message_id} in chat {chat_id}")
        rows = (stored.message.get("reply_markup") or {}).get("inline_keyboard") or []
        if not any(key.get("callback_data") == data for row in rows for key in row):
            raise ValueError(f"message {message_id} has no button with callback_data {data!r}")
        presser = self._users[user_id if user_id is not None else chat_id].user
        query_id = str(next(_query_ids))
        self._queries[query_id] = self.clock.now()
        return self.push_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": copy.deepcopy(presser),
                    "message": copy.deepcopy(stored.message),
                    "chat_instance": f"-{abs(chat_id) * 7 + 3}",
                    "data": data,
                }
            }
        )

    def answered(self, query_id: str) -> bool:
        return any(answer.query_id == query_id for answer in self.callback_answers)

    async def wait_for_answer(self, query_id: str, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self.wait_for(lambda: self.answered(query_id), timeout)

    async def _answer_callback_query(self, p: _Params) -> bool:
        query_id = p.get_str("callback_query_id") or ""
        pressed = self._queries.pop(query_id, None)
        if pressed is None or self.clock.now() - pressed > ANSWER_WINDOW:
            raise bad_request(QUERY_INVALID)
        text = p.get_str("text") or ""
        if len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self.callback_answers.append(CallbackAnswer(query_id, p.snapshot()))
        return True
