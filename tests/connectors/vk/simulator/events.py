"""The customer side: what people do in VK (write, send files, edit, type, allow or deny the
community's messages) becomes Callback API events posted to the bridge (with the secret,
retried with ``X-Retry-Counter`` until it answers ``ok``) or Bots Long Poll updates."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from typing import Any

import aiohttp
from aiohttp import web

from .api import Methods
from .records import CallbackAttempt, CallbackDelivery, CustomerMessage, StoredFile

VERSION = "5.199"


class Customers(Methods):
    mode = "callback"
    callback_url = ""
    secret = ""
    confirmation_code = ""
    callback_attempts = 3
    callback_retry_delay = 0.02

    def __init__(self, access_token: str, group_id: int) -> None:
        super().__init__(access_token, group_id)
        self.pending = {}
        self.lp_events: list[dict[str, Any]] = []
        self.lp_consumed = 1
        """The highest ``ts`` a long poll request asked for: every event before it was taken."""

    # -- what customers do ----------------------------------------------------------------------

    def name(self, user_id: int, first: str, last: str = "") -> None:
        self.names[user_id] = (first, last)

    def message(
        self,
        from_id: int,
        text: str,
        *,
        peer_id: int | None = None,
        attachments: list[dict[str, Any]] | None = None,
        reply_to: int | None = None,
        ref: str | None = None,
    ) -> dict[str, Any]:
        """A ``message_new`` event of ``from_id`` (who then lets the community write back)."""
        peer = peer_id or from_id
        cmid = self.next_cmid(peer)
        now = int(self.clock.now())
        self.allowed.add(from_id)
        self.customer_messages.append(CustomerMessage(peer, from_id, cmid, text, now))
        message: dict[str, Any] = {
            "date": now,
            "from_id": from_id,
            "id": 0 if peer != from_id else len(self.customer_messages) + len(self.sent),
            "out": 0,
            "peer_id": peer,
            "text": text,
            "conversation_message_id": cmid,
            "fwd_messages": [],
            "important": False,
            "is_hidden": False,
            "attachments": attachments or [],
        }
        if reply_to is not None:
            message["reply_message"] = {"peer_id": peer, "conversation_message_id": reply_to}
        if ref is not None:
            message["ref"] = ref
        info = {"button_actions": ["text"], "keyboard": True, "inline_keyboard": True}
        return self.envelope("message_new", {"message": message, "client_info": info})

    def host_file(self, data: bytes, filename: str, mimetype: str) -> str:
        key = f"in-{secrets.token_hex(6)}"
        self.files[key] = StoredFile(key, data, filename, mimetype)
        return f"{self.base_url}/files/{key}"

    def photo(self, data: bytes) -> dict[str, Any]:
        url = self.host_file(data, "photo.jpg", "image/jpeg")
        sizes = [
            {"type": "s", "url": url + "?small", "width": 75, "height": 75},
            {"type": "x", "url": url, "width": 604, "height": 453},
        ]
        return {"type": "photo", "photo": {"id": 1, "owner_id": 1, "sizes": sizes}}

    def doc(self, data: bytes, filename: str, mimetype: str) -> dict[str, Any]:
        url = self.host_file(data, filename, mimetype)
        title, _, ext = filename.rpartition(".")
        doc = {"id": 2, "owner_id": 1, "title": filename, "ext": ext or "", "url": url}
        return {"type": "doc", "doc": {**doc, "size": len(data)}}

    def edit(
        self, from_id: int, cmid: int, text: str, peer_id: int | None = None
    ) -> dict[str, Any]:
        peer = peer_id or from_id
        now = int(self.clock.now())
        obj = {
            "date": now - 1, "update_time": now, "from_id": from_id, "peer_id": peer,
            "text": text, "conversation_message_id": cmid, "id": 0, "attachments": [],
        }  # fmt: skip
        return self.envelope("message_edit", obj)

    def press(self, user_id: int, peer_id: int, cmid: int, label: str) -> dict[str, Any]:
        """A ``message_event``: ``user_id`` pressed the callback button ``label`` of the
        community's message ``cmid``."""
        message = self.find_sent(peer_id, cmid)
        assert message is not None, f"no message {cmid} in {peer_id}"
        payload = next(p for title, p in message.buttons if title == label)
        obj = {
            "user_id": user_id, "peer_id": peer_id, "event_id": secrets.token_hex(6),
            "payload": json.loads(payload), "conversation_message_id": cmid,
        }  # fmt: skip
        return self.envelope("message_event", obj)

    def typing(self, from_id: int) -> dict[str, Any]:
        obj = {"state": "typing", "from_id": from_id, "to_id": -self.group_id}
        return self.envelope("message_typing_state", obj)

    def permission(self, user_id: int, allowed: bool) -> dict[str, Any]:
        self.allow(user_id, allowed)
        obj = {"user_id": user_id, "key": "promo"} if allowed else {"user_id": user_id}
        return self.envelope("message_allow" if allowed else "message_deny", obj)

    def envelope(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "type": kind,
            "event_id": secrets.token_hex(20),
            "v": VERSION,
            "object": obj,
        }

    # -- delivery -------------------------------------------------------------------------------

    async def deliver(self, event: dict[str, Any]) -> CallbackDelivery | None:
        """Hand ``event`` over the way the bridge is set to take it: posted (Callback API) and
        returned with its attempts, or queued for long poll and awaited until taken."""
        if self.mode == "callback":
            return await self.post_callback(event)
        self.lp_events.append(event)
        self.lp_ts = len(self.lp_events) + 1
        self._notify()
        index = len(self.lp_events)
        await self.wait_for(lambda: self.lp_consumed > index, 10.0)
        return None

    async def post_callback(
        self, event: dict[str, Any], attempts: int | None = None
    ) -> CallbackDelivery:
        """POST ``event`` until the bridge answers ``ok``, at most ``attempts`` times
        (``callback_attempts``), the repeats with ``X-Retry-Counter``."""
        assert self._http is not None and self.callback_url, "no callback server set"
        delivery = CallbackDelivery(event)
        self.webhook_deliveries.append(delivery)
        body = {**event, "secret": self.secret} if self.secret else event
        for attempt in range(attempts or self.callback_attempts):
            headers = {"X-Retry-Counter": str(attempt)} if attempt else {}
            try:
                async with self._http.post(self.callback_url, json=body, headers=headers) as r:
                    delivery.attempts.append(CallbackAttempt(r.status, await r.text()))
            except (aiohttp.ClientError, OSError) as e:
                delivery.attempts.append(CallbackAttempt(None, "", str(e) or type(e).__name__))
            self._notify()
            if delivery.ok:
                break
            await asyncio.sleep(self.callback_retry_delay)
        return delivery

    async def confirm(self) -> str:
        """VK's ``confirmation`` request; the bridge's answer (the code, if it knows it)."""
        assert self._http is not None
        body = {"type": "confirmation", "group_id": self.group_id, "secret": self.secret}
        async with self._http.post(self.callback_url, json=body) as resp:
            return await resp.text()

    async def _long_poll(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("act") != "a_check":
            return web.json_response({"failed": 4})
        if not self.lp_key or query.get("key") != self.lp_key:
            return web.json_response({"failed": 2})
        try:
            ts = int(query.get("ts", ""))
            wait = min(90, int(query.get("wait", "25")))
        except ValueError:
            return web.json_response({"failed": 1, "ts": self.lp_ts})
        if ts > self.lp_ts or ts < 1:
            return web.json_response({"failed": 1, "ts": self.lp_ts})
        self.lp_consumed = max(self.lp_consumed, ts)
        self._notify()
        with contextlib.suppress(TimeoutError):
            await self.wait_for(lambda: len(self.lp_events) >= ts, wait)
        return web.json_response({"ts": str(self.lp_ts), "updates": self.lp_events[ts - 1 :]})
