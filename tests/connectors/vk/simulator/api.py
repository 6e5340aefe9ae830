"""The VK API methods the connector calls, over the simulator's state: ``messages.send``
(``random_id`` dedup, permission, length), ``messages.edit``/``delete`` (the 24-hour rule),
``users.get``, ``groups.getLongPollServer`` and the photo and document upload flow."""

from __future__ import annotations

import json
import secrets
from typing import Any

from aiohttp import web

from .records import SentMessage, StoredFile
from .state import ApiError, State

DAY = 24 * 3600.0


def _int(params: dict[str, str], name: str, required: bool = True) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(100, f"{name} is undefined")
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(100, f"{name} not integer") from None


class Methods(State):
    async def _method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = {k: str(v) for k, v in (await request.post()).items()}
        params.update({k: v for k, v in request.query.items() if k not in params})
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        try:
            self.check_call(method, params)
            if handler is None:
                raise self.reject(method, 3)
            result = handler(params)
        except ApiError as e:
            return web.json_response(e.answer(method, params))
        self._notify()
        return web.json_response({"response": result})

    # -- messages ------------------------------------------------------------------------------

    def m_messages_send(self, params: dict[str, str]) -> Any:
        many = "peer_ids" in params
        peer = _int(params, "peer_ids" if many else "peer_id")
        assert peer is not None
        random_id = _int(params, "random_id")
        assert random_id is not None
        text = params.get("message", "")
        attachments = [a for a in params.get("attachment", "").split(",") if a]
        if not text and not attachments:
            raise self.reject("messages.send", 100, peer)
        if len(text) > self.text_limit:
            raise self.reject("messages.send", 914, peer)
        buttons = self._keyboard(params.get("keyboard"))
        code = self.may_write(peer)
        if code is not None:
            self.reject("messages.send", code, peer)
            if not many:
                raise ApiError(code)
            error = {"code": code, "description": ApiError(code).message}
            return [{"peer_id": peer, "error": error}]
        earlier = self.earlier_send(peer, random_id)
        if earlier is not None:
            earlier.repeats += 1
            message = earlier
        else:
            message = SentMessage(
                peer, self.next_cmid(peer), text, random_id, self.clock.now(), attachments
            )
            message.files = [self.files[a] for a in attachments if a in self.files]
            message.reply_to = self._reply_to(params, peer)
            message.buttons = buttons
            self.sent.append(message)
            self.actions.append(("send", message, text))
        if not many:
            return message.cmid
        return [{"peer_id": peer, "message_id": 0, "conversation_message_id": message.cmid}]

    def _keyboard(self, raw: str | None) -> list[tuple[str, str]]:
        """The callback buttons of an inline keyboard; error 911 for one VK refuses."""
        if not raw:
            return []
        try:
            keyboard = json.loads(raw)
            rows = keyboard["buttons"]
            buttons = [(b["action"]["label"], b["action"]["payload"]) for row in rows for b in row]
            ok = keyboard.get("inline") is True and 0 < len(rows) <= 6 and len(buttons) <= 10
            ok = ok and all(
                isinstance(label, str) and 0 < len(label) <= 40 and len(payload) <= 255
                for label, payload in buttons
            )
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise self.reject("messages.send", 911)
        return buttons

    def m_messages_sendMessageEventAnswer(self, params: dict[str, str]) -> Any:  # noqa: N802
        for name in ("event_id", "user_id", "peer_id"):
            if not params.get(name):
                raise self.reject("messages.sendMessageEventAnswer", 100)
        self.event_answers.append(params)
        return 1

    @staticmethod
    def _reply_to(params: dict[str, str], peer: int) -> int | None:
        raw = params.get("forward")
        if not raw:
            return None
        try:
            forward = json.loads(raw)
            cmids = forward["conversation_message_ids"]
            ok = forward.get("is_reply") and int(forward.get("peer_id", peer)) == peer
        except (ValueError, KeyError, TypeError):
            raise ApiError(100, "forward is invalid") from None
        if not ok or not isinstance(cmids, list) or len(cmids) != 1:
            raise ApiError(100, "forward is invalid")
        return int(cmids[0])

    def _own(self, method: str, params: dict[str, str], cmid_name: str) -> SentMessage:
        peer = _int(params, "peer_id")
        cmid = _int(params, cmid_name)
        assert peer is not None and cmid is not None
        message = self.find_sent(peer, cmid)
        if message is None or message.deleted:
            raise self.reject(method, 100, peer)
        return message

    def m_messages_edit(self, params: dict[str, str]) -> Any:
        message = self._own("messages.edit", params, "conversation_message_id")
        text = params.get("message", "")
        if len(text) > self.text_limit:
            raise self.reject("messages.edit", 914, message.peer_id)
        if self.clock.now() - message.at > DAY:
            raise self.reject("messages.edit", 909, message.peer_id)
        message.edits.append(text)
        self.actions.append(("edit", message, text))
        return 1

    def m_messages_delete(self, params: dict[str, str]) -> Any:
        params = {**params, "cmid": params.get("cmids", "")}
        message = self._own("messages.delete", params, "cmid")
        if params.get("delete_for_all") == "1" and self.clock.now() - message.at > DAY:
            raise self.reject("messages.delete", 924, message.peer_id)
        message.deleted = True
        self.actions.append(("delete", message, ""))
        return [
            {"peer_id": message.peer_id, "conversation_message_id": message.cmid, "response": 1}
        ]

    # -- users and long poll ------------------------------------------------------------------

    def m_users_get(self, params: dict[str, str]) -> Any:
        users = []
        for ident in params.get("user_ids", "").split(","):
            if ident.strip().isdigit() and int(ident) in self.names:
                first, last = self.names[int(ident)]
                users.append({"id": int(ident), "first_name": first, "last_name": last})
        return users

    def m_groups_getLongPollServer(self, params: dict[str, str]) -> Any:  # noqa: N802
        if _int(params, "group_id") != self.group_id:
            raise self.reject("groups.getLongPollServer", 100)
        self.lp_key = secrets.token_hex(16)
        return {"key": self.lp_key, "server": f"{self.base_url}/lp", "ts": str(self.lp_ts)}

    lp_key = ""
    lp_ts = 1

    # -- uploads ------------------------------------------------------------------------------

    def m_photos_getMessagesUploadServer(self, params: dict[str, str]) -> Any:  # noqa: N802
        _int(params, "peer_id", required=False)
        url = f"{self.base_url}/upload/photo"
        return {"upload_url": url, "album_id": -3, "group_id": self.group_id}

    def m_docs_getMessagesUploadServer(self, params: dict[str, str]) -> Any:  # noqa: N802
        if params.get("type", "doc") not in ("doc", "audio_message", "graffiti"):
            raise self.reject("docs.getMessagesUploadServer", 100)
        return {"upload_url": f"{self.base_url}/upload/doc"}

    async def _upload(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        field = "photo" if kind == "photo" else "file"
        form = await request.post()
        part = form.get(field)
        if not isinstance(part, web.FileField):
            return web.json_response({"error": f"no {field} field"})
        data = part.file.read()
        token = secrets.token_hex(8)
        self.pending[token] = StoredFile(token, data, part.filename, part.content_type)
        if kind == "photo":
            return web.json_response({"server": 1, "photo": json.dumps([token]), "hash": token})
        return web.json_response({"file": token})

    pending: dict[str, StoredFile]

    def _saved(self, token: str, kind: str) -> tuple[str, StoredFile]:
        stored = self.pending.pop(token, None)
        if stored is None:
            raise ApiError(100, "file is invalid")
        key = f"{kind}-{self.group_id}_{len(self.files) + 1}"
        stored.key = key
        self.files[key] = stored
        return key, stored

    def m_photos_saveMessagesPhoto(self, params: dict[str, str]) -> Any:  # noqa: N802
        try:
            token = json.loads(params.get("photo", ""))[0]
        except (ValueError, IndexError, TypeError):
            raise self.reject("photos.saveMessagesPhoto", 100) from None
        if params.get("hash") != token:
            raise self.reject("photos.saveMessagesPhoto", 100)
        key, stored = self._saved(str(token), "photo")
        ident = int(key.rsplit("_", 1)[1])
        url = f"{self.base_url}/files/{key}"
        sizes = [{"type": "x", "url": url, "width": 604, "height": 604}]
        photo = {"id": ident, "owner_id": -self.group_id, "sizes": sizes}
        return [photo]

    def m_docs_save(self, params: dict[str, str]) -> Any:
        key, stored = self._saved(params.get("file", ""), "doc")
        ident = int(key.rsplit("_", 1)[1])
        stored.filename = params.get("title") or stored.filename
        url = f"{self.base_url}/files/{key}"
        doc = {"id": ident, "owner_id": -self.group_id, "title": stored.filename, "url": url}
        return {"type": "doc", "doc": {**doc, "size": len(stored.data)}}

    async def _file(self, request: web.Request) -> web.Response:
        stored = self.files.get(request.match_info["key"])
        if stored is None:
            return web.Response(status=404)
        return web.Response(body=stored.data, content_type=stored.mimetype)
