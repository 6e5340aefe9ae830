"""The HTTP edge: the Bot API routes, their request decoding and the method table."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json

from aiohttp import web

from ..updates import Json
from .buttons import ButtonMethods
from .chats import ChatMethods
from .config import MiB
from .media import MEDIA_METHODS, MediaMethods
from .messages import MessageMethods
from .params import _Params, _read_multipart
from .records import ApiCall, ApiError, bad_request
from .state import Method


class TelegramSimulator(ButtonMethods, MessageMethods, MediaMethods, ChatMethods):
    """``async with TelegramSimulator(token="123:ABC") as sim:`` then point the bot at
    ``sim.base_url`` (aiogram: ``TelegramAPIServer.from_base(sim.base_url)``)."""

    def _method_table(self) -> dict[str, Method]:
        methods: dict[str, Method] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagecaption": self._edit_message_caption,
            "deletemessage": self._delete_message,
            "deletemessages": self._delete_messages,
            "setmessagereaction": self._set_message_reaction,
            "sendchataction": self._send_chat_action,
            "forwardmessage": self._forward_message,
            "copymessage": self._copy_message,
            "getfile": self._get_file,
            "getchat": self._get_chat,
            "getuserprofilephotos": self._get_user_profile_photos,
            "getbusinessconnection": self._get_business_connection,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "answercallbackquery": self._answer_callback_query,
        }
        for method in MEDIA_METHODS:
            methods[method.lower()] = functools.partial(self._send_media, method)
        return methods

    # -- lifecycle --------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=self.limits.upload_max * 2 + MiB)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        return app

    async def start(self) -> None:
        await super().start()
        self._worker = asyncio.create_task(self._webhook_worker())

    async def stop(self) -> None:
        self._closing = True
        self._notify()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await super().stop()

    # -- HTTP -------------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        status: int = 200
        body: Json = {}
        params = _Params({}, {})
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            params = await self._read_request(request)
            status, body = await self._call(method, params)
        except ApiError as exc:
            status, body = exc.code, exc.body()
        self.requests.append(ApiCall(method, params.snapshot(), status, body.get("description")))
        self._notify()
        return web.json_response(
            body, status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False)
        )

    async def _read_request(self, request: web.Request) -> _Params:
        values: Json = dict(request.query)
        if request.method == "POST" and request.body_exists:
            ctype = request.content_type
            if ctype == "multipart/form-data":
                form = await _read_multipart(await request.multipart())
                form.values = {**values, **form.values}
                return form
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    raise bad_request("can't parse JSON encoded request") from None
                if not isinstance(body, dict):
                    raise bad_request("JSON object expected")
                values.update(body)
            elif ctype == "application/x-www-form-urlencoded":
                values.update(await request.post())
        return _Params(values, {})

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        stored = self._file_paths.get(request.match_info["path"])
        if stored is None:
            return web.json_response(ApiError(404, "Not Found").body(), status=404)
        if self.file_serving == "error":
            return web.json_response(ApiError(500, "Internal Server Error").body(), status=500)
        ctype = stored.mime_type or "application/octet-stream"
        if self.file_serving == "whole":
            return web.Response(body=stored.data, content_type=ctype)
        response = web.StreamResponse(headers={"Content-Type": ctype})
        if self.file_serving == "oversized":
            response.content_length = 1 << 40
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while True:  # until the client hangs up
                await response.write(b"\0" * 65536)
        return response
