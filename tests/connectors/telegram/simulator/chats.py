"""Bot API methods on chats, users, business connections and the bot's commands."""

from __future__ import annotations

import copy

from .. import updates as tg
from ..updates import Json
from .compose import Composer
from .params import _Params
from .records import bad_request


class ChatMethods(Composer):
    """Bot API methods on chats, users, business connections and the bot's commands."""

    async def _get_chat(self, p: _Params) -> Json:
        state = self._chat(p)
        info: Json = {
            **state.chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }
        if state.photo is not None:
            small, big = state.photo
            info["photo"] = {
                "small_file_id": small.file_id,
                "small_file_unique_id": small.file_unique_id,
                "big_file_id": big.file_id,
                "big_file_unique_id": big.file_unique_id,
            }
        return info

    async def _get_user_profile_photos(self, p: _Params) -> Json:
        user_id = p.get_int("user_id")
        if user_id is None or user_id not in self._users:
            raise bad_request("user not found")
        photos = self._users[user_id].photos
        offset = p.get_int("offset", 0) or 0
        limit = min(max(p.get_int("limit", 100) or 100, 1), 100)
        chosen = photos[offset : offset + limit]
        return {
            "total_count": len(photos),
            "photos": [[tg.photo_size(f.ref(), f.width or 640, f.height or 640)] for f in chosen],
        }

    async def _get_business_connection(self, p: _Params) -> Json:
        conn = self._business.get(p.get_str("business_connection_id") or "")
        if conn is None:
            raise bad_request("business connection not found")
        return copy.deepcopy(conn)

    async def _set_my_commands(self, p: _Params) -> bool:
        commands = p.get_json("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        self.commands = commands
        return True

    async def _get_my_commands(self, p: _Params) -> list[Json]:
        return copy.deepcopy(self.commands)

    async def _delete_my_commands(self, p: _Params) -> bool:
        self.commands = []
        return True
