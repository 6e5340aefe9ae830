"""Resolving what a send or edit addresses and how its text is formatted, then posting it."""

from __future__ import annotations

from typing import Any

from .. import updates as tg
from ..updates import Json
from .limits import FloodControl
from .params import _Params
from .records import ApiError, _ChatState, bad_request

MAX_INLINE_BUTTONS = 100
CALLBACK_DATA = 64
"""Bytes of ``callback_data`` (InlineKeyboardButton: "1-64 bytes")."""
BUTTON_ACTIONS = frozenset(
    "url callback_data web_app login_url switch_inline_query switch_inline_query_current_chat "
    "switch_inline_query_chosen_chat copy_text callback_game pay".split()
)


class Composer(FloodControl):
    """What every send and edit shares: the addressed chat, the formatted text, the reply and the
    new message in the chat's history."""

    def _chat(self, p: _Params, name: str = "chat_id") -> _ChatState:
        raw = p.get_str(name)
        if raw is None:
            raise bad_request(f"{name} is empty")
        if raw.startswith("@"):
            for known in self._chats.values():
                if known.type != "private" and known.chat.get("username") == raw[1:]:
                    return known
            raise bad_request("chat not found")
        try:
            chat_id = int(raw)
        except ValueError:
            raise bad_request("chat not found") from None
        state = self._chats.get(chat_id)
        if state is None:
            if chat_id in self._users:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
            raise bad_request("chat not found")
        return state

    def _target(self, p: _Params) -> tuple[Json, str]:
        """The chat a send/edit addresses and its business connection id ("" for none)."""
        bc = p.get_str("business_connection_id")
        if bc is None:
            return self._chat(p).chat, ""
        conn = self._business.get(bc)
        if conn is None or not conn.get("is_enabled"):
            raise bad_request("business connection not found")
        chat_id = p.get_int("chat_id")
        if chat_id is None:
            raise bad_request("chat_id is empty")
        chat = self._business_chats.get((bc, chat_id))
        if chat is None and chat_id in self._users:
            chat = tg.private_chat(self._users[chat_id].user)
        if chat is None:
            raise bad_request("chat not found")
        return chat, bc

    def _check_blocked(self, chat: Json, bc: str) -> None:
        state = self._chats.get(int(chat["id"]))
        if not bc and state is not None and state.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    def _format(
        self, text: str, parse_mode: str | None, entities: Any, *, caption: bool
    ) -> tuple[str, list[Json]]:
        if len(text.encode("utf-8", "surrogatepass")) > self.limits.raw_text_bytes:
            raise bad_request("text is too long")
        mode = (parse_mode or "").lower()
        if text and mode and mode != "none":
            if mode == "html":
                try:
                    text, ents = tg.parse_html(text)
                except tg.EntityParseError as exc:
                    raise bad_request(f"can't parse entities: {exc}") from None
            elif mode in ("markdown", "markdownv2"):
                raise bad_request(
                    f"simulator: parse_mode {parse_mode} is not implemented, use HTML"
                )
            else:
                raise bad_request("unsupported parse_mode")
        else:
            ents = self._entities(entities)
        text, ents = tg.trim_text(text, ents)
        if caption:
            if tg.utf16_len(text) > self.limits.caption_length:
                raise bad_request("message caption is too long")
        else:
            if not text:
                raise bad_request("text must be non-empty")
            if tg.utf16_len(text) > self.limits.text_length:
                raise bad_request("message is too long")
        return text, ents

    @staticmethod
    def _entities(raw: Any) -> list[Json]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise bad_request("can't parse entities JSON object")
        out = []
        for item in raw:
            if not isinstance(item, dict) or not {"type", "offset", "length"} <= item.keys():
                raise bad_request(
                    'can\'t parse MessageEntity: field "type" must be of type String'
                )
            out.append(dict(item))
        return out

    def _reply(self, p: _Params, chat_id: int, bc: str) -> Json | None:
        params = p.get_json("reply_parameters")
        if params is not None and not isinstance(params, dict):
            raise bad_request("object expected as reply parameters")
        if params:
            message_id = params.get("message_id")
            allow = bool(params.get("allow_sending_without_reply"))
        else:
            message_id = p.get_int("reply_to_message_id")
            allow = p.get_bool("allow_sending_without_reply")
        if not message_id:
            return None
        stored = self._find(bc, chat_id, int(message_id))
        if stored is None:
            if allow:
                return None
            raise bad_request("message to be replied not found")
        return stored.message

    def _markup(self, p: _Params) -> Json | None:
        """An inline keyboard, checked as the Bot API checks it; other markups are not kept."""
        markup = p.get_json("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            return None
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list):
            raise bad_request(
                'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array'
            )
        if not all(isinstance(row, list) for row in rows):
            raise bad_request(
                'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
            )
        keys = [key for row in rows for key in row]
        if len(keys) > MAX_INLINE_BUTTONS:
            raise bad_request("REPLY_MARKUP_TOO_LONG")
        for key in keys:
            if not isinstance(key, dict) or not isinstance(key.get("text"), str):
                raise bad_request(
                    'can\'t parse inline keyboard button: Field "text" must be of type String'
                )
            if not key.keys() & BUTTON_ACTIONS:
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the "
                    "inline keyboard"
                )
            data = key.get("callback_data")
            if data is not None:
                if not isinstance(data, str) or not 0 < len(data.encode()) <= CALLBACK_DATA:
                    raise bad_request("BUTTON_DATA_INVALID")
        return {"inline_keyboard": rows}

    def _post_message(
        self, method: str, p: _Params, chat: Json, bc: str, **content: Any
    ) -> tuple[Json, Json | None]:
        """Flood control, then the new message in the chat's history."""
        reply = self._reply(p, int(chat["id"]), bc)
        self._check_blocked(chat, bc)
        self._throttle(method, chat, bc)
        sender = self.bot_user
        extra: Json = {}
        if bc:
            sender = self._business[bc]["user"]
            extra = {"business_connection_id": bc, "sender_business_bot": self.bot_user}
        msg = tg.message(
            chat,
            sender,
            date=int(self.clock.now()),
            reply_to=reply,
            reply_markup=self._markup(p),
            **extra,
            **content,
        )
        self._store(msg, outgoing=True, business_connection_id=bc)
        return msg, reply
