"""Bot API methods on messages: send, edit, delete, react, chat actions, forward and copy."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from .. import updates as tg
from ..updates import Json
from .compose import Composer
from .params import _Params
from .records import (
    ActionRecord,
    ApiError,
    DeletionRecord,
    EditRecord,
    ReactionRecord,
    SentMessage,
    StoredMessage,
    bad_request,
)

# The reactions a bot may set (ReactionTypeEmoji in the Bot API documentation), without U+FE0F.
ALLOWED_REACTIONS = frozenset(
    "👍 👎 ❤ 🔥 🥰 👏 😁 🤔 🤯 😱 🤬 😢 🎉 🤩 🤮 💩 🙏 👌 🕊 🤡 🥱 🥴 😍 🐳 "
    "❤‍🔥 🌚 🌭 💯 🤣 ⚡ 🍌 🏆 💔 🤨 😐 🍓 🍾 💋 🖕 😈 😴 😭 🤓 👻 👨‍💻 👀 🎃 🙈 "
    "😇 😨 🤝 ✍ 🤗 🫡 🎅 🎄 ☃ 💅 🤪 🗿 🆒 💘 🙉 🦄 😘 💊 🙊 😎 👾 🤷‍♂ 🤷 🤷‍♀ "
    "😡".split()
)
CHAT_ACTIONS = frozenset(
    "typing upload_photo record_video upload_video record_voice upload_voice upload_document "
    "choose_sticker find_location record_video_note upload_video_note".split()
)
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)


class MessageMethods(Composer):
    """Bot API methods on messages: send, edit, delete, react, chat actions, forward and copy."""

    async def _send_message(self, p: _Params) -> Json:
        chat, bc = self._target(p)
        raw = p.get_str("text") or ""
        if not raw:
            raise bad_request("message text is empty")
        parse_mode = p.get_str("parse_mode")
        text, entities = self._format(raw, parse_mode, p.get_json("entities"), caption=False)
        msg, reply = self._post_message(
            "sendMessage", p, chat, bc, text=text, entities=entities or None
        )
        self.sent.append(
            SentMessage(
                "sendMessage",
                int(chat["id"]),
                msg["message_id"],
                raw,
                parse_mode,
                text,
                entities,
                p.snapshot(),
                copy.deepcopy(msg),
                reply["message_id"] if reply else None,
                bc or None,
            )
        )
        return msg

    def _editable(self, p: _Params) -> tuple[Json, str, StoredMessage]:
        if p.get("inline_message_id") is not None:
            raise bad_request("simulator: inline messages are not supported")
        chat, bc = self._target(p)
        message_id = p.get_int("message_id")
        if not message_id:
            raise bad_request("message identifier is not specified")
        stored = self._find(bc, int(chat["id"]), message_id)
        if stored is None:
            raise bad_request("message to edit not found")
        if not stored.outgoing:
            raise bad_request("message can't be edited")
        return chat, bc, stored

    def _apply_edit(
        self, method: str, p: _Params, chat: Json, bc: str, stored: StoredMessage, **changes: Any
    ) -> Json:
        markup = self._markup(p)
        old = stored.message
        same = (
            all(old.get(k) == v for k, v in changes.items()) and old.get("reply_markup") == markup
        )
        if same:
            raise bad_request(NOT_MODIFIED)
        if self.rate_limits.count_edits:
            self._throttle(method, chat, bc)
        stored.message = tg.edited(
            old, edit_date=int(self.clock.now()), reply_markup=markup, **changes
        )
        if markup is None:
            stored.message.pop("reply_markup", None)
        return copy.deepcopy(stored.message)

    async def _edit_message_text(self, p: _Params) -> Json:
        chat, bc, stored = self._editable(p)
        raw = p.get_str("text") or ""
        if not raw:
            raise bad_request("message text is empty")
        parse_mode = p.get_str("parse_mode")
        text, entities = self._format(raw, parse_mode, p.get_json("entities"), caption=False)
        if "text" not in stored.message:
            raise bad_request("there is no text in the message to edit")
        msg = self._apply_edit(
            "editMessageText", p, chat, bc, stored, text=text, entities=entities or None
        )
        self.edits.append(
            EditRecord(
                "editMessageText",
                int(chat["id"]),
                msg["message_id"],
                raw,
                parse_mode,
                text,
                entities,
                p.snapshot(),
                msg,
                bc or None,
            )
        )
        return msg

    async def _edit_message_caption(self, p: _Params) -> Json:
        chat, bc, stored = self._editable(p)
        raw = p.get_str("caption") or ""
        parse_mode = p.get_str("parse_mode")
        caption, entities = self._format(
            raw, parse_mode, p.get_json("caption_entities"), caption=True
        )
        if "text" in stored.message:
            raise bad_request("there is no caption in the message to edit")
        msg = self._apply_edit(
            "editMessageCaption",
            p,
            chat,
            bc,
            stored,
            caption=caption or None,
            caption_entities=entities or None,
        )
        self.edits.append(
            EditRecord(
                "editMessageCaption",
                int(chat["id"]),
                msg["message_id"],
                raw or None,
                parse_mode,
                caption,
                entities,
                p.snapshot(),
                msg,
                bc or None,
            )
        )
        return msg

    async def _delete_message(self, p: _Params) -> bool:
        state = self._chat(p)
        message_id = p.get_int("message_id")
        if not message_id:
            raise bad_request("message identifier is not specified")
        stored = self._find("", state.id, message_id)
        if stored is None:
            raise bad_request("message to delete not found")
        if self.clock.now() - stored.date > self.limits.delete_window:
            raise bad_request("message can't be deleted for everyone")
        if state.type in ("group", "supergroup", "channel") and not stored.outgoing:
            if not state.bot_is_admin:
                raise bad_request("message can't be deleted")
        stored.deleted = True
        self.deletions.append(DeletionRecord(state.id, message_id, p.snapshot()))
        return True

    async def _delete_messages(self, p: _Params) -> bool:
        """deleteMessages: messages that are missing or can't be deleted are skipped."""
        state = self._chat(p)
        ids = p.get_json("message_ids")
        if not isinstance(ids, list) or not ids:
            raise bad_request("message_ids are empty")
        if len(ids) > 100:
            raise bad_request("too many messages to delete")
        for message_id in ids:
            single = _Params({"chat_id": state.id, "message_id": message_id}, {})
            with contextlib.suppress(ApiError):
                await self._delete_message(single)
        return True

    async def _set_message_reaction(self, p: _Params) -> bool:
        state = self._chat(p)
        message_id = p.get_int("message_id")
        if not message_id:
            raise bad_request("message identifier is not specified")
        stored = self._find("", state.id, message_id)
        if stored is None:
            raise bad_request("message to react not found")
        reaction = p.get_json("reaction") or []
        if not isinstance(reaction, list):
            raise bad_request("can't parse reaction types JSON object")
        for item in reaction:
            if not isinstance(item, dict):
                raise bad_request("can't parse ReactionType: expected an Object")
            if item.get("type") == "emoji":
                if item.get("emoji") not in ALLOWED_REACTIONS:
                    raise bad_request("REACTION_INVALID")
            elif item.get("type") != "custom_emoji":
                raise bad_request("REACTION_INVALID")
        if len(reaction) > 1:
            raise bad_request("REACTIONS_TOO_MANY")
        stored.reaction = [dict(r) for r in reaction]
        self.reactions.append(ReactionRecord(state.id, message_id, stored.reaction, p.snapshot()))
        return True

    async def _send_chat_action(self, p: _Params) -> bool:
        chat, bc = self._target(p)
        action = p.get_str("action") or ""
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self._check_blocked(chat, bc)
        self.actions.append(ActionRecord(int(chat["id"]), action, p.snapshot(), bc or None))
        return True

    def _copyable(self, p: _Params, what: str) -> StoredMessage:
        source = self._chat(p, "from_chat_id")
        stored = self._find("", source.id, p.get_int("message_id"))
        if stored is None:
            raise bad_request(f"message to {what} not found")
        return stored

    @staticmethod
    def _content_of(msg: Json) -> Json:
        meta = {
            "message_id",
            "from",
            "date",
            "chat",
            "reply_to_message",
            "edit_date",
            "reply_markup",
            "business_connection_id",
            "sender_business_bot",
            "forward_origin",
        }
        return {k: copy.deepcopy(v) for k, v in msg.items() if k not in meta}

    async def _forward_message(self, p: _Params) -> Json:
        source = self._copyable(p, "forward")
        chat = self._chat(p).chat
        src = source.message
        origin: Json
        if src["chat"]["type"] == "channel":
            origin = {
                "type": "channel",
                "chat": src["chat"],
                "message_id": src["message_id"],
                "date": src["date"],
            }
        elif src.get("from"):
            origin = {"type": "user", "date": src["date"], "sender_user": src["from"]}
        else:
            origin = {"type": "hidden_user", "date": src["date"], "sender_user_name": "Hidden"}
        content = {**self._content_of(src), "forward_origin": origin}
        msg, _ = self._post_message("forwardMessage", p, chat, "", **content)
        self._record_plain("forwardMessage", p, chat, msg)
        return msg

    async def _copy_message(self, p: _Params) -> Json:
        source = self._copyable(p, "copy")
        chat = self._chat(p).chat
        content = self._content_of(source.message)
        if p.get("caption") is not None and "text" not in content:
            caption, entities = self._format(
                p.get_str("caption") or "",
                p.get_str("parse_mode"),
                p.get_json("caption_entities"),
                caption=True,
            )
            content.pop("caption_entities", None)
            content.update(caption=caption, **({"caption_entities": entities} if entities else {}))
        msg, _ = self._post_message("copyMessage", p, chat, "", **content)
        self._record_plain("copyMessage", p, chat, msg)
        return {"message_id": msg["message_id"]}

    def _record_plain(self, method: str, p: _Params, chat: Json, msg: Json) -> None:
        text = msg.get("text", msg.get("caption"))
        entities: list[Json] = msg.get("entities", msg.get("caption_entities")) or []
        self.sent.append(
            SentMessage(
                method,
                int(chat["id"]),
                msg["message_id"],
                text,
                None,
                text,
                entities,
                p.snapshot(),
                copy.deepcopy(msg),
            )
        )
